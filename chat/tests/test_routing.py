"""Routing: each strategy, team rules, availability, the queue and its drain, transfers,
statuses and notes (services; the sockets are in test_routing_sockets.py)."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services as account_services
from accounts.models import AgentConnection, Presence, RoutingRule, RoutingStrategy, Team
from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import routing, services
from chat.errors import ChatError
from chat.message_store import NewMessage, messages_store
from chat.models import Conversation, ConversationEvent, ConversationStatus, EventKind, SenderKind
from chat.tests.factories import VisitorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    return WorkspaceFactory(routing_sticky=False)


def online(agent, *, seen_seconds_ago: float = 0):
    AgentConnection.objects.create(
        agent=agent,
        workspace=agent.workspace,
        channel_name=f"test.{uuid.uuid4().hex}",
        last_seen_at=timezone.now() - timedelta(seconds=seen_seconds_ago),
    )
    return agent


def agent_in(workspace, **kwargs):
    return online(AgentFactory(workspace=workspace, **kwargs))


def open_conversation(workspace, *, url="https://shop.example.com/", language="en", **kwargs):
    visitor = kwargs.pop("visitor", None) or VisitorFactory(
        workspace=workspace, current_url=url, language=language
    )
    message, _ = services.visitor_message_send(
        visitor=visitor, client_id=uuid.uuid4().hex, text="hello", **kwargs
    )
    return Conversation.objects.select_related("assignee", "team").get(pk=message.conversation_id)


def candidates(workspace, team=None):
    return routing.candidates_for(workspace_id=workspace.pk, team_id=team.pk if team else None)


# --- strategies, one by one -------------------------------------------------------------------


def test_round_robin_takes_turns_never_assigned_first(workspace):
    a, b, c = (agent_in(workspace) for _ in range(3))
    b.last_assigned_at = timezone.now() - timedelta(minutes=5)
    a.last_assigned_at = timezone.now() - timedelta(minutes=1)
    for agent in (a, b):
        agent.save(update_fields=["last_assigned_at"])
    strategy = routing.RoundRobin()
    assert strategy.pick(None, candidates(workspace)).agent == c  # never assigned
    owners = [open_conversation(workspace).assignee for _ in range(4)]
    assert owners == [c, b, a, c]


def test_least_busy_weighs_open_chats_against_capacity(workspace):
    workspace.routing_strategy = RoutingStrategy.LEAST_BUSY
    workspace.save()
    small = agent_in(workspace, max_concurrent_chats=2)
    big = agent_in(workspace, max_concurrent_chats=10)
    owners = [open_conversation(workspace).assignee for _ in range(8)]
    # Loads (open/capacity) decide: 0/2 vs 0/10 ties (fewest open, then pk: small); then
    # big until 5/10 equals small's 1/2; the tie goes to fewer open chats (small, 2/2
    # full), then big fills up.
    assert owners == [small, big, big, big, big, big, small, big]


def test_least_busy_ignores_resolved_and_snoozed_conversations(workspace):
    workspace.routing_strategy = RoutingStrategy.LEAST_BUSY
    workspace.save()
    a = agent_in(workspace, max_concurrent_chats=3)
    b = agent_in(workspace, max_concurrent_chats=3)
    for _ in range(2):
        c = open_conversation(workspace)
        Conversation.objects.filter(pk=c.pk).update(assignee=a, status=ConversationStatus.RESOLVED)
    c = open_conversation(workspace)
    Conversation.objects.filter(pk=c.pk).update(assignee=b, status=ConversationStatus.OPEN)
    loads = {x.agent: x.open_count for x in candidates(workspace)}
    assert loads == {a: 0, b: 1}


def test_sticky_sends_a_returning_visitor_back_to_their_agent(workspace):
    workspace.routing_sticky = True
    workspace.save()
    a, b = agent_in(workspace), agent_in(workspace)
    visitor = VisitorFactory(workspace=workspace)
    first = open_conversation(workspace, visitor=visitor)
    served_by = first.assignee
    services.conversation_resolve(agent=served_by, conversation_id=first.pk)
    # Others come and go; round-robin alone would now pick the other agent.
    for _ in range(3):
        open_conversation(workspace)
    again = open_conversation(workspace, visitor=visitor)  # reopens the resolved one
    assert again.pk == first.pk and again.assignee == served_by
    # Their agent gone: the fallback decides.
    services.conversation_resolve(agent=served_by, conversation_id=first.pk)
    AgentConnection.objects.filter(agent=served_by).delete()
    third = open_conversation(workspace, visitor=visitor)
    assert third.assignee == (b if served_by == a else a)


def test_sticky_falls_through_when_the_agent_is_full(workspace):
    workspace.routing_sticky = True
    workspace.save()
    a = agent_in(workspace, max_concurrent_chats=1)
    b = agent_in(workspace, max_concurrent_chats=5)
    visitor = VisitorFactory(workspace=workspace)
    Conversation.objects.create(
        workspace=workspace,
        visitor=visitor,
        assignee=a,
        status=ConversationStatus.RESOLVED,
        last_message_at=timezone.now(),
    )
    open_conversation(workspace)  # someone else takes a's only slot (or b's)
    Conversation.objects.filter(assignee__isnull=False, status="open").update(assignee=a)
    again = open_conversation(workspace, visitor=visitor)
    assert again.assignee == b


class EveryoneToTheLastAgent(routing.Strategy):
    """A custom strategy as an operator would write it (docs/routing.md)."""

    name = "last-agent"

    def pick(self, conversation, candidates):
        return max(candidates, key=lambda c: c.agent.pk, default=None)


class Rogue(routing.Strategy):
    """Returns an agent who is not a candidate: must be ignored."""

    def pick(self, conversation, candidates):
        from accounts.models import AgentProfile

        return routing.Candidate(agent=AgentProfile.objects.order_by("-pk").first(), open_count=0)


@override_settings(
    HELPDESK_ROUTING_CUSTOM_STRATEGY="chat.tests.test_routing.EveryoneToTheLastAgent"
)
def test_custom_strategy_from_settings(workspace):
    workspace.routing_strategy = RoutingStrategy.CUSTOM
    workspace.save()
    agents = [agent_in(workspace) for _ in range(3)]
    assert {open_conversation(workspace).assignee for _ in range(3)} == {agents[-1]}


@override_settings(HELPDESK_ROUTING_CUSTOM_STRATEGY="chat.tests.test_routing.Rogue")
def test_a_custom_strategy_cannot_pick_outside_the_candidates(workspace):
    workspace.routing_strategy = RoutingStrategy.CUSTOM
    workspace.save()
    agent_in(workspace)
    AgentFactory(workspace=workspace)  # newest, but offline: not a candidate
    conversation = open_conversation(workspace)
    assert conversation.assignee is None and conversation.queued_at is not None


# --- who is available -------------------------------------------------------------------------


def test_only_online_connected_active_agents_under_capacity_are_candidates(workspace):
    ok = agent_in(workspace)
    agent_in(workspace, presence=Presence.AWAY)
    agent_in(workspace, presence=Presence.OFFLINE)
    online(AgentFactory(workspace=workspace), seen_seconds_ago=600)  # socket went stale
    AgentFactory(workspace=workspace)  # never connected
    gone = agent_in(workspace)
    gone.user.is_active = False
    gone.user.save()
    full = agent_in(workspace, max_concurrent_chats=1)
    zero = agent_in(workspace, max_concurrent_chats=0)
    c = open_conversation(workspace)
    Conversation.objects.filter(pk=c.pk).update(assignee=full)
    agent_in(WorkspaceFactory())  # another workspace's
    assert [x.agent for x in candidates(workspace)] == [ok]
    assert zero not in [x.agent for x in candidates(workspace)]


# --- team routing -----------------------------------------------------------------------------


def test_rules_send_conversations_to_a_team_by_url_and_language(workspace):
    sales = Team.objects.create(workspace=workspace, name="Sales")
    china = Team.objects.create(workspace=workspace, name="China desk")
    seller = agent_in(workspace)
    seller.teams.add(sales)
    chinese = agent_in(workspace)
    chinese.teams.add(china)
    generalist = agent_in(workspace)
    RoutingRule.objects.create(
        workspace=workspace, position=1, url_pattern="*/pricing*", team=sales
    )
    RoutingRule.objects.create(workspace=workspace, position=2, language="zh", team=china)
    RoutingRule.objects.create(
        workspace=workspace, position=0, url_pattern="*/off*", team=sales, enabled=False
    )

    pricing = open_conversation(workspace, url="https://shop.example.com/pricing?plan=pro")
    assert (pricing.team, pricing.assignee) == (sales, seller)
    zh = open_conversation(workspace, language="zh-CN")
    assert (zh.team, zh.assignee) == (china, chinese)
    # Both rules match: the first by order wins.
    both = open_conversation(workspace, url="https://shop.example.com/pricing", language="zh")
    assert both.team == sales
    other = open_conversation(workspace, url="https://shop.example.com/offers")
    assert other.team is None
    assert other.assignee in (seller, chinese, generalist)


def test_a_team_without_free_members_queues_even_if_others_are_free(workspace):
    sales = Team.objects.create(workspace=workspace, name="Sales")
    agent_in(workspace)  # free, but not in Sales
    RoutingRule.objects.create(workspace=workspace, url_pattern="*/pricing*", team=sales)
    conversation = open_conversation(workspace, url="https://shop.example.com/pricing")
    assert conversation.assignee is None and conversation.team == sales
    assert routing.queue_position(conversation) == 1


def test_team_strategy_applies_inside_the_team(workspace):
    sales = Team.objects.create(
        workspace=workspace, name="Sales", routing_strategy=RoutingStrategy.LEAST_BUSY
    )
    a = agent_in(workspace, max_concurrent_chats=1)
    b = agent_in(workspace, max_concurrent_chats=4)
    for agent in (a, b):
        agent.teams.add(sales)
    RoutingRule.objects.create(workspace=workspace, url_pattern="*", team=sales)
    owners = [open_conversation(workspace).assignee for _ in range(5)]
    assert owners.count(a) == 1 and owners.count(b) == 4
    assert open_conversation(workspace).assignee is None  # both full: queued


# --- the queue --------------------------------------------------------------------------------


def test_queue_is_first_come_first_served_and_drains_when_a_slot_frees(
    workspace, django_capture_on_commit_callbacks
):
    agent = agent_in(workspace, max_concurrent_chats=1)
    first = open_conversation(workspace)
    assert first.assignee == agent
    waiting = [open_conversation(workspace) for _ in range(3)]
    assert [routing.queue_position(c) for c in waiting] == [1, 2, 3]
    assert routing.queue_summary(workspace_id=workspace.pk) == {"total": 3, "teams": {"none": 3}}

    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_resolve(agent=agent, conversation_id=first.pk)
    for c in waiting:
        c.refresh_from_db()
    assert [c.assignee for c in waiting] == [agent, None, None]
    assert [routing.queue_position(c) for c in waiting] == [None, 1, 2]
    event = ConversationEvent.objects.filter(conversation=waiting[0], kind=EventKind.ASSIGNED).get()
    assert event.data["how"] == "queue" and event.agent == agent


def test_queue_drains_when_an_agent_comes_online_or_gets_more_capacity(
    workspace, django_capture_on_commit_callbacks
):
    agent = AgentFactory(workspace=workspace, max_concurrent_chats=1, presence=Presence.AWAY)
    online(agent)
    waiting = [open_conversation(workspace) for _ in range(3)]
    assert all(c.assignee is None for c in waiting)
    with django_capture_on_commit_callbacks(execute=True):
        account_services.agent_presence_set(agent=agent, presence="online")
    assert [Conversation.objects.get(pk=c.pk).assignee for c in waiting] == [agent, None, None]
    agent.max_concurrent_chats = 3
    agent.save()
    with django_capture_on_commit_callbacks(execute=True):
        account_services.agent_capacity_changed(agent=agent)
    assert Conversation.objects.filter(assignee=agent).count() == 3
    assert routing.queue_summary(workspace_id=workspace.pk)["total"] == 0


def test_queue_order_is_kept_per_team(workspace, django_capture_on_commit_callbacks):
    sales = Team.objects.create(workspace=workspace, name="Sales")
    RoutingRule.objects.create(workspace=workspace, url_pattern="*/pricing*", team=sales)
    general = [open_conversation(workspace) for _ in range(2)]
    sale = open_conversation(workspace, url="https://x.example/pricing")
    assert [routing.queue_position(c) for c in (*general, sale)] == [1, 2, 1]
    seller = AgentFactory(workspace=workspace, max_concurrent_chats=5)
    seller.teams.add(sales)
    with django_capture_on_commit_callbacks(execute=True):
        account_services.agent_connection_open(agent=seller, channel_name="test.seller")
    # A team member can also take the general queue; general has no team restriction.
    owned = set(Conversation.objects.filter(assignee=seller).values_list("pk", flat=True))
    assert owned == {c.pk for c in (*general, sale)}


def test_agent_replying_takes_a_queued_conversation(workspace):
    waiting = open_conversation(workspace)
    agent = AgentFactory(workspace=workspace)
    services.agent_message_send(
        agent=agent, conversation_id=waiting.pk, client_id="r1", text="I'm here"
    )
    waiting.refresh_from_db()
    assert waiting.assignee == agent and waiting.queued_at is None
    assert waiting.first_response_seconds is not None


# --- transfers, statuses, notes ---------------------------------------------------------------


def test_transfer_to_an_agent_with_a_private_note(workspace, django_capture_on_commit_callbacks):
    a, b = agent_in(workspace), agent_in(workspace)
    conversation = open_conversation(workspace)
    owner, other = (a, b) if conversation.assignee == a else (b, a)
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_transfer(
            agent=owner, conversation_id=conversation.pk, to_agent_id=other.pk, note="VIP"
        )
    conversation.refresh_from_db()
    assert conversation.assignee == other
    event = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.TRANSFERRED)
    assert (event.actor, event.agent, event.text, event.data) == (
        owner,
        other,
        "VIP",
        {"from": owner.pk},
    )
    assert ConversationEvent.objects.filter(
        conversation=conversation, kind=EventKind.ASSIGNED, data__how="transfer"
    ).exists()


def test_transfer_to_a_team_routes_inside_it_or_queues(workspace):
    a = agent_in(workspace)
    billing = Team.objects.create(workspace=workspace, name="Billing")
    conversation = open_conversation(workspace)
    assert conversation.assignee == a
    services.conversation_transfer(agent=a, conversation_id=conversation.pk, to_team_id=billing.pk)
    conversation.refresh_from_db()
    assert conversation.team == billing and conversation.assignee is None
    assert routing.queue_position(conversation) == 1  # nobody in Billing
    biller = agent_in(workspace)
    biller.teams.add(billing)
    routing.queue_drain(workspace_id=workspace.pk)
    conversation.refresh_from_db()
    assert conversation.assignee == biller


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"to_agent_id": 1, "to_team_id": 1},
        {"to_agent_id": "1"},
        {"to_agent_id": True},
        {"to_agent_id": 10**9},
        {"to_team_id": 10**9},
        {"to_team_id": [1]},
    ],
)
def test_bad_transfers_are_refused_and_change_nothing(workspace, kwargs):
    a = agent_in(workspace)
    conversation = open_conversation(workspace)
    with pytest.raises(ChatError) as exc:
        services.conversation_transfer(agent=a, conversation_id=conversation.pk, **kwargs)
    assert exc.value.code == "invalid_target"
    conversation.refresh_from_db()
    assert conversation.assignee == a
    assert not ConversationEvent.objects.filter(kind=EventKind.TRANSFERRED).exists()


def test_transfers_never_cross_workspaces(workspace):
    a = agent_in(workspace)
    elsewhere = WorkspaceFactory()
    foreign_agent = agent_in(elsewhere)
    foreign_team = Team.objects.create(workspace=elsewhere, name="X")
    conversation = open_conversation(workspace)
    for kwargs in ({"to_agent_id": foreign_agent.pk}, {"to_team_id": foreign_team.pk}):
        with pytest.raises(ChatError) as exc:
            services.conversation_transfer(agent=a, conversation_id=conversation.pk, **kwargs)
        assert exc.value.code == "invalid_target"
    theirs = open_conversation(elsewhere)
    with pytest.raises(ChatError) as exc:
        services.conversation_transfer(agent=a, conversation_id=theirs.pk, to_agent_id=a.pk)
    assert exc.value.code == "not_found"
    with pytest.raises(ChatError):
        services.conversation_transfer(
            agent=a, conversation_id=conversation.pk, to_agent_id=a.pk
        )  # already theirs


def test_statuses_snooze_and_wake(workspace, django_capture_on_commit_callbacks):
    agent = agent_in(workspace, max_concurrent_chats=1)
    conversation = open_conversation(workspace)
    queued = open_conversation(workspace)
    assert queued.assignee is None
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_status_set(
            agent=agent, conversation_id=conversation.pk, status="snoozed", snooze_until=until
        )
    conversation.refresh_from_db()
    assert conversation.status == "snoozed" and conversation.snoozed_until is not None
    queued.refresh_from_db()
    assert queued.assignee == agent  # snoozing freed the slot
    # Due: the heartbeat's housekeeping wakes it.
    Conversation.objects.filter(pk=conversation.pk).update(
        snoozed_until=timezone.now() - timedelta(seconds=1)
    )
    assert services.conversations_wake_due(workspace_id=workspace.pk) == 1
    conversation.refresh_from_db()
    assert (conversation.status, conversation.snoozed_until) == ("open", None)
    kinds = list(
        ConversationEvent.objects.filter(conversation=conversation, kind=EventKind.STATUS)
        .order_by("pk")
        .values_list("data__to", "data__by")
    )
    assert kinds == [("snoozed", "agent"), ("open", "timer")]
    services.conversation_status_set(agent=agent, conversation_id=conversation.pk, status="pending")
    services.conversation_resolve(agent=agent, conversation_id=conversation.pk)
    conversation.refresh_from_db()
    assert conversation.resolution_seconds is not None and conversation.resolved_at


@pytest.mark.parametrize(
    ("status", "until", "code"),
    [
        ("closed", None, "invalid_status"),
        (None, None, "invalid_status"),
        ("snoozed", None, "invalid_snooze"),
        ("snoozed", "tomorrow", "invalid_snooze"),
        ("snoozed", "2020-01-01T00:00:00+00:00", "invalid_snooze"),
        ("snoozed", "2999-01-01T00:00:00+00:00", "invalid_snooze"),
        ("snoozed", "2030-01-01T00:00:00", "invalid_snooze"),  # no time zone
        ("snoozed", 1767225600, "invalid_snooze"),
    ],
)
def test_bad_status_changes_are_refused(workspace, status, until, code):
    agent = agent_in(workspace)
    conversation = open_conversation(workspace)
    with pytest.raises(ChatError) as exc:
        services.conversation_status_set(
            agent=agent, conversation_id=conversation.pk, status=status, snooze_until=until
        )
    assert exc.value.code == code
    conversation.refresh_from_db()
    assert conversation.status == "open"


def test_a_visitor_message_wakes_a_snoozed_conversation(workspace):
    agent = agent_in(workspace)
    conversation = open_conversation(workspace)
    services.conversation_status_set(
        agent=agent,
        conversation_id=conversation.pk,
        status="snoozed",
        snooze_until=(timezone.now() + timedelta(days=1)).isoformat(),
    )
    services.visitor_message_send(visitor=conversation.visitor, client_id="w", text="hello?")
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.assignee == agent


def test_notes_are_private_events(workspace):
    agent = agent_in(workspace)
    conversation = open_conversation(workspace)
    note = services.note_add(agent=agent, conversation_id=conversation.pk, text="  call back  ")
    assert (note.kind, note.text, note.actor) == (EventKind.NOTE, "call back", agent)
    assert conversation.messages.filter(text__contains="call back").count() == 0
    for bad, code in (
        (" ", "empty_message"),
        (None, "empty_message"),
        (5, "invalid_text"),
        ("x" * 6000, "text_too_long"),
    ):
        with pytest.raises(ChatError) as exc:
            services.note_add(agent=agent, conversation_id=conversation.pk, text=bad)
        assert exc.value.code == code
    outsider = agent_in(WorkspaceFactory())
    with pytest.raises(ChatError) as exc:
        services.note_add(agent=outsider, conversation_id=conversation.pk, text="hi")
    assert exc.value.code == "not_found"
    assert ConversationEvent.objects.filter(kind=EventKind.NOTE).count() == 1


def test_metrics_are_stored_when_they_happen(workspace):
    agent = agent_in(workspace)
    conversation = open_conversation(workspace)
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=timezone.now() - timedelta(seconds=90)
    )
    services.agent_message_send(
        agent=agent, conversation_id=conversation.pk, client_id="a", text="hi"
    )
    conversation.refresh_from_db()
    assert 89 <= conversation.first_response_seconds <= 100
    services.conversation_resolve(agent=agent, conversation_id=conversation.pk)
    conversation.refresh_from_db()
    assert conversation.resolution_seconds >= conversation.first_response_seconds


def test_presence_is_validated(workspace):
    agent = agent_in(workspace)
    for bad in ("busy", None, 1, "ONLINE"):
        with pytest.raises(ChatError) as exc:
            account_services.agent_presence_set(agent=agent, presence=bad)
        assert exc.value.code == "invalid_presence"
    agent.refresh_from_db()
    assert agent.presence == Presence.ONLINE


# --- many at once: a writer batch -------------------------------------------------------------


def first_messages(workspace, visitors, tag: str) -> list[NewMessage]:
    """Each visitor's first message, as the sockets hand them to the writer."""
    return [
        NewMessage(
            conversation_id=None,
            workspace_id=workspace.pk,
            sender_kind=SenderKind.VISITOR,
            client_id=f"{tag}-{n}",
            text="hello",
            visitor_id=v.pk,
        )
        for n, v in enumerate(visitors)
    ]


def test_a_batch_of_first_messages_is_routed_with_one_lock_and_one_candidates_read(workspace):
    """Seven visitors' first messages in one writer batch: round robin over the agents'
    free slots (capacity 2 and 3), the other two queued; the routing reads are taken once
    for the batch, not once per conversation."""
    a = agent_in(workspace, max_concurrent_chats=2)
    b = agent_in(workspace, max_concurrent_chats=3)
    visitors = [VisitorFactory(workspace=workspace) for _ in range(7)]
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        results, _ = messages_store(first_messages(workspace, visitors, "first"))
    assert all(r.error is None for r in results)
    sql = [q["sql"] for q in ctx.captured_queries]
    assert sum("pg_advisory_xact_lock" in q for q in sql) == 1
    assert sum('FROM "accounts_routingrule"' in q for q in sql) == 1
    assert sum("COALESCE((SELECT COUNT" in q for q in sql) == 1  # the candidates query

    conversations = Conversation.objects.filter(visitor__in=visitors)
    assert conversations.filter(assignee=a).count() == 2
    assert conversations.filter(assignee=b).count() == 3
    assert conversations.filter(assignee__isnull=True, queued_at__isnull=False).count() == 2
    assert candidates(workspace) == []  # both full, as the database now says
    # Turns alternate: neither agent got two in a row while the other had room.
    order = list(
        conversations.filter(assignee__isnull=False)
        .order_by("pk")
        .values_list("assignee_id", flat=True)
    )
    assert order[:4] in ([a.pk, b.pk, a.pk, b.pk], [b.pk, a.pk, b.pk, a.pk])


def test_a_batch_asks_who_served_its_visitors_once_and_never_for_new_ones(workspace):
    """Sticky routing in a writer batch: a new visitor has no previous agent (no query);
    returning visitors whose conversations reopen unassigned are answered by one query for
    the batch, and go back to the agent who served them."""
    workspace.routing_sticky = True
    workspace.save()
    a = agent_in(workspace, max_concurrent_chats=10)
    b = agent_in(workspace, max_concurrent_chats=10)
    returning = [VisitorFactory(workspace=workspace) for _ in range(3)]
    for visitor in returning:
        Conversation.objects.create(
            workspace=workspace,
            visitor=visitor,
            assignee=b,
            status=ConversationStatus.RESOLVED,
            last_message_at=timezone.now(),
        )
        Conversation.objects.create(  # the latest: unassigned, its next message reopens it
            workspace=workspace, visitor=visitor, status=ConversationStatus.RESOLVED
        )
    new = [VisitorFactory(workspace=workspace) for _ in range(4)]

    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        results, _ = messages_store(first_messages(workspace, new, "new"))
    assert all(r.error is None for r in results)
    assert not [q for q in ctx.captured_queries if 'AS "previous"' in q["sql"]]

    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        results, _ = messages_store(first_messages(workspace, returning, "back"))
    assert all(r.error is None for r in results)
    assert len([q for q in ctx.captured_queries if 'AS "previous"' in q["sql"]]) == 1
    reopened = Conversation.objects.filter(visitor__in=returning, status=ConversationStatus.OPEN)
    assert sorted(reopened.values_list("assignee_id", flat=True)) == [b.pk] * 3
    assert {c.assignee_id for c in Conversation.objects.filter(visitor__in=new)} == {a.pk, b.pk}
