from django.contrib.gis import admin as gis_admin

from accounts.admin import WorkspaceScopedAdmin

from .models import Attachment, Conversation, Message, PageView, Visitor


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
