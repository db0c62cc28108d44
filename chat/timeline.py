"""The console timeline's system events and private notes (agents only).

:func:`event_record` is the one way an event is written: the row, then an ``event`` frame
to the agents who follow the conversation, after commit. Visitors never receive these
frames: the visitor consumer has no handler for ``chat.event`` and no visitor read touches
``ConversationEvent``.
"""

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
    event = ConversationEvent.objects.create(
        workspace_id=conversation.workspace_id,
        conversation=conversation,
        kind=kind,
        actor=actor,
        agent=agent,
        team=team,
        text=text,
        data=data or {},
    )
    payload = {
        "type": "chat.event",
        "conversation_id": conversation.pk,
        "event": frames.event_frame(event),
    }
    if ref:
        payload["ref"] = ref
    groups = agent_side_groups(conversation)
    if also_agent_id is not None and agent_group(also_agent_id) not in groups:
        groups.append(agent_group(also_agent_id))
    for group in groups:
        broadcast_on_commit(group, payload)
    return event
