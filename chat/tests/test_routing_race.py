"""Race-free routing: 50 visitors arrive at once through two daphne processes sharing
PostgreSQL and Redis. No agent ever goes over capacity, no conversation is assigned twice,
the rest wait in one first-come-first-served queue whose positions reach the widgets live,
and freed slots go to the head of the queue."""

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db.models import Count
from django.utils import timezone
from websockets.asyncio.client import connect

from accounts.models import AgentConnection
from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import routing, services
from chat.models import ACTIVE_STATUSES, Conversation, ConversationEvent, EventKind
from chat.tests.sockets import CHROME_UA

pytestmark = [pytest.mark.servers, pytest.mark.django_db(transaction=True)]

SHOP = "https://shop.example.com"
VISITORS = 50
AGENTS = 3
CAPACITY = 4
TIMEOUT = 30


@database_sync_to_async
def _setup():
    workspace = WorkspaceFactory(allowed_origins=SHOP, routing_sticky=False)
    agents = [AgentFactory(workspace=workspace, max_concurrent_chats=CAPACITY) for _ in range(3)]
    for agent in agents:  # online with a live console socket (as its heartbeat keeps it)
        AgentConnection.objects.create(
            agent=agent,
            workspace=workspace,
            channel_name=f"race.{agent.pk}",
            last_seen_at=timezone.now() + timedelta(minutes=5),
        )
    return workspace, agents


class Widget:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.position: int | None = None
        self.ack: dict | None = None
        self.agent_name: str | None = None

    async def run(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["type"] == "queue":
                self.position = frame["position"]
            elif frame["type"] == "ack":
                self.ack = frame
            elif frame["type"] == "conversation":
                self.agent_name = frame["conversation"].get("agent_name")


async def _open(server, key: str) -> Widget:
    ws = await connect(
        server.ws_url(f"/ws/visitor/?key={key}"),
        origin=SHOP,
        user_agent_header=CHROME_UA.decode(),
        open_timeout=TIMEOUT,
    )
    await ws.send(json.dumps({"type": "hello"}))
    async with asyncio.timeout(TIMEOUT):
        while json.loads(await ws.recv())["type"] != "welcome":
            pass
    return Widget(ws)


async def _until(predicate, what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not await database_sync_to_async(predicate)():
            await asyncio.sleep(0.1)


def _loads() -> dict[int, int]:
    return dict(
        Conversation.objects.filter(status__in=ACTIVE_STATUSES, assignee__isnull=False)
        .values_list("assignee_id")
        .annotate(n=Count("pk"))
    )


def _assigned_twice() -> list[int]:
    return list(
        ConversationEvent.objects.filter(kind=EventKind.ASSIGNED)
        .values("conversation_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("conversation_id", flat=True)
    )


async def test_fifty_visitors_at_once_across_two_processes(asgi_server_factory):
    workspace, agents = await _setup()
    servers = [asgi_server_factory(), asgi_server_factory()]
    widgets = await asyncio.gather(
        *(_open(servers[i % 2], workspace.widget_key) for i in range(VISITORS))
    )
    readers = [asyncio.create_task(w.run()) for w in widgets]
    try:
        # Everyone writes at the same moment, half through each process.
        await asyncio.gather(
            *(
                w.ws.send(json.dumps({"type": "message", "client_id": f"c{i}", "text": "hi"}))
                for i, w in enumerate(widgets)
            )
        )
        async with asyncio.timeout(TIMEOUT):
            while not all(w.ack for w in widgets):
                await asyncio.sleep(0.05)

        slots = AGENTS * CAPACITY
        loads = await database_sync_to_async(_loads)()
        assert sorted(loads) == sorted(a.pk for a in agents)
        assert all(n <= CAPACITY for n in loads.values()), loads
        assert sum(loads.values()) == slots  # every free slot used
        assert await database_sync_to_async(_assigned_twice)() == []
        entries = await database_sync_to_async(routing.queue_entries)(workspace_id=workspace.pk)
        assert len(entries) == VISITORS - slots
        assert await Conversation.objects.acount() == VISITORS  # one each, none lost

        # The widgets know their places, live: 1..38, each once, matching the database.
        expected = {pk: i + 1 for i, (pk, _v, _t) in enumerate(entries)}

        def positions_arrived():
            return sorted(
                (w.ack["conversation_id"], w.position) for w in widgets if w.position
            ) == sorted(expected.items())

        async with asyncio.timeout(TIMEOUT):
            while not positions_arrived():
                await asyncio.sleep(0.05)

        # Three chats end (one per agent): the three oldest waiting conversations move up.
        for agent in agents:
            mine = await Conversation.objects.filter(assignee=agent).afirst()
            await database_sync_to_async(services.conversation_resolve)(
                agent=agent, conversation_id=mine.pk
            )
        heads = [pk for pk, _v, _t in entries[:3]]
        await _until(
            lambda: Conversation.objects.filter(pk__in=heads, assignee__isnull=False).count() == 3,
            "the queue's head assigned",
        )
        loads = await database_sync_to_async(_loads)()
        assert all(n <= CAPACITY for n in loads.values()) and sum(loads.values()) == slots
        assert await database_sync_to_async(_assigned_twice)() == []
        head_widgets = [w for w in widgets if w.ack["conversation_id"] in heads]
        async with asyncio.timeout(TIMEOUT):
            while not all(w.position is None and w.agent_name for w in head_widgets):
                await asyncio.sleep(0.05)
        # Everyone behind them moved up by three.
        fourth = next(w for w in widgets if w.ack["conversation_id"] == entries[3][0])
        async with asyncio.timeout(TIMEOUT):
            while fourth.position != 1:
                await asyncio.sleep(0.05)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(w.ws.close() for w in widgets), return_exceptions=True)
