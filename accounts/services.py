"""Writes about agents: console connections and presence."""

from django.db import transaction
from django.utils import timezone

from chat.realtime import broadcast_on_commit, workspace_visitors_group

from .models import AgentConnection, AgentProfile
from .selectors import fresh_since, workspace_has_agents_online


def _announce_availability_change(*, workspace_id: int, before: bool) -> None:
    after = workspace_has_agents_online(workspace_id=workspace_id)
    if after != before:
        broadcast_on_commit(
            workspace_visitors_group(workspace_id),
            {"type": "workspace.availability", "agents_online": after},
        )


def agent_connection_open(*, agent: AgentProfile, channel_name: str) -> None:
    """Record a console socket; tell visitors if the workspace just came online."""
    with transaction.atomic():
        before = workspace_has_agents_online(workspace_id=agent.workspace_id)
        AgentConnection.objects.filter(agent=agent, last_seen_at__lt=fresh_since()).delete()
        AgentConnection.objects.update_or_create(
            channel_name=channel_name,
            defaults={
                "agent": agent,
                "workspace_id": agent.workspace_id,
                "last_seen_at": timezone.now(),
            },
        )
        _announce_availability_change(workspace_id=agent.workspace_id, before=before)


def agent_connection_touch(*, channel_name: str) -> None:
    AgentConnection.objects.filter(channel_name=channel_name).update(last_seen_at=timezone.now())


def agent_connection_close(*, agent: AgentProfile, channel_name: str) -> None:
    with transaction.atomic():
        before = workspace_has_agents_online(workspace_id=agent.workspace_id)
        AgentConnection.objects.filter(channel_name=channel_name).delete()
        _announce_availability_change(workspace_id=agent.workspace_id, before=before)
