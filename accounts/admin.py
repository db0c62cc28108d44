from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import services
from .models import AgentConnection, AgentProfile, BusinessHours, RoutingRule, Team, Workspace


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


class BusinessHoursInline(admin.TabularInline):
    """Opening intervals per weekday, in the workspace's time zone (accounts.hours)."""

    model = BusinessHours
    extra = 0
    fields = ["weekday", "opens_at", "closes_at"]


def _edited_workspace_id(request) -> int | None:
    """The workspace whose change page this is (None on the add page)."""
    match = getattr(request, "resolver_match", None)
    object_id = match.kwargs.get("object_id") if match else None
    try:
        return int(object_id) if object_id else None
    except ValueError:
        return None


class RoutingRuleInline(admin.TabularInline):
    """Team routing: the first enabled matching rule (by order) picks the team."""

    model = RoutingRule
    extra = 0
    fields = ["position", "url_pattern", "language", "team", "enabled"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team":  # only this workspace's teams
            kwargs["queryset"] = Team.objects.filter(workspace_id=_edited_workspace_id(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Workspace)
class WorkspaceAdmin(WorkspaceScopedAdmin):
    workspace_field = "pk"
    inlines = [RoutingRuleInline, BusinessHoursInline]
    fieldsets = [
        (None, {"fields": ["name", "widget_key", "allowed_origins"]}),
        (
            _("Routing"),
            {
                "fields": ["routing_strategy", "routing_sticky", "ask_department"],
                "description": _(
                    "How new conversations find an agent; team rules below come first. "
                    "See docs/routing.md."
                ),
            },
        ),
        (
            _("Widget and hours"),
            {
                "fields": [
                    "welcome_text",
                    "offline_text",
                    "timezone",
                    "business_hours_enabled",
                    "upload_max_bytes",
                    "upload_allowed_types",
                ]
            },
        ),
        (_("Bot"), {"fields": ["bot_mode", "bot_kb_threshold", "bot_confidence_floor"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    list_display = ["name", "widget_key", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["widget_key", "created_at", "updated_at"]


@admin.register(Team)
class TeamAdmin(WorkspaceScopedAdmin):
    list_display = ["name", "workspace", "routing_strategy", "is_department"]
    list_filter = ["workspace", "routing_strategy", "is_department"]


@admin.register(AgentProfile)
class AgentProfileAdmin(WorkspaceScopedAdmin):
    list_display = ["display_name", "user", "workspace", "presence", "max_concurrent_chats"]
    list_filter = ["workspace", "presence"]
    search_fields = ["display_name", "user__username"]
    filter_horizontal = ["teams"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        agent = getattr(request.user, "agent", None)
        if db_field.name == "teams" and not request.user.is_superuser and agent is not None:
            kwargs["queryset"] = Team.objects.filter(workspace_id=agent.workspace_id)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # More capacity, another team, back online: queued conversations may move now.
        services.agent_capacity_changed(agent=form.instance)


@admin.register(AgentConnection)
class AgentConnectionAdmin(WorkspaceScopedAdmin):
    list_display = ["agent", "channel_name", "connected_at", "last_seen_at"]
    readonly_fields = ["agent", "workspace", "channel_name", "connected_at", "last_seen_at"]
