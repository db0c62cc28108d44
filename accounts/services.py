"""Writes about agents: console connections and presence."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from chat.errors import ChatError
from chat.realtime import broadcast_on_commit, workspace_agents_group, workspace_visitors_group

from .models import AgentConnection, AgentProfile, Presence
from .selectors import agent_is_connected, fresh_since, workspace_has_agents_online


def _announce_availability_change(*, workspace_id: int, before: bool) -> None:
    from chat.widget_cache import agents_online_heard  # chat imports accounts

    after = workspace_has_agents_online(workspace_id=workspace_id)
    transaction.on_commit(lambda: agents_online_heard(workspace_id, after))
    if after != before:
        broadcast_on_commit(
            workspace_visitors_group(workspace_id),
            {"type": "workspace.availability", "agents_online": after},
        )


def agent_presence_frame(agent: AgentProfile, *, connected: bool) -> dict:
    return {
        "id": agent.pk,
        "name": agent.display_name,
        "presence": agent.presence,
        "connected": connected,
    }


def _announce_presence(agent: AgentProfile) -> None:
    """Every console's agent list shows who is online, away or gone."""
    broadcast_on_commit(
        workspace_agents_group(agent.workspace_id),
        {
            "type": "agent.presence",
            "agent": agent_presence_frame(agent, connected=agent_is_connected(agent_id=agent.pk)),
        },
    )


def _drain_queue(agent: AgentProfile) -> None:
    from chat.routing import queue_drain_on_commit  # chat imports accounts

    queue_drain_on_commit(agent.workspace_id)


def agent_connection_open(*, agent: AgentProfile, channel_name: str) -> None:
    """Record a console socket; tell visitors if the workspace just came online, and give
    the agent queued conversations if they can take them."""
    with transaction.atomic():
        before = workspace_has_agents_online(workspace_id=agent.workspace_id)
        was_connected = agent_is_connected(agent_id=agent.pk)
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
        if not was_connected:
            _announce_presence(agent)
            if agent.presence == Presence.ONLINE:
                _drain_queue(agent)


def agent_connection_touch(*, channel_name: str) -> None:
    AgentConnection.objects.filter(channel_name=channel_name).update(last_seen_at=timezone.now())


def agent_connection_close(*, agent: AgentProfile, channel_name: str) -> None:
    with transaction.atomic():
        before = workspace_has_agents_online(workspace_id=agent.workspace_id)
        AgentConnection.objects.filter(channel_name=channel_name).delete()
        _announce_availability_change(workspace_id=agent.workspace_id, before=before)
        if not agent_is_connected(agent_id=agent.pk):
            _announce_presence(agent)


def agent_presence_set(*, agent: AgentProfile, presence: Any) -> AgentProfile:
    """The console's online / away / offline switch. Going online takes from the queue."""
    if presence not in Presence.values:
        raise ChatError("invalid_presence", "presence is online, away or offline.")
    with transaction.atomic():
        before = workspace_has_agents_online(workspace_id=agent.workspace_id)
        AgentProfile.objects.filter(pk=agent.pk).update(
            presence=presence, updated_at=timezone.now()
        )
        agent.presence = presence
        _announce_availability_change(workspace_id=agent.workspace_id, before=before)
        _announce_presence(agent)
        if presence == Presence.ONLINE:
            _drain_queue(agent)
    return agent


def agent_capacity_changed(*, agent: AgentProfile) -> None:
    """After an admin raises an agent's capacity (or edits them): the queue may move."""
    _drain_queue(agent)
