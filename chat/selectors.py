"""Reads for chat. Every function takes the caller's scope (workspace, visitor or agent)."""

import uuid
from collections.abc import Collection

from django.conf import settings
from django.db.models import Max, Q, QuerySet

from accounts.models import AgentProfile

from . import frames
from .models import Conversation, ConversationEvent, ConversationStatus, Message, Visitor
from .visitor_tokens import visitor_token_valid


def messages_qs() -> QuerySet[Message]:
    return Message.objects.select_related("sender_agent", "attachment")


def messages_after(
    *, conversation_id: int, after_seq: int, limit: int | None = None
) -> tuple[list[Message], bool]:
    """Up to ``limit`` messages with seq > ``after_seq``, oldest first, and whether more follow."""
    limit = limit or settings.HELPDESK_HISTORY_LIMIT
    rows = list(
        messages_qs()
        .filter(conversation_id=conversation_id, seq__gt=max(after_seq, 0))
        .order_by("seq")[: limit + 1]
    )
    return rows[:limit], len(rows) > limit


def conversation_current_for_visitor(*, visitor: Visitor) -> Conversation | None:
    """The visitor's latest conversation; a resolved one is reopened by the next message."""
    return (
        Conversation.objects.select_related("assignee")
        .filter(visitor=visitor)
        .order_by("-created_at", "-pk")
        .first()
    )


def conversations_current_for_visitors(visitor_ids: list[int]) -> dict[int, Conversation]:
    """{visitor id: its latest conversation} in one query, for a batch of hellos (a visitor
    has few conversations, so all are read and the latest kept)."""
    latest: dict[int, Conversation] = {}
    for conversation in (
        Conversation.objects.select_related("assignee")
        .filter(visitor_id__in=visitor_ids)
        .order_by("visitor_id", "created_at", "pk")
    ):
        latest[conversation.visitor_id] = conversation  # ascending: the last one wins
    return latest


def conversation_seq_for_visitor(*, visitor: Visitor) -> tuple[int | None, int]:
    """(id, last_seq) of the visitor's latest conversation, or (None, 0)."""
    return conversation_seqs_for_visitors([visitor.pk]).get(visitor.pk, (None, 0))


def conversation_seqs_for_visitors(visitor_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{visitor id: (id, last_seq) of its latest conversation} for the visitors that have
    one: the heartbeats' one small query for a whole batch of sockets (no join, no model
    instance; a visitor has few conversations, so all are read and the latest kept)."""
    latest: dict[int, tuple[int, int]] = {}
    for visitor_id, pk, last_seq in (
        Conversation.objects.filter(visitor_id__in=visitor_ids)
        .order_by("visitor_id", "created_at", "pk")
        .values_list("visitor_id", "pk", "last_seq")
    ):
        latest[visitor_id] = (pk, last_seq)  # ascending: the last one read wins
    return latest


def conversation_get_for_agent(*, agent: AgentProfile, conversation_id) -> Conversation | None:
    """The conversation if it belongs to the agent's workspace, else None."""
    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        return None
    return (
        Conversation.objects.select_related("visitor", "assignee", "team")
        .filter(pk=conversation_id, workspace_id=agent.workspace_id)
        .first()
    )


LIST_VIEWS = ("inbox", "mine", "unassigned", "team", "all")


def conversation_in_view(
    row: dict, *, agent_id: int, team_ids: Collection[int], view: str, status: str | None
) -> bool:
    """Whether a conversation row (``frames.conversation_frame``) belongs in a console list
    of ``view`` and ``status``: the filters of :func:`conversation_list_for_agent`, applied
    to a row instead of a query."""
    if status and row["status"] != status:
        return False
    assignee = (row["assignee"] or {}).get("id")
    team = (row["team"] or {}).get("id")
    mine = assignee == agent_id
    if view == "mine":
        return mine
    if view == "unassigned":
        return assignee is None
    if view == "team":
        return team in team_ids
    if view == "inbox":
        return mine or assignee is None or team in team_ids
    return True


def conversation_list_for_agent(
    *, agent: AgentProfile, view: str = "all", status: str | None = None, limit: int = 100
) -> list[Conversation]:
    """The console's list for a view ("inbox", "mine", "unassigned", "team", "all") and an
    optional status; without a status, unresolved first, then recently resolved.

    The caller checks that the agent may use the view ("all" is for workspace admins).
    """
    base = (
        Conversation.objects.select_related("visitor", "assignee", "team")
        .prefetch_related(frames.labels_lookup())  # conversation_frame shows them: one query
        .filter(workspace_id=agent.workspace_id)
    )
    if view == "mine":
        base = base.filter(assignee=agent)
    elif view == "unassigned":
        base = base.filter(assignee__isnull=True)
    elif view == "team":
        base = base.filter(team__in=agent.teams.all())
    elif view == "inbox":  # the default for agents: theirs, waiting, and their teams'
        base = base.filter(
            Q(assignee=agent) | Q(assignee__isnull=True) | Q(team__in=agent.teams.all())
        )
    if status:
        return list(base.filter(status=status).order_by("-last_message_at", "-pk")[:limit])
    active = list(
        base.exclude(status=ConversationStatus.RESOLVED).order_by("-last_message_at")[:limit]
    )
    rest = limit - len(active)
    resolved = (
        list(base.filter(status=ConversationStatus.RESOLVED).order_by("-last_message_at")[:rest])
        if rest > 0
        else []
    )
    return active + resolved


def conversation_events(*, conversation_id: int, limit: int = 500) -> list[ConversationEvent]:
    """The timeline's events and notes of a conversation (caller scoped it), oldest first."""
    rows = (
        ConversationEvent.objects.select_related("actor", "agent", "team")
        .filter(conversation_id=conversation_id)
        .order_by("-created_at", "-pk")[:limit]
    )
    return list(reversed(rows))


def workspace_agents(*, workspace_id: int) -> list[AgentProfile]:
    return list(
        AgentProfile.objects.filter(workspace_id=workspace_id, user__is_active=True).order_by(
            "display_name", "pk"
        )
    )


def workspace_last_message_id(*, workspace_id: int) -> int:
    return Message.objects.filter(workspace_id=workspace_id).aggregate(m=Max("id"))["m"] or 0


def visitor_get_by_token(*, workspace, public_id: object, token: object) -> Visitor | None:
    """The workspace's visitor with that public id, if the token proves it."""
    try:
        public_id = str(uuid.UUID(str(public_id)))
    except ValueError:
        return None
    if not visitor_token_valid(workspace_id=workspace.pk, public_id=public_id, token=token):
        return None
    return Visitor.objects.filter(workspace=workspace, public_id=public_id).first()
