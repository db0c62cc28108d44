"""The console timeline's system events and private notes (agents only).

:func:`event_record` is the one way an event is written: the row, then an ``event`` frame
to the agents who follow the conversation, after commit. Visitors never receive these
frames: the visitor consumer has no handler for ``chat.event`` and no visitor read touches
``ConversationEvent``.
"""

from dataclasses import dataclass
from typing import Any

from accounts.models import AgentProfile, Team

from . import frames
from .message_store import agent_side_groups
from .models import Conversation, ConversationEvent
from .realtime import agent_group, broadcast_on_commit


def event_record(
    *,
    conversation: Conversation,
    kind: str,
    actor: AgentProfile | None = None,
    agent: AgentProfile | None = None,
    team: Team | None = None,
    text: str = "",
    data: dict[str, Any] | None = None,
    ref: str | None = None,
    also_agent_id: int | None = None,
) -> ConversationEvent:
    """Record an event in ``conversation`` and push it to its agents on commit.

    ``ref`` (a client id) comes back in the frame so the console that asked can match it;
    ``also_agent_id`` names one more agent to tell (e.g. the one a transfer took it from).
    """
    return events_record(
        [
            EventSpec(
                conversation=conversation,
                kind=kind,
                actor=actor,
                agent=agent,
                team=team,
                text=text,
                data=data,
                ref=ref,
                also_agent_id=also_agent_id,
            )
        ]
    )[0]


@dataclass
class EventSpec:
    """The arguments of one :func:`event_record`, for :func:`events_record`."""

    conversation: Conversation
    kind: str
    actor: AgentProfile | None = None
    agent: AgentProfile | None = None
    team: Team | None = None
    text: str = ""
    data: dict[str, Any] | None = None
    ref: str | None = None
    also_agent_id: int | None = None


def events_record(specs: list[EventSpec]) -> list[ConversationEvent]:
    """:func:`event_record` for many events in one insert (a writer batch's routing)."""
    events = ConversationEvent.objects.bulk_create(
        [
            ConversationEvent(
                workspace_id=spec.conversation.workspace_id,
                conversation=spec.conversation,
                kind=spec.kind,
                actor=spec.actor,
                agent=spec.agent,
                team=spec.team,
                text=spec.text,
                data=spec.data or {},
            )
            for spec in specs
        ]
    )
    for spec, event in zip(specs, events, strict=True):
        payload = {
            "type": "chat.event",
            "conversation_id": spec.conversation.pk,
            "event": frames.event_frame(event),
        }
        if spec.ref:
            payload["ref"] = spec.ref
        groups = agent_side_groups(spec.conversation)
        if spec.also_agent_id is not None and agent_group(spec.also_agent_id) not in groups:
            groups.append(agent_group(spec.also_agent_id))
        for group in groups:
            broadcast_on_commit(group, payload)
    return events
