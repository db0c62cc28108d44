"""Which agent gets a conversation.

For now: round-robin among the workspace's available agents who are under capacity.
Everything else in the code base calls :func:`conversation_assign_auto`; a routing
strategy replaces the body of :func:`pick_agent` without touching callers.
"""

from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.models import AgentProfile
from accounts.selectors import agents_available

from .models import Conversation, ConversationStatus


def pick_agent(*, conversation: Conversation) -> AgentProfile | None:
    """The available agent under capacity who was assigned least recently."""
    candidates = (
        agents_available(workspace_id=conversation.workspace_id)
        .annotate(
            open_count=Count(
                "conversations",
                filter=~Q(conversations__status=ConversationStatus.RESOLVED),
                distinct=True,
            )
        )
        .filter(open_count__lt=F("max_concurrent_chats"))
        .order_by(F("last_assigned_at").asc(nulls_first=True), "pk")
    )
    return candidates.first()


def conversation_assign_auto(*, conversation: Conversation) -> AgentProfile | None:
    """Assign ``conversation`` to the next agent; call inside the caller's transaction."""
    agent = pick_agent(conversation=conversation)
    if agent is None:
        return None
    conversation.assignee = agent
    AgentProfile.objects.filter(pk=agent.pk).update(last_assigned_at=timezone.now())
    return agent
