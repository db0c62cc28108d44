from django.contrib import admin

from .models import AgentConnection, AgentProfile, Team, Workspace


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """Superusers see every workspace; a workspace admin only their own."""

    workspace_field = "workspace"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        agent = getattr(request.user, "agent", None)
        if agent is None:
            return qs.none()
        return qs.filter(**{self.workspace_field: agent.workspace_id})


@admin.register(Workspace)
class WorkspaceAdmin(WorkspaceScopedAdmin):
    workspace_field = "pk"
    list_display = ["name", "widget_key", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["widget_key", "created_at", "updated_at"]


@admin.register(Team)
class TeamAdmin(WorkspaceScopedAdmin):
    list_display = ["name", "workspace"]
    list_filter = ["workspace"]


@admin.register(AgentProfile)
class AgentProfileAdmin(WorkspaceScopedAdmin):
    list_display = ["display_name", "user", "workspace", "presence", "max_concurrent_chats"]
    list_filter = ["workspace", "presence"]
    search_fields = ["display_name", "user__username"]
    filter_horizontal = ["teams"]


@admin.register(AgentConnection)
class AgentConnectionAdmin(WorkspaceScopedAdmin):
    list_display = ["agent", "channel_name", "connected_at", "last_seen_at"]
    readonly_fields = ["agent", "workspace", "channel_name", "connected_at", "last_seen_at"]
