"""Visitors, conversations, messages and attachments."""

import uuid

from django.contrib.gis.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import AgentProfile, Team, Workspace


class Visitor(models.Model):
    """Someone using the widget; identified by an id the browser keeps."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="visitors")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=120, blank=True)
    email = models.EmailField(_("email"), blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    browser = models.CharField(_("browser"), max_length=80, blank=True)
    os = models.CharField(_("operating system"), max_length=80, blank=True)
    device = models.CharField(_("device"), max_length=80, blank=True)
    country_code = models.CharField(_("country"), max_length=2, blank=True)
    city = models.CharField(_("city"), max_length=120, blank=True)
    location = models.PointField(_("location"), null=True, blank=True, geography=False)
    language = models.CharField(_("language"), max_length=35, blank=True)
    current_url = models.URLField(_("current page"), max_length=2000, blank=True)
    current_title = models.CharField(_("page title"), max_length=300, blank=True)
    referrer = models.URLField(_("referrer"), max_length=2000, blank=True)
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["workspace", "-last_seen_at"])]

    def __str__(self) -> str:
        return self.name or f"Visitor {str(self.public_id)[:8]}"

    @property
    def label(self) -> str:
        return str(self)


class PageView(models.Model):
    """A page the visitor had open while the widget was loaded."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="page_views")
    url = models.URLField(max_length=2000)
    title = models.CharField(max_length=300, blank=True)
    referrer = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["visitor", "-created_at"])]

    def __str__(self) -> str:
        return self.url


class ConversationStatus(models.TextChoices):
    OPEN = "open", _("Open")
    PENDING = "pending", _("Pending")
    RESOLVED = "resolved", _("Resolved")


class Conversation(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="conversations")
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="conversations")
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=ConversationStatus.choices,
        default=ConversationStatus.OPEN,
    )
    assignee = models.ForeignKey(
        AgentProfile,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
    )
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True)
    # The sequence number of the newest message; bumped under the row lock.
    last_seq = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=140, blank=True)
    # Visitor messages no agent has read yet (kept here so the list needs no count query).
    unread_by_agent = models.PositiveIntegerField(default=0)
    first_response_at = models.DateTimeField(_("first response"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "status", "-last_message_at"]),
            models.Index(fields=["workspace", "assignee", "status"]),
            models.Index(fields=["visitor", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.visitor}"


class SenderKind(models.TextChoices):
    VISITOR = "visitor", _("Visitor")
    AGENT = "agent", _("Agent")
    BOT = "bot", _("Bot")
    SYSTEM = "system", _("System")


def attachment_path(instance: "Attachment", filename: str) -> str:
    # The stored name is random and has no extension: nothing the uploader chose.
    return f"attachments/{instance.workspace_id}/{uuid.uuid4().hex}"


class Attachment(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Who uploaded it: exactly one of the two.
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, null=True, blank=True)
    agent = models.ForeignKey(AgentProfile, on_delete=models.SET_NULL, null=True, blank=True)
    file = models.FileField(upload_to=attachment_path, max_length=200)
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_image(self) -> bool:
        return self.content_type in ("image/png", "image/jpeg", "image/gif", "image/webp")


class Message(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    sender_kind = models.CharField(max_length=10, choices=SenderKind.choices)
    sender_agent = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    client_id = models.CharField(max_length=64)
    text = models.TextField(blank=True)
    attachment = models.OneToOneField(
        Attachment, on_delete=models.SET_NULL, null=True, blank=True, related_name="message"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # By the column, not the relation: ordering by "conversation" would join the
        # conversation table (and use its ordering) on every message query.
        ordering = ["conversation_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_unique_seq"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="message_unique_client_id"
            ),
        ]
        indexes = [models.Index(fields=["workspace", "id"])]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq}"
