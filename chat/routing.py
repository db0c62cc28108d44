"""Who gets a conversation: strategies, team rules, the queue, race-free assignment.

The interface (docs/routing.md has a worked example of a custom class)::

    class MyStrategy(chat.routing.Strategy):
        def pick(self, conversation, candidates):
            return candidates[0] if candidates else None

``candidates`` are the agents who may take the conversation right now: online (presence
"online" and a live console socket), active, in the conversation's team when it has one,
and under their capacity, each with their current load. A strategy only chooses among
them, so no strategy (a custom one included) can put an agent over capacity.

Race-free: every automatic decision in a workspace runs under one PostgreSQL advisory
transaction lock (:func:`_routing_lock`), taken *after* the conversation row lock. Loads
are read after the lock, so they include every assignment committed before it; two
processes never hand the last free slot out twice and never assign one conversation twice
(the conversation row is locked and rechecked). The queue drain takes the advisory lock
first and then only *skips* locked conversations (``SKIP LOCKED``), so the two orders can
never wait on each other: no deadlock.
"""

import fnmatch
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import AgentProfile, RoutingRule, RoutingStrategy, Team
from accounts.selectors import agents_available
from helpdesk.bulk import bulk_update_rows

from . import frames
from .models import ACTIVE_STATUSES, Conversation, EventKind, Visitor
from .realtime import (
    broadcast_on_commit,
    visitor_group,
    workspace_agents_group,
)

log = logging.getLogger(__name__)
_LOCK_NAMESPACE = 0x68656C70  # "help": keeps our advisory keys apart from anyone else's


@dataclass(frozen=True)
class Candidate:
    """An agent who could take the conversation now, with their current load."""

    agent: AgentProfile
    open_count: int  # conversations assigned to them that are open or pending

    @property
    def capacity(self) -> int:
        return self.agent.max_concurrent_chats

    @property
    def load(self) -> float:
        return self.open_count / self.capacity if self.capacity else 1.0


class Strategy:
    """Picks one of ``candidates`` for ``conversation``, or None to leave it queued."""

    name = "strategy"

    def pick(self, conversation: Conversation, candidates: Sequence[Candidate]) -> Candidate | None:
        raise NotImplementedError


def _assigned_order(c: Candidate):
    # Never-assigned agents first, then the one who waited longest.
    at = c.agent.last_assigned_at
    return (at is not None, at or timezone.now(), c.agent.pk)


class RoundRobin(Strategy):
    """The available agent who was assigned least recently."""

    name = RoutingStrategy.ROUND_ROBIN

    def pick(self, conversation, candidates):
        return min(candidates, key=_assigned_order, default=None)


class LeastBusy(Strategy):
    """The agent with the most room: fewest open chats relative to capacity."""

    name = RoutingStrategy.LEAST_BUSY

    def pick(self, conversation, candidates):
        return min(
            candidates, key=lambda c: (c.load, c.open_count, *_assigned_order(c)), default=None
        )


def previous_assignees(visitor_ids: Iterable[int]) -> dict[int, int | None]:
    """Per visitor: the agent of their latest assigned conversation (None if none), in one
    query."""
    latest = (
        Conversation.objects.filter(visitor_id=OuterRef("pk"), assignee__isnull=False)
        .order_by("-last_message_at", "-pk")
        .values("assignee_id")[:1]
    )
    ids = set(visitor_ids)
    found = dict(
        Visitor.objects.filter(pk__in=ids)
        .annotate(previous=Subquery(latest, output_field=IntegerField()))
        .values_list("pk", "previous")
    )
    return {pk: found.get(pk) for pk in ids}


def _previous_assignee(visitor_id: int) -> int | None:
    return previous_assignees([visitor_id])[visitor_id]


class Sticky(Strategy):
    """A returning visitor goes back to the agent who last served them, if available;
    otherwise ``fallback`` decides. ``previous`` answers "who served this visitor last"
    (a routing round answers it for its whole batch in one query)."""

    def __init__(
        self, fallback: Strategy, previous: Callable[[int], int | None] | None = None
    ) -> None:
        self.fallback = fallback
        self.previous = previous or _previous_assignee
        self.name = f"sticky+{fallback.name}"

    def pick(self, conversation, candidates):
        previous = self.previous(conversation.visitor_id)
        for c in candidates:
            if c.agent.pk == previous:
                return c
        return self.fallback.pick(conversation, candidates)


@functools.cache
def _custom_class(path: str) -> type[Strategy]:
    return import_string(path)


def strategy_build(
    name: str, *, sticky: bool, previous: Callable[[int], int | None] | None = None
) -> Strategy:
    """The strategy called ``name`` (a RoutingStrategy value), wrapped in Sticky if asked."""
    if name == RoutingStrategy.CUSTOM and settings.HELPDESK_ROUTING_CUSTOM_STRATEGY:
        strategy = _custom_class(settings.HELPDESK_ROUTING_CUSTOM_STRATEGY)()
    elif name == RoutingStrategy.LEAST_BUSY:
        strategy = LeastBusy()
    else:
        if name == RoutingStrategy.CUSTOM:
            log.warning("custom routing chosen but HELPDESK_ROUTING_CUSTOM_STRATEGY is not set")
        strategy = RoundRobin()
    return Sticky(strategy, previous) if sticky else strategy


def team_for(conversation: Conversation, rules: list[RoutingRule] | None = None) -> Team | None:
    """The team a conversation goes to: the department the visitor chose, else the first
    enabled rule matching the page URL and language, else none (the whole workspace).
    ``rules``: the workspace's enabled rules, if already read."""
    if conversation.team_id:
        return conversation.team
    visitor = conversation.visitor
    url = (visitor.current_url or "").lower()
    language = (visitor.language or "").lower()
    if rules is None:
        rules = rules_for(workspace_id=conversation.workspace_id)
    for rule in rules:
        if rule.url_pattern and not fnmatch.fnmatchcase(url, rule.url_pattern.lower()):
            continue
        if rule.language and not language.startswith(rule.language.lower()):
            continue
        return rule.team
    return None


def rules_for(*, workspace_id: int) -> list[RoutingRule]:
    return list(
        RoutingRule.objects.filter(workspace_id=workspace_id, enabled=True).select_related("team")
    )


def candidates_for(*, workspace_id: int, team_id: int | None) -> list[Candidate]:
    """Available agents under capacity (in the team, if any), with their open counts."""
    open_count = (
        Conversation.objects.filter(assignee=OuterRef("pk"), status__in=ACTIVE_STATUSES)
        .order_by()
        .values("assignee")
        .annotate(n=Count("pk"))
        .values("n")
    )
    qs = AgentProfile.objects.filter(
        pk__in=agents_available(workspace_id=workspace_id).values("pk"),
        max_concurrent_chats__gt=0,
    ).annotate(open_count=Coalesce(Subquery(open_count, output_field=IntegerField()), 0))
    if team_id is not None:
        qs = qs.filter(teams=team_id)
    return [
        Candidate(agent=a, open_count=a.open_count)
        for a in qs.order_by("pk")
        if a.open_count < a.max_concurrent_chats
    ]


_local_locks: dict[int, object] = {}


def _routing_lock(workspace_id: int) -> None:
    """Serialise automatic assignment in a workspace until the transaction ends."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("routing must run inside transaction.atomic")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, workspace_id])
    # SQLite (the embedded single-process mode) serialises writing transactions itself.


def _strategy_for(
    conversation: Conversation, team: Team | None, previous: Callable[[int], int | None]
) -> Strategy:
    workspace = conversation.workspace
    name = team.routing_strategy if team else workspace.routing_strategy
    return strategy_build(name, sticky=workspace.routing_sticky, previous=previous)


class RoutingRound:
    """The automatic decisions of one transaction: a writer batch, a queue drain.

    A batch of a few hundred new conversations used to cost a rules query, a lock query
    and a candidates query each. A round takes each workspace's lock once, reads its rules
    once and each team's candidates once (after the lock), then keeps those candidates
    current in memory as it assigns: nobody else can assign in the workspace until the
    transaction ends, so the loads it holds are the loads in the database.
    """

    def __init__(self, *, defer_writes: bool = False) -> None:
        self._locked: set[int] = set()
        self._rules: dict[int, list[RoutingRule]] = {}
        self._candidates: dict[tuple[int, int | None], list[Candidate]] = {}
        # With defer_writes (a writer batch), assignments are written by flush(): one
        # update of the agents, one insert of the events; the caller writes the
        # conversations' ROUTING_FIELDS with the rest of their changes.
        self.defer_writes = defer_writes
        self._agents: dict[int, AgentProfile] = {}
        self._events: list = []
        # Sticky routing's "who served this visitor last", read for all expected visitors
        # at the first question.
        self._expected: set[int] = set()
        self._previous: dict[int, int | None] = {}

    def expect(self, visitor_ids: Iterable[int]) -> None:
        """These visitors' conversations may be routed in this round."""
        self._expected.update(visitor_ids)

    def never_served(self, visitor_ids: Iterable[int]) -> None:
        """These visitors had no conversation before this round: nobody served them."""
        self._previous.update(dict.fromkeys(visitor_ids))

    def previous_assignee(self, visitor_id: int) -> int | None:
        if visitor_id not in self._previous:
            wanted = (self._expected | {visitor_id}) - self._previous.keys()
            self._previous.update(previous_assignees(wanted))
        return self._previous[visitor_id]

    def defer(self, event, agent: AgentProfile | None) -> None:
        if agent is not None:
            self._agents[agent.pk] = agent
        self._events.append(event)

    def flush(self) -> None:
        """Write the deferred agents' turns and events (inside the caller's transaction)."""
        from .timeline import events_record

        if self._agents:
            bulk_update_rows(list(self._agents.values()), ["last_assigned_at"])
        if self._events:
            events_record(self._events)
        self._agents, self._events = {}, []

    def team_for(self, conversation: Conversation) -> Team | None:
        if conversation.team_id:
            return conversation.team
        workspace_id = conversation.workspace_id
        if workspace_id not in self._rules:
            self._rules[workspace_id] = rules_for(workspace_id=workspace_id)
        return team_for(conversation, self._rules[workspace_id])

    def lock(self, workspace_id: int) -> None:
        if workspace_id not in self._locked:
            _routing_lock(workspace_id)
            self._locked.add(workspace_id)

    def candidates(self, workspace_id: int, team_id: int | None) -> list[Candidate]:
        key = (workspace_id, team_id)
        if key not in self._candidates:
            self.lock(workspace_id)  # loads read after the lock include every commit
            self._candidates[key] = candidates_for(workspace_id=workspace_id, team_id=team_id)
        return self._candidates[key]

    def pick(self, conversation: Conversation, team: Team | None) -> AgentProfile | None:
        candidates = self.candidates(conversation.workspace_id, team.pk if team else None)
        if not candidates:
            return None
        strategy = _strategy_for(conversation, team, self.previous_assignee)
        chosen = strategy.pick(conversation, candidates)
        if chosen is None:
            return None
        if not any(
            c.agent.pk == getattr(getattr(chosen, "agent", None), "pk", None) for c in candidates
        ):
            log.error("routing strategy %s picked a non-candidate; ignored", strategy.name)
            return None
        return chosen.agent

    def assigned(self, agent: AgentProfile) -> None:
        """``agent`` took one more conversation: one more open, assigned just now, and no
        longer a candidate once full (in every team's list this round holds)."""
        for key, candidates in self._candidates.items():
            kept = []
            for c in candidates:
                if c.agent.pk == agent.pk:
                    c.agent.last_assigned_at = agent.last_assigned_at
                    c = Candidate(agent=c.agent, open_count=c.open_count + 1)
                    if c.open_count >= c.capacity:
                        continue
                kept.append(c)
            self._candidates[key] = kept


ROUTING_FIELDS = ("assignee", "queued_at", "team")  # what routing changes on a conversation


def _routing_write(
    conversation: Conversation,
    event,
    agent: AgentProfile | None,
    routing_round: RoutingRound | None,
) -> None:
    """An assignment or queueing decided: write it now, or leave it to the round."""
    from .timeline import events_record

    if routing_round is not None and routing_round.defer_writes:
        routing_round.defer(event, agent)
        return
    Conversation.objects.filter(pk=conversation.pk).update(
        assignee=conversation.assignee, queued_at=conversation.queued_at, team=conversation.team
    )
    if agent is not None:
        AgentProfile.objects.filter(pk=agent.pk).update(last_assigned_at=agent.last_assigned_at)
    events_record([event])


def conversation_assign(
    conversation: Conversation,
    agent: AgentProfile,
    *,
    actor: AgentProfile | None = None,
    how: str = "routing",
    announce: bool = True,
    queue_announce: bool = True,
    routing_round: RoutingRound | None = None,
) -> None:
    """Give ``conversation`` (row locked by the caller) to ``agent``; record and tell.

    With a ``routing_round`` that defers writes, the rows are written by the round's
    :meth:`RoutingRound.flush` and the conversation's fields (:data:`ROUTING_FIELDS`) by
    the caller.
    """
    from .timeline import EventSpec  # timeline imports message_store, which imports us

    now = timezone.now()
    waited = int((now - conversation.queued_at).total_seconds()) if conversation.queued_at else 0
    was_queued = conversation.queued_at is not None
    conversation.assignee = agent
    conversation.queued_at = None
    agent.last_assigned_at = now
    event = EventSpec(
        conversation=conversation,
        kind=EventKind.ASSIGNED,
        actor=actor,
        agent=agent,
        team=conversation.team,
        data={"how": how, "waited_seconds": waited},
    )
    _routing_write(conversation, event, agent, routing_round)
    if was_queued:  # it leaves the queue (a conversation routed at once never joined it)
        broadcast_on_commit(
            visitor_group(conversation.visitor_id),
            {"type": "chat.queue", "conversation_id": conversation.pk, "position": None},
        )
    if announce:
        announce_conversation(conversation)
    if was_queued and queue_announce:
        queue_broadcast_on_commit(conversation.workspace_id)


def announce_conversation(conversation: Conversation) -> None:
    """Push a changed conversation (assignee, status) to every console and its visitor."""
    broadcast_on_commit(
        workspace_agents_group(conversation.workspace_id),
        {"type": "chat.conversation", "conversation": frames.conversation_frame(conversation)},
    )
    broadcast_on_commit(
        visitor_group(conversation.visitor_id),
        {"type": "chat.conversation", "conversation": frames.visitor_conversation(conversation)},
    )


def conversation_enqueue(
    conversation: Conversation, *, routing_round: RoutingRound | None = None
) -> None:
    """Put an unassigned conversation in its team's queue (no-op if already there)."""
    from .timeline import EventSpec

    if conversation.queued_at is not None:
        return
    conversation.queued_at = timezone.now()
    event = EventSpec(conversation=conversation, kind=EventKind.QUEUED, team=conversation.team)
    _routing_write(conversation, event, None, routing_round)
    _joined_queue_on_commit(conversation)


def conversation_route(
    conversation: Conversation,
    *,
    announce: bool = True,
    routing_round: RoutingRound | None = None,
) -> AgentProfile | None:
    """Find an agent for an unassigned active conversation, or queue it.

    The caller holds the conversation's row lock inside ``transaction.atomic``; a caller
    routing many conversations in one transaction passes one ``routing_round`` for all.
    """
    if conversation.assignee_id is not None:
        return conversation.assignee
    routing_round = routing_round or RoutingRound()
    team = routing_round.team_for(conversation)
    conversation.team = team
    agent = routing_round.pick(conversation, team)
    if agent is not None:
        conversation_assign(conversation, agent, announce=announce, routing_round=routing_round)
        routing_round.assigned(agent)
        return agent
    conversation_enqueue(conversation, routing_round=routing_round)
    return None


def queue_drain(*, workspace_id: int, limit: int = 100) -> int:
    """Hand queued conversations to agents who can take them, first come first served
    per team. Runs in its own transaction; returns how many were assigned."""
    assigned = 0
    routing_round = RoutingRound()
    with transaction.atomic():
        routing_round.lock(workspace_id)
        queued = list(
            Conversation.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("visitor", "workspace", "team")
            .filter(
                workspace_id=workspace_id,
                queued_at__isnull=False,
                assignee__isnull=True,
                status__in=ACTIVE_STATUSES,
            )
            .order_by("queued_at", "pk")[:limit]
        )
        routing_round.expect(c.visitor_id for c in queued)
        full: set[int | None] = set()
        for conversation in queued:
            if conversation.team_id in full:
                continue  # keep the team's order: nobody there took the one before
            agent = routing_round.pick(conversation, conversation.team)
            if agent is None:
                full.add(conversation.team_id)
                continue
            conversation_assign(conversation, agent, how="queue", queue_announce=False)
            routing_round.assigned(agent)
            assigned += 1
        if assigned:
            queue_broadcast_on_commit(workspace_id)
    return assigned


def queue_drain_on_commit(workspace_id: int) -> None:
    """Drain the queue once the current transaction (which freed a slot) commits."""

    def drain() -> None:
        try:
            queue_drain(workspace_id=workspace_id)
        except Exception:
            # The queue is drained again on the next trigger and on agents' heartbeats.
            log.exception("queue drain failed for workspace %s", workspace_id)

    transaction.on_commit(drain)


def queue_entries(*, workspace_id: int) -> list[tuple[int, int, int | None]]:
    """(conversation id, visitor id, team id) of the waiting conversations, in order."""
    return list(
        Conversation.objects.filter(
            workspace_id=workspace_id,
            queued_at__isnull=False,
            assignee__isnull=True,
            status__in=ACTIVE_STATUSES,
        )
        .order_by("queued_at", "pk")
        .values_list("pk", "visitor_id", "team_id")
    )


def queue_position(conversation: Conversation) -> int | None:
    """1 for the head of the conversation's team queue; None when not waiting."""
    if conversation.queued_at is None or conversation.assignee_id is not None:
        return None
    if conversation.status not in ACTIVE_STATUSES:
        return None
    return (
        Conversation.objects.filter(
            workspace_id=conversation.workspace_id,
            team_id=conversation.team_id,
            assignee__isnull=True,
            status__in=ACTIVE_STATUSES,
        )
        .filter(
            Q(queued_at__lt=conversation.queued_at)
            | Q(queued_at=conversation.queued_at, pk__lt=conversation.pk)
        )
        .count()
        + 1
    )


def queue_summary(*, workspace_id: int) -> dict:
    """What the console shows: how many wait, in total and per team (one query)."""
    rows = (
        Conversation.objects.filter(
            workspace_id=workspace_id,
            queued_at__isnull=False,
            assignee__isnull=True,
            status__in=ACTIVE_STATUSES,
        )
        .order_by()
        .values_list("team_id")
        .annotate(n=Count("pk"))
    )
    teams = {str(team_id) if team_id else "none": n for team_id, n in rows}
    return {"total": sum(teams.values()), "teams": teams}


def _send_queue_count(workspace_id: int) -> None:
    from .realtime import _send

    _send(
        workspace_agents_group(workspace_id),
        {"type": "chat.queue_count", "queue": queue_summary(workspace_id=workspace_id)},
    )


def queue_broadcast(*, workspace_id: int) -> None:
    """Someone left the queue: tell every waiting visitor their new position, and every
    console the queue's size. (Joining the queue moves nobody: see
    :func:`conversation_enqueue`.)"""
    from .realtime import _send

    positions: dict[int | None, int] = {}
    for pk, visitor_id, team_id in queue_entries(workspace_id=workspace_id):
        positions[team_id] = positions.get(team_id, 0) + 1
        _send(
            visitor_group(visitor_id),
            {"type": "chat.queue", "conversation_id": pk, "position": positions[team_id]},
        )
    _send_queue_count(workspace_id)


def queue_broadcast_on_commit(workspace_id: int) -> None:
    transaction.on_commit(lambda: queue_broadcast(workspace_id=workspace_id), robust=True)


def _joined_queue_on_commit(conversation: Conversation) -> None:
    """The newcomer learns their position; consoles the new size. Nobody else moved."""
    from .realtime import _send

    def send() -> None:
        _send(
            visitor_group(conversation.visitor_id),
            {
                "type": "chat.queue",
                "conversation_id": conversation.pk,
                "position": queue_position(conversation),
            },
        )
        _send_queue_count(conversation.workspace_id)

    transaction.on_commit(send, robust=True)
