"""Two daphne processes sharing PostgreSQL and Redis: a chat across them, over real sockets.

The visitor's widget talks to server A and the agent's console to server B, as behind a
load balancer. Everything one hears of the other crosses processes through the Redis
channel layer; everything acknowledged must be in the database.
"""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.models import Conversation, Message
from chat.tests.sockets import CHROME_UA, session_cookie

pytestmark = [pytest.mark.servers, pytest.mark.django_db(transaction=True)]

SHOP = "https://shop.example.com"
TIMEOUT = 10  # per frame; generous for loaded CI machines, never waited out when all is well


class Peer:
    """One websocket client that keeps the frames it has not asked for yet."""

    def __init__(self, ws, name: str) -> None:
        self.ws, self.name, self.seen = ws, name, []

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, kind: str, **match) -> dict:
        """The next frame of ``kind`` whose fields include ``match`` (in the frame or in its
        ``message``), skipping others."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame = json.loads(await self.ws.recv())
                self.seen.append(frame)
                body = frame.get("message", frame) if kind == "message" else frame
                if frame["type"] == kind and all(body.get(k) == v for k, v in match.items()):
                    return frame
                assert frame["type"] != "error", f"{self.name} got {frame}"


def visitor_connect(server, key: str):
    return connect(
        server.ws_url(f"/ws/visitor/?key={key}"),
        origin=SHOP,
        user_agent_header=CHROME_UA.decode(),
        open_timeout=TIMEOUT,
    )


def agent_connect(server, cookie: str):
    return connect(
        server.ws_url("/ws/agent/"),
        origin=server.url,
        additional_headers={"Cookie": cookie},
        open_timeout=TIMEOUT,
    )


# DB work through database_sync_to_async, which closes its thread's connection afterwards:
# nothing in this process may keep a session open on the test database when it is dropped.
@database_sync_to_async
def _workspace_and_agent():
    workspace = WorkspaceFactory(allowed_origins=SHOP)
    return workspace, AgentFactory(workspace=workspace)


@database_sync_to_async
def _stored(conversation_id: int) -> tuple[list[tuple], int]:
    """The conversation's messages, and how many conversations exist at all."""
    messages = list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "sender_kind", "client_id", "text")
    )
    return messages, Conversation.objects.count()


_login_cookie = database_sync_to_async(session_cookie)


async def test_visitor_on_one_server_and_agent_on_another_chat_both_ways(asgi_server_factory):
    server_a, server_b = asgi_server_factory(), asgi_server_factory()
    workspace, agent = await _workspace_and_agent()
    cookie = await _login_cookie(agent.user)

    async with (
        agent_connect(server_b, cookie) as agent_ws,
        visitor_connect(server_a, workspace.widget_key) as visitor_ws,
    ):
        console, widget = Peer(agent_ws, "agent@B"), Peer(visitor_ws, "visitor@A")
        await console.send({"type": "hello"})
        assert (await console.next("welcome"))["conversations"] == []
        await widget.send({"type": "hello"})
        welcome = await widget.next("welcome")
        assert welcome["agents_online"] is True  # B's agent, seen from A

        expected = []
        conversation_id = None
        for round_ in range(1, 4):
            # visitor (A) -> agent (B)
            text = f"question {round_} <b>from A</b>"
            await widget.send({"type": "message", "client_id": f"v{round_}", "text": text})
            ack = await widget.next("ack", client_id=f"v{round_}")
            conversation_id = conversation_id or ack["conversation_id"]
            assert ack["conversation_id"] == conversation_id
            assert ack["seq"] == 2 * round_ - 1
            live = await console.next("message", client_id=f"v{round_}")
            assert (live["message"]["seq"], live["message"]["text"]) == (ack["seq"], text)
            assert live["conversation"]["id"] == conversation_id
            expected.append((ack["seq"], "visitor", f"v{round_}", text))

            # agent (B) -> visitor (A)
            answer = f"answer {round_} from B"
            await console.send(
                {
                    "type": "message",
                    "conversation_id": conversation_id,
                    "client_id": f"a{round_}",
                    "text": answer,
                }
            )
            ack = await console.next("ack", client_id=f"a{round_}")
            assert ack["seq"] == 2 * round_
            live = await widget.next("message", client_id=f"a{round_}")
            assert live["message"]["sender"] == "agent"
            assert (live["message"]["seq"], live["message"]["text"]) == (ack["seq"], answer)
            expected.append((ack["seq"], "agent", f"a{round_}", answer))

        # Typing and read receipts cross too.
        await console.send({"type": "typing", "conversation_id": conversation_id, "active": True})
        assert (await widget.next("typing"))["agent_name"] == agent.display_name
        await widget.send({"type": "receipt", "seq": 6})
        receipt = await console.next("receipt", reader="visitor")
        assert (receipt["conversation_id"], receipt["seq"]) == (conversation_id, 6)

        # The agent's console closes on B; the visitor on A hears nobody is online.
        await agent_ws.close()
        assert (await widget.next("availability"))["agents_online"] is False

    assert await _stored(conversation_id) == (expected, 1)


async def test_one_client_id_sent_at_once_through_two_servers_is_stored_once(
    asgi_server_factory,
):
    """Two tabs of one visitor, on different servers, race the same message for real."""
    server_a, server_b = asgi_server_factory(), asgi_server_factory()
    workspace, _ = await _workspace_and_agent()

    async with visitor_connect(server_a, workspace.widget_key) as ws_a:
        tab_a = Peer(ws_a, "tab@A")
        await tab_a.send({"type": "hello"})
        welcome = await tab_a.next("welcome")
        same = {"visitor_id": welcome["visitor_id"], "visitor_token": welcome["visitor_token"]}
        async with visitor_connect(server_b, workspace.widget_key) as ws_b:
            tab_b = Peer(ws_b, "tab@B")
            await tab_b.send({"type": "hello", **same})
            assert (await tab_b.next("welcome"))["visitor_id"] == welcome["visitor_id"]

            acks = {}
            for round_ in range(1, 6):  # each round: no conversation yet, then an existing one
                client_id = f"both-{round_}"
                frame = {"type": "message", "client_id": client_id, "text": f"hi {round_}"}
                await asyncio.gather(tab_a.send(frame), tab_b.send(frame))
                ack_a, ack_b = await asyncio.gather(
                    tab_a.next("ack", client_id=client_id), tab_b.next("ack", client_id=client_id)
                )
                assert ack_a["message_id"] == ack_b["message_id"]
                assert ack_a["seq"] == ack_b["seq"] == round_
                acks[client_id] = ack_a

    conversation_id = acks["both-1"]["conversation_id"]
    stored, conversations = await _stored(conversation_id)
    assert [(seq, client_id) for seq, _, client_id, _ in stored] == [
        (n, f"both-{n}") for n in range(1, 6)
    ]
    assert conversations == 1
