"""The agent's day over the real sockets: queue positions, transfers, notes (never to the
visitor), presence, statuses and list views."""

import json

import pytest

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.models import Conversation
from chat.tests.sockets import (
    agent_socket,
    assert_none_of,
    receive_error,
    receive_until,
    visitor_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "secret-note-7f3a: customer is a reseller"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(allowed_origins="https://shop.example.com", routing_sticky=False)


async def new_agent(workspace, **kwargs):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(AgentFactory)(workspace=workspace, **kwargs)


async def say(comm, client_id: str, text: str = "hello") -> dict:
    """Send a message and return its ack. Frames that came before the ack (a queue
    position may: the ack waits for the commit, the queue frame does not) are kept in
    ``comm.early`` for :func:`next_of`."""
    await comm.send_json_to({"type": "message", "client_id": client_id, "text": text})
    comm.early = []
    while True:
        frame = await comm.receive_json_from(timeout=5)
        if frame["type"] == "ack" and frame["client_id"] == client_id:
            return frame
        comm.early.append(frame)


async def next_of(comm, kind: str) -> dict:
    """The next frame of ``kind``, the ones :func:`say` passed over first."""
    early = getattr(comm, "early", [])
    for n, frame in enumerate(early):
        if frame["type"] == kind:
            return early.pop(n)
    return await receive_until(comm, kind)


class Recorder:
    """Everything a visitor socket receives, kept for later checks."""

    def __init__(self, comm) -> None:
        self.comm, self.frames = comm, []

    async def until(self, kind: str, **match) -> dict:
        while True:
            frame = await self.comm.receive_json_from(timeout=5)
            self.frames.append(frame)
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def drain(self) -> None:
        while not await self.comm.receive_nothing(timeout=0.3):
            self.frames.append(await self.comm.receive_json_from(timeout=1))


async def test_queue_positions_update_live_and_the_head_is_assigned_on_resolve(workspace):
    agent = await new_agent(workspace, max_concurrent_chats=1)
    console, welcome = await agent_socket(agent.user)
    assert welcome["queue"] == {"total": 0, "teams": {}}
    a, _ = await visitor_socket(workspace)
    b, _ = await visitor_socket(workspace)
    c, _ = await visitor_socket(workspace)
    first = await say(a, "a1")
    # Routed at once: a `conversation` frame names the agent; no `queue` frame (it never
    # waited).
    assert (await next_of(a, "conversation"))["conversation"]["agent_name"]
    assert not [f for f in a.early if f["type"] == "queue"]
    await assert_none_of(a, "queue")
    b_conv = (await say(b, "b1"))["conversation_id"]
    assert (await next_of(b, "queue"))["position"] == 1
    await say(c, "c1")
    assert (await next_of(c, "queue"))["position"] == 2
    frame = await receive_until(console, "queue")
    while frame["queue"]["total"] != 2:
        frame = await receive_until(console, "queue")
    assert frame["queue"]["teams"] == {"none": 2}

    await console.send_json_to({"type": "resolve", "conversation_id": first["conversation_id"]})
    assert (await receive_until(b, "queue")) == {
        "type": "queue",
        "conversation_id": b_conv,
        "position": None,
    }
    assigned = await receive_until(b, "conversation")
    assert assigned["conversation"]["agent_name"] == agent.display_name
    assert (await receive_until(c, "queue"))["position"] == 1
    event = await receive_until(console, "event")
    while event["event"]["kind"] != "assigned":
        event = await receive_until(console, "event")
    assert event["conversation_id"] == b_conv
    assert event["event"]["data"]["how"] == "queue"
    # A reconnecting widget learns its place from the welcome.
    conversation = await Conversation.objects.aget(pk=b_conv)
    assert conversation.assignee_id == agent.pk
    for comm in (console, a, b, c):
        await comm.disconnect()


async def test_transfer_tells_both_agents_and_the_visitor_but_not_the_note(workspace):
    alice = await new_agent(workspace, display_name="Alice")
    bob = await new_agent(workspace, display_name="Bob", presence="away")
    at_alice, _ = await agent_socket(alice.user)
    at_bob, _ = await agent_socket(bob.user)
    comm, _ = await visitor_socket(workspace)
    visitor = Recorder(comm)
    await visitor.comm.send_json_to({"type": "message", "client_id": "v1", "text": "hi"})
    ack = await visitor.until("ack")
    conversation_id = ack["conversation_id"]
    await visitor.until("conversation")  # assigned to Alice (Bob is away)

    await at_alice.send_json_to(
        {"type": "transfer", "conversation_id": conversation_id, "agent_id": bob.pk, "note": NOTE}
    )
    for console in (at_alice, at_bob):
        event = row = None
        while event is None or row is None:  # both come, in either order
            frame = await console.receive_json_from(timeout=5)
            if frame["type"] == "event" and frame["event"]["kind"] == "transferred":
                event = frame
            elif (
                frame["type"] == "conversation"
                and (frame["conversation"]["assignee"] or {}).get("id") == bob.pk
            ):
                row = frame
        assert event["event"]["text"] == NOTE
        assert event["event"]["agent"] == {"id": bob.pk, "name": "Bob"}
    told = await visitor.until("conversation")
    assert told["conversation"]["agent_name"] == "Bob"
    await visitor.drain()
    assert NOTE not in json.dumps(visitor.frames)
    assert not any(f["type"] == "event" for f in visitor.frames)
    for c in (at_alice, at_bob, comm):
        await c.disconnect()


async def test_notes_reach_agents_and_never_a_visitor(workspace):
    agent = await new_agent(workspace)
    console, _ = await agent_socket(agent.user)
    comm, welcome = await visitor_socket(workspace)
    visitor = Recorder(comm)
    await comm.send_json_to({"type": "message", "client_id": "v1", "text": "hi"})
    conversation_id = (await visitor.until("ack"))["conversation_id"]
    await console.send_json_to({"type": "open", "conversation_id": conversation_id})
    await receive_until(console, "history")

    await console.send_json_to(
        {"type": "note", "conversation_id": conversation_id, "text": NOTE, "client_id": "n1"}
    )
    event = await receive_until(console, "event")
    while event["event"]["kind"] != "note":
        event = await receive_until(console, "event")
    assert event["ref"] == "n1"
    assert (event["event"]["text"], event["event"]["actor"]["id"]) == (NOTE, agent.pk)
    # The agent's next history has it; the visitor's sockets, old and new, never do.
    await console.send_json_to({"type": "open", "conversation_id": conversation_id})
    history = await receive_until(console, "history")
    assert NOTE in [e["text"] for e in history["events"]]
    await comm.send_json_to({"type": "resume", "last_seq": 0})
    await visitor.until("history")
    again, _ = await visitor_socket(
        workspace,
        hello={"visitor_id": welcome["visitor_id"], "visitor_token": welcome["visitor_token"]},
    )
    again_rec = Recorder(again)
    await again_rec.until("history")
    await visitor.drain()
    await again_rec.drain()
    assert NOTE not in json.dumps(visitor.frames + again_rec.frames)

    for frame, code in (
        ({"type": "note", "conversation_id": conversation_id, "text": ""}, "empty_message"),
        ({"type": "note", "conversation_id": conversation_id}, "missing_field"),
        ({"type": "note", "conversation_id": "1", "text": "x"}, "invalid_field"),
        ({"type": "note", "conversation_id": 10**9, "text": "x"}, "not_found"),
        (
            {"type": "note", "conversation_id": conversation_id, "text": "x" * 5001},
            "text_too_long",
        ),
    ):
        await console.send_json_to(frame)
        assert (await receive_error(console))["code"] == code
    for c in (console, comm, again):
        await c.disconnect()


async def test_notes_and_transfers_in_another_workspace_are_not_found(workspace):
    agent = await new_agent(workspace)
    outsider = await new_agent(await _other_workspace())
    comm, _ = await visitor_socket(workspace)
    conversation_id = (await say(comm, "v1"))["conversation_id"]
    console, _ = await agent_socket(outsider.user)
    for frame in (
        {"type": "note", "conversation_id": conversation_id, "text": "x"},
        {"type": "transfer", "conversation_id": conversation_id, "agent_id": outsider.pk},
        {"type": "status", "conversation_id": conversation_id, "status": "pending"},
    ):
        await console.send_json_to(frame)
        assert (await receive_error(console))["code"] == "not_found"
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert (conversation.assignee_id, conversation.status) == (None, "open")
    assert agent.pk  # (no console open: the conversation waits in the queue)
    await console.disconnect()
    await comm.disconnect()


async def _other_workspace():
    from channels.db import database_sync_to_async

    return await database_sync_to_async(WorkspaceFactory)()


async def test_presence_is_shown_to_colleagues(workspace):
    alice = await new_agent(workspace, display_name="Alice")
    bob = await new_agent(workspace, display_name="Bob")
    at_alice, welcome = await agent_socket(alice.user)
    assert {a["name"]: a["connected"] for a in welcome["agents"]} == {
        "Alice": True,
        "Bob": False,
    }
    at_bob, _ = await agent_socket(bob.user)
    came = await receive_until(at_alice, "presence")
    while came["agent"]["id"] != bob.pk:  # (her own arrival may come first)
        came = await receive_until(at_alice, "presence")
    assert came["agent"] == {"id": bob.pk, "name": "Bob", "presence": "online", "connected": True}
    await at_bob.send_json_to({"type": "presence", "presence": "away"})
    for console in (at_alice, at_bob):
        frame = await receive_until(console, "presence")
        while frame["agent"]["presence"] != "away":
            frame = await receive_until(console, "presence")
        assert frame["agent"]["id"] == bob.pk
    for bad, code in (("busy", "invalid_presence"), (1, "invalid_field"), (None, "missing_field")):
        await at_bob.send_json_to({"type": "presence", "presence": bad})
        assert (await receive_error(at_bob))["code"] == code
    await at_bob.disconnect()
    gone = await receive_until(at_alice, "presence")
    assert (gone["agent"]["id"], gone["agent"]["connected"]) == (bob.pk, False)
    await at_alice.disconnect()


async def test_list_views_and_statuses(workspace):
    agent = await new_agent(workspace)
    admin = await new_agent(workspace, is_workspace_admin=True)
    console, welcome = await agent_socket(agent.user)
    assert welcome["view"] == "inbox"
    comm, _ = await visitor_socket(workspace)
    conversation_id = (await say(comm, "v1"))["conversation_id"]
    await console.send_json_to({"type": "list", "view": "mine"})
    mine = await receive_until(console, "conversations")
    assert mine["view"] == "mine"
    owner = (await Conversation.objects.aget(pk=conversation_id)).assignee_id
    assert [c["id"] for c in mine["conversations"]] == (
        [conversation_id] if owner == agent.pk else []
    )
    await console.send_json_to({"type": "list", "view": "all"})
    assert (await receive_until(console, "error"))["code"] == "forbidden"
    for frame in ({"type": "list", "view": "everything"}, {"type": "list", "status": "gone"}):
        await console.send_json_to(frame)
        assert (await receive_until(console, "error"))["code"] == "invalid_field"
    at_admin, admin_welcome = await agent_socket(admin.user)
    assert admin_welcome["view"] == "all"
    await at_admin.send_json_to({"type": "list", "view": "all", "status": "open"})
    listed = await receive_until(at_admin, "conversations")
    assert [c["id"] for c in listed["conversations"]] == [conversation_id]

    await at_admin.send_json_to(
        {"type": "status", "conversation_id": conversation_id, "status": "snoozed"}
    )
    assert (await receive_until(at_admin, "error"))["code"] == "invalid_snooze"
    await at_admin.send_json_to(
        {"type": "status", "conversation_id": conversation_id, "status": "pending"}
    )
    row = await receive_until(at_admin, "conversation")
    while row["conversation"]["status"] != "pending":
        row = await receive_until(at_admin, "conversation")
    seen = await receive_until(comm, "conversation")
    while seen["conversation"]["status"] != "pending":
        seen = await receive_until(comm, "conversation")
    for c in (console, at_admin, comm):
        await c.disconnect()
