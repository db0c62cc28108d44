import re

from django import forms
from django.conf import settings
from django.contrib.gis import admin as gis_admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.admin import WorkspaceScopedAdmin
from accounts.models import AgentProfile, Workspace

from .autoreply import auto_reply_pattern_clean
from .blocklist import block_announce, parse_network
from .canned import VARIABLES as canned_variables
from .models import (
    Attachment,
    AutoReplyRule,
    BlockEntry,
    CannedReply,
    Conversation,
    Label,
    Message,
    PageView,
    Visitor,
)


@gis_admin.register(Visitor)
class VisitorAdmin(WorkspaceScopedAdmin, gis_admin.GISModelAdmin):
    list_display = [
        "__str__",
        "workspace",
        "email",
        "ip_address",
        "country_code",
        "browser",
        "os",
        "last_seen_at",
    ]
    list_filter = ["workspace", "country_code"]
    search_fields = ["name", "email", "ip_address"]
    readonly_fields = ["public_id", "first_seen_at", "last_seen_at"]


@gis_admin.register(PageView)
class PageViewAdmin(WorkspaceScopedAdmin):
    list_display = ["url", "visitor", "created_at"]
    raw_id_fields = ["visitor"]


class MessageInline(gis_admin.TabularInline):
    model = Message
    fields = ["seq", "sender_kind", "sender_agent", "text", "attachment", "created_at", "read_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@gis_admin.register(Conversation)
class ConversationAdmin(WorkspaceScopedAdmin):
    list_display = ["pk", "visitor", "workspace", "status", "assignee", "last_message_at"]
    list_filter = ["workspace", "status"]
    raw_id_fields = ["visitor", "assignee"]
    readonly_fields = ["last_seq", "first_response_at", "resolved_at", "created_at"]
    inlines = [MessageInline]


@gis_admin.register(Message)
class MessageAdmin(WorkspaceScopedAdmin):
    list_display = ["__str__", "sender_kind", "text", "created_at"]
    list_filter = ["workspace", "sender_kind"]
    raw_id_fields = ["conversation", "sender_agent", "attachment"]


@gis_admin.register(Attachment)
class AttachmentAdmin(WorkspaceScopedAdmin):
    list_display = ["original_name", "content_type", "size", "workspace", "created_at"]
    readonly_fields = ["public_id", "content_type", "size"]


class LabelForm(forms.ModelForm):
    class Meta:
        model = Label
        fields = ["workspace", "name", "color"]

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Give the label a name."))
        return name

    def clean_color(self):
        color = self.cleaned_data["color"].strip()
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
            raise forms.ValidationError(_("A colour like #6b7280."))
        return color.lower()


@gis_admin.register(Label)
class LabelAdmin(WorkspaceScopedAdmin):
    """Labels agents put on conversations (agents also create them from the console)."""

    form = LabelForm
    list_display = ["name", "color", "workspace"]
    list_filter = ["workspace"]
    search_fields = ["name"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # A workspace admin can only file labels under their own workspace.
        if db_field.name == "workspace" and not request.user.is_superuser:
            agent = getattr(request.user, "agent", None)
            kwargs["queryset"] = Workspace.objects.filter(pk=agent.workspace_id if agent else None)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- canned replies and automatic replies ---------------------------------------------------


def _replies_own_workspace_id(request) -> int | None:
    agent = getattr(request.user, "agent", None)
    return agent.workspace_id if agent is not None else None


class _OwnWorkspaceRowsMixin:
    """Workspace admins file rows under their own workspace, naming only its agents."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        own = _replies_own_workspace_id(request)
        if db_field.name == "workspace" and not request.user.is_superuser:
            kwargs["queryset"] = Workspace.objects.filter(pk=own)
            kwargs["initial"] = own
        elif db_field.name == "agent":
            agents = AgentProfile.objects.select_related("workspace")
            if not request.user.is_superuser:
                agents = agents.filter(workspace_id=own)
            kwargs["queryset"] = agents
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "agent" and request.user.is_superuser and field is not None:
            field.label_from_instance = lambda a: f"{a.display_name} ({a.workspace.name})"
        return field

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            obj.workspace_id = _replies_own_workspace_id(request)
        super().save_model(request, obj, form, change)


class _SameWorkspaceForm(forms.ModelForm):
    """Rows that name an agent or visitor must name one of their own workspace."""

    # field -> the error when it belongs to another workspace
    same_workspace: dict[str, str] = {}

    def clean(self):
        data = super().clean()
        workspace = data.get("workspace")
        for name, message in self.same_workspace.items():
            related = data.get(name)
            if related is not None and workspace is not None:
                if related.workspace_id != workspace.pk:
                    self.add_error(name, message)
        return data


class CannedReplyForm(_SameWorkspaceForm):
    same_workspace = {"agent": _("This agent works in another workspace.")}

    class Meta:
        model = CannedReply
        fields = ["workspace", "agent", "shortcut", "text"]

    def clean_shortcut(self):
        return self.cleaned_data["shortcut"].lower()

    def clean_text(self):
        text = self.cleaned_data["text"].strip()
        unknown = sorted(set(re.findall(r"\{(\w+)\}", text)) - set(canned_variables))
        if unknown:
            raise forms.ValidationError(
                _("Unknown variable %(names)s; use %(known)s.")
                % {
                    "names": ", ".join(f"{{{n}}}" for n in unknown),
                    "known": ", ".join(f"{{{n}}}" for n in canned_variables),
                }
            )
        return text


@gis_admin.register(CannedReply)
class CannedReplyAdmin(_OwnWorkspaceRowsMixin, WorkspaceScopedAdmin):
    """Saved answers agents insert with ``/shortcut``; no agent = shared by the workspace."""

    form = CannedReplyForm
    list_display = ["__str__", "owner", "text", "workspace"]
    list_filter = ["workspace"]
    list_select_related = ["workspace", "agent"]
    search_fields = ["shortcut", "text"]

    @gis_admin.display(description=_("for"), ordering="agent__display_name")
    def owner(self, obj: CannedReply) -> str:
        return obj.agent.display_name if obj.agent_id else str(_("everyone (shared)"))


class AutoReplyRuleForm(forms.ModelForm):
    class Meta:
        model = AutoReplyRule
        fields = ["workspace", "name", "position", "match", "pattern", "reply", "enabled"]

    def clean_reply(self):
        reply = self.cleaned_data["reply"].strip()
        if not reply:
            raise forms.ValidationError(_("Write the reply."))
        if len(reply) > settings.HELPDESK_MAX_MESSAGE_CHARS:
            raise forms.ValidationError(
                _("At most %(max)d characters.") % {"max": settings.HELPDESK_MAX_MESSAGE_CHARS}
            )
        return reply

    def clean(self):
        data = super().clean()
        if "pattern" in data and data.get("match"):
            try:
                data["pattern"] = auto_reply_pattern_clean(
                    match=data["match"], pattern=data["pattern"]
                )
            except ValidationError as exc:
                self.add_error("pattern", exc)
        return data


@gis_admin.register(AutoReplyRule)
class AutoReplyRuleAdmin(_OwnWorkspaceRowsMixin, WorkspaceScopedAdmin):
    """Rules that answer a visitor's message at once; the first match by order answers."""

    form = AutoReplyRuleForm
    list_display = ["name", "match", "pattern", "position", "enabled", "workspace"]
    list_editable = ["position", "enabled"]
    list_filter = ["workspace", "enabled", "match"]
    list_select_related = ["workspace"]
    search_fields = ["name", "pattern", "reply"]
    ordering = ["workspace", "position", "pk"]


# --- blocklist --------------------------------------------------------------------------------


class BlockEntryForm(_SameWorkspaceForm):
    same_workspace = {"visitor": _("This visitor belongs to another workspace.")}

    class Meta:
        model = BlockEntry
        fields = ["workspace", "visitor", "ip_network", "reason"]

    def clean_ip_network(self):
        value = self.cleaned_data["ip_network"].strip()
        if not value:
            return ""
        network = parse_network(value)
        if network is None:  # the model's validator says so too; keep one message
            return value
        return str(network)


@gis_admin.register(BlockEntry)
class BlockEntryAdmin(_OwnWorkspaceRowsMixin, WorkspaceScopedAdmin):
    """Blocked visitors and address ranges (chat.blocklist); saving one closes their sockets."""

    form = BlockEntryForm
    list_display = ["__str__", "reason", "workspace", "created_by", "created_at"]
    list_filter = ["workspace"]
    list_select_related = ["workspace", "visitor", "created_by"]
    search_fields = ["ip_network", "reason", "visitor__name", "visitor__email"]
    raw_id_fields = ["visitor"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = getattr(request.user, "agent", None)
        super().save_model(request, obj, form, change)
        block_announce(obj)
