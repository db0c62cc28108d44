"""Reads about workspaces and agents."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import AgentConnection, AgentProfile, Presence, Workspace


def workspace_get_by_key(*, widget_key: str) -> Workspace | None:
    if not widget_key or len(widget_key) > 64:
        return None
    return Workspace.objects.filter(widget_key=widget_key).first()


def agent_for_user(*, user) -> AgentProfile | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return AgentProfile.objects.select_related("workspace", "user").filter(user=user).first()


def fresh_since():
    return timezone.now() - timedelta(seconds=settings.HELPDESK_AGENT_STALE_SECONDS)


def agents_available(*, workspace_id: int):
    """Agents who are set online and have a live console socket."""
    return AgentProfile.objects.filter(
        workspace_id=workspace_id,
        presence=Presence.ONLINE,
        user__is_active=True,
        connections__last_seen_at__gte=fresh_since(),
    ).distinct()


def workspace_has_agents_online(*, workspace_id: int) -> bool:
    return agents_available(workspace_id=workspace_id).exists()


def agent_is_connected(*, agent_id: int) -> bool:
    return AgentConnection.objects.filter(
        agent_id=agent_id, last_seen_at__gte=fresh_since()
    ).exists()
