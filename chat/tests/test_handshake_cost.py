"""What a widget's handshake and heartbeat cost the database, and the caches that cut it.

chat.widget_cache keeps the workspace's settings per process; chat.batching answers the
heartbeats of many sockets with one query. These tests pin the round trips and prove the
caches never serve a stale answer after a change made in this process.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from accounts.models import BusinessHours, Workspace
from accounts.tests.factories import AgentFactory, TeamFactory, WorkspaceFactory
from chat import consumers, selectors, widget_cache
from chat.batching import BatchedLookup
from chat.models import BlockEntry, Conversation, PageView, Visitor
from chat.tests.factories import ConversationFactory, VisitorFactory
from chat.tests.sockets import (
    agent_socket,
    receive_until,
    same_visitor,
    visitor_communicator,
    visitor_socket,
)

SCOPE = {
    "client": ["81.2.69.160", 50000],
    "headers": [(b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")],
}
PAGE = {"url": "https://shop.example.com/p", "title": "P"}


def _hello(workspace, frame: dict) -> tuple[dict, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        hello = consumers._Hello(workspace, SCOPE, frame)
        info = consumers._visitor_hellos([hello])[hello]
    return info, [q["sql"] for q in ctx.captured_queries]


@pytest.mark.django_db
def test_hello_round_trips(workspace):
    """A new visitor: insert it and its page view (in one transaction), nothing else once
    the workspace's settings are cached. A returning one adds its lookup and its
    conversation's."""
    _hello(workspace, {"page": PAGE})  # fills the per-process caches
    info, queries = _hello(workspace, {"page": PAGE})
    assert info["conversation"] is None
    inserts = [q for q in queries if q.startswith("INSERT")]
    assert len(inserts) == 2, queries  # visitor, page view
    assert len(queries) <= 5, queries  # + blocklist refresh at most, SAVEPOINTs in tests

    ConversationFactory(workspace=workspace, visitor=info["visitor"])
    again, queries = _hello(
        workspace,
        {
            "visitor_id": str(info["visitor"].public_id),
            "visitor_token": info["token"],
            "page": PAGE,
        },
    )
    assert again["visitor"].pk == info["visitor"].pk
    assert again["conversation"] is not None
    selects = [q for q in queries if q.startswith("SELECT")]
    # the visitor, its latest conversation, its place in the queue (none when assigned
    # or open without a queue: at most one more)
    assert 2 <= len(selects) <= 3, queries


@pytest.mark.django_db
def test_cached_settings_follow_a_change_saved_here(workspace):
    assert widget_cache.workspace_for_key(workspace.widget_key).pk == workspace.pk
    schedule, departments = widget_cache.workspace_hours_and_departments(workspace)
    assert not schedule.enabled and departments == []

    team = TeamFactory(workspace=workspace, name="Sales", is_department=True)
    workspace.ask_department = True
    workspace.business_hours_enabled = True
    workspace.save()
    BusinessHours.objects.create(
        workspace=workspace, weekday=0, opens_at="09:00", closes_at="17:00"
    )
    fresh = widget_cache.workspace_for_key(workspace.widget_key)
    assert fresh.ask_department and fresh.business_hours_enabled
    schedule, departments = widget_cache.workspace_hours_and_departments(fresh)
    assert schedule.enabled and schedule.days
    assert departments == [{"id": team.pk, "name": "Sales"}]

    old_key = workspace.widget_key
    workspace.widget_key = "another-key"
    workspace.save()
    assert widget_cache.workspace_for_key(old_key) is None
    workspace.delete()
    assert widget_cache.workspace_for_key("another-key") is None


@pytest.mark.django_db(transaction=True)
async def test_availability_is_current_for_the_next_hello(workspace):
    """A visitor's hello caches "no agent online"; the agent who then comes online is
    seen by the very next hello, not 2 s later."""
    first, welcome = await visitor_socket(workspace)
    assert welcome["agents_online"] is False
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    console, _ = await agent_socket(agent.user)
    assert (await receive_until(first, "availability"))["agents_online"] is True
    second, welcome = await visitor_socket(workspace)
    assert welcome["agents_online"] is True
    await console.disconnect()
    assert (await receive_until(second, "availability"))["agents_online"] is False
    third, welcome = await visitor_socket(workspace)
    assert welcome["agents_online"] is False
    for comm in (first, second, third):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_changed_origin_list_applies_to_the_next_socket(workspace):
    comm, _ = await visitor_socket(workspace)  # cached with shop.example.com allowed
    await comm.disconnect()
    workspace.allowed_origins = "https://other.example.org"
    await sync_to_async(workspace.save)()
    refused = visitor_communicator(workspace.widget_key)  # origin shop.example.com
    connected, _ = await refused.connect(timeout=5)
    assert not connected


# --- batched heartbeats -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_concurrent_pings_share_queries_and_each_gets_its_own_answer(workspace):
    visitors = []
    for n in range(30):
        visitor = await sync_to_async(VisitorFactory)(workspace=workspace)
        if n % 3:  # two in three have a conversation; the last one made is the current
            await sync_to_async(ConversationFactory)(workspace=workspace, visitor=visitor)
            latest = await sync_to_async(ConversationFactory)(
                workspace=workspace, visitor=visitor, last_seq=n
            )
            visitors.append((visitor, (latest.pk, n)))
        else:
            visitors.append((visitor, (None, 0)))

    calls: list[list[int]] = []

    def load(ids: list[int]) -> dict:
        calls.append(list(ids))
        return selectors.conversation_seqs_for_visitors(ids)

    lookup = BatchedLookup(load, default=(None, 0))
    answers = await asyncio.gather(*(lookup(v.pk) for v, _ in visitors))
    assert answers == [expected for _, expected in visitors]
    assert sorted(pk for call in calls for pk in call) == sorted(v.pk for v, _ in visitors)
    assert len(calls) < len(visitors)  # the first asks alone, the rest wait and share


@pytest.mark.django_db(transaction=True)
async def test_pong_reads_the_database_not_the_socket_memory(workspace):
    """A message stored while its broadcast was lost still shows in the next pong."""
    comm, welcome = await visitor_socket(workspace, hello={"page": PAGE})
    visitor_pk = await sync_to_async(
        lambda: Visitor.objects.get(public_id=welcome["visitor_id"]).pk
    )()
    conversation = await sync_to_async(ConversationFactory)(
        workspace=workspace, visitor_id=visitor_pk, last_seq=4
    )
    await comm.send_json_to({"type": "ping"})
    pong = await receive_until(comm, "pong")
    assert (pong["conversation_id"], pong["last_seq"]) == (conversation.pk, 4)
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(last_seq=9)
    other, _ = await visitor_socket(workspace, hello=same_visitor(welcome))
    await asyncio.gather(comm.send_json_to({"type": "ping"}), other.send_json_to({"type": "ping"}))
    for socket in (comm, other):
        pong = await receive_until(socket, "pong")
        assert (pong["conversation_id"], pong["last_seq"]) == (conversation.pk, 9)
        await socket.disconnect()


async def test_a_failed_batch_fails_its_waiters_and_the_next_batch_runs():
    attempts = []

    def load(keys: list[int]) -> dict:
        attempts.append(keys)
        if len(attempts) == 1:
            raise RuntimeError("database went away")
        return {k: k * 10 for k in keys}

    lookup = BatchedLookup(load, default=None)
    with pytest.raises(RuntimeError):
        await lookup(1)
    assert await asyncio.gather(lookup(2), lookup(3), lookup(3)) == [20, 30, 30]
    assert await lookup(99) == 990


# --- batched hellos ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_concurrent_hellos_each_get_their_own_visitor(workspace):
    """New, returning, forged and blocked visitors saying hello at the same moment."""
    first = [await visitor_socket(workspace, hello={"page": PAGE}) for _ in range(3)]
    returning = [same_visitor(welcome) for _, welcome in first]
    await sync_to_async(ConversationFactory)(
        workspace=workspace,
        visitor=await sync_to_async(Visitor.objects.get)(public_id=first[0][1]["visitor_id"]),
        last_seq=3,
    )
    forged = dict(returning[1], visitor_token="x" + returning[1]["visitor_token"])
    await sync_to_async(BlockEntry.objects.create)(
        workspace=workspace,
        visitor=await sync_to_async(Visitor.objects.get)(public_id=first[2][1]["visitor_id"]),
    )
    frames = returning + [forged] + [{"page": PAGE}] * 10
    comms = [visitor_communicator(workspace.widget_key) for _ in frames]
    for comm in comms:
        assert (await comm.connect(timeout=5))[0]
    await asyncio.gather(
        *(comm.send_json_to({"type": "hello", **f}) for comm, f in zip(comms, frames, strict=True))
    )
    answers = [await comm.receive_json_from(timeout=5) for comm in comms]

    assert answers[0]["visitor_id"] == first[0][1]["visitor_id"]
    assert answers[0]["conversation"]["last_seq"] == 3
    assert answers[1]["visitor_id"] == first[1][1]["visitor_id"]
    assert answers[1]["conversation"] is None
    assert answers[2] == {"type": "error", "code": "blocked", "message": answers[2]["message"]}
    new_ids = {a["visitor_id"] for a in answers[3:]}
    assert len(new_ids) == 11 and not new_ids & {w["visitor_id"] for _, w in first}
    assert all(a["type"] == "welcome" and a["conversation"] is None for a in answers[3:])
    assert await sync_to_async(Visitor.objects.filter(workspace=workspace).count)() == 14
    page_views = await sync_to_async(PageView.objects.filter(workspace=workspace).count)()
    assert page_views == 3 + 10  # the first three hellos and the ten new ones sent a page
    for comm in comms + [c for c, _ in first]:
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_hello_that_fails_in_a_batch_fails_alone(workspace):
    gone = WorkspaceFactory()
    stale = Workspace.objects.get(pk=gone.pk)
    gone.delete()  # a socket still holds it: its visitor cannot be inserted
    hellos = [
        consumers._Hello(workspace, SCOPE, {"page": PAGE}),
        consumers._Hello(stale, SCOPE, {"page": PAGE}),
        consumers._Hello(workspace, SCOPE, {}),
    ]
    out = consumers._visitor_hellos(hellos)
    assert isinstance(out[hellos[1]], DatabaseError)
    assert out[hellos[0]]["visitor"].pk and out[hellos[2]]["visitor"].pk
    assert Visitor.objects.filter(workspace=workspace).count() == 2


# --- events stay on the event loop ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_events_are_dispatched_without_a_hop_to_the_sync_thread(workspace, monkeypatch):
    """Channels' own dispatch awaits close_old_connections on the process's one
    thread-sensitive thread before every event; ours does not (every socket's frames and
    group events would queue behind that one thread)."""
    import channels.consumer

    hops = []

    async def counted() -> None:
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    console, _ = await agent_socket(agent.user)
    comm, _ = await visitor_socket(workspace)
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")
    await comm.send_json_to({"type": "message", "client_id": "c-1", "text": "hello"})
    await receive_until(comm, "ack")
    assert (await receive_until(console, "message"))["message"]["text"] == "hello"
    assert hops == []
    for socket in (comm, console):
        await socket.disconnect()
