"""Visitors, conversations, messages and attachments."""

import uuid

from django.contrib.gis.db import models
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import AgentProfile, Team, Workspace, validate_ip_network


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
    SNOOZED = "snoozed", _("Snoozed")


# Statuses that take one of the assignee's chat slots (see chat.routing).
ACTIVE_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)


class Label(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(_("name"), max_length=40)
    color = models.CharField(_("colour"), max_length=7, default="#6b7280")

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="label_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


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
    # Set while the conversation waits for an agent; the queue is ordered by it (per team).
    queued_at = models.DateTimeField(_("queued since"), null=True, blank=True)
    snoozed_until = models.DateTimeField(_("snoozed until"), null=True, blank=True)
    labels = models.ManyToManyField(Label, blank=True, related_name="conversations")
    rating = models.PositiveSmallIntegerField(
        _("rating"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    rating_comment = models.CharField(_("rating comment"), max_length=1000, blank=True)
    rated_at = models.DateTimeField(_("rated"), null=True, blank=True)
    # Metrics, stored when they happen (seconds from the conversation's creation).
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    resolution_seconds = models.PositiveIntegerField(null=True, blank=True)
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
            models.Index(
                fields=["workspace", "team", "queued_at"],
                name="conversation_queue",
                condition=models.Q(queued_at__isnull=False),
            ),
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
    # No single-column indexes on these two: (workspace, id) and the two unique
    # constraints that start with conversation serve every lookup by either, and each
    # index is one more write per message (the writer's hottest statement).
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, db_index=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
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
    # Analysed words (Chinese segmented) that the full-text index reads; see chat.search.
    search_terms = models.TextField(blank=True, editable=False)
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


class EventKind(models.TextChoices):
    ASSIGNED = "assigned", _("Assigned")
    QUEUED = "queued", _("Queued")
    TRANSFERRED = "transferred", _("Transferred")
    STATUS = "status", _("Status changed")
    NOTE = "note", _("Private note")
    LABELS = "labels", _("Labels changed")
    RATING = "rating", _("Rated")
    BLOCKED = "blocked", _("Visitor blocked")


class ConversationEvent(models.Model):
    """The console timeline's entries besides messages: system events and private notes.

    Agents only. No visitor code path reads this table, so a note can never reach one.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=EventKind.choices)
    actor = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    agent = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["conversation_id", "created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.conversation_id} {self.kind}"


class CannedReply(models.Model):
    """A saved answer, typed as ``/shortcut`` in the reply box; ``agent`` empty = everyone's."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="canned_replies"
    )
    agent = models.ForeignKey(
        AgentProfile,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="canned_replies",
        help_text=_("Leave empty to share with the whole workspace."),
    )
    shortcut = models.SlugField(_("shortcut"), max_length=40)
    text = models.TextField(
        _("text"),
        help_text=_("Variables: {visitor_name}, {agent_name}, {workspace_name}."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "shortcut"]
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "agent", "shortcut"],
                condition=models.Q(agent__isnull=False),
                name="canned_unique_personal_shortcut",
            ),
            models.UniqueConstraint(
                fields=["workspace", "shortcut"],
                condition=models.Q(agent__isnull=True),
                name="canned_unique_shared_shortcut",
            ),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class AutoReplyMatch(models.TextChoices):
    ANY_KEYWORD = "any", _("Any of the keywords")
    ALL_KEYWORDS = "all", _("All of the keywords")
    REGEX = "regex", _("Regular expression")


class AutoReplyRule(models.Model):
    """An operator's rule that answers a visitor's message at once (checked in order)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="auto_replies")
    name = models.CharField(_("name"), max_length=120)
    position = models.PositiveSmallIntegerField(_("order"), default=0)
    match = models.CharField(
        _("match"), max_length=8, choices=AutoReplyMatch.choices, default=AutoReplyMatch.ANY_KEYWORD
    )
    pattern = models.CharField(
        _("keywords or pattern"),
        max_length=500,
        help_text=_("Keywords separated by commas, or a regular expression."),
    )
    reply = models.TextField(_("reply"))
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "position", "pk"]
        verbose_name = _("automatic reply")
        verbose_name_plural = _("automatic replies")

    def __str__(self) -> str:
        return self.name


class BlockEntry(models.Model):
    """A blocked visitor (by id) or address range; blocked visitors cannot connect or post."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="blocks")
    visitor = models.ForeignKey(
        Visitor, on_delete=models.CASCADE, null=True, blank=True, related_name="blocks"
    )
    ip_network = models.CharField(
        _("IP address or network"),
        max_length=64,
        blank=True,
        validators=[validate_ip_network],
        help_text=_("203.0.113.7 or 203.0.113.0/24 or 2001:db8::/32"),
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    created_by = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("block")
        verbose_name_plural = _("blocklist")

    def __str__(self) -> str:
        return str(self.visitor) if self.visitor_id else self.ip_network

    def clean(self) -> None:
        if bool(self.visitor_id) == bool(self.ip_network.strip()):
            raise ValidationError(_("Block either a visitor or an IP address/network."))
