"""Workspaces (tenants), agents, teams and agent presence."""

import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

DEFAULT_UPLOAD_TYPES = (
    "image/png image/jpeg image/gif image/webp application/pdf text/plain application/zip"
)


def new_widget_key() -> str:
    return secrets.token_urlsafe(18)


def normalize_origin(value: str) -> str:
    """Return ``scheme://host[:port]`` in lower case, or raise ValueError."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def validate_origins(value: str) -> None:
    for item in value.split():
        try:
            normalize_origin(item)
        except ValueError:
            raise ValidationError(
                _("%(origin)s is not an origin like https://www.example.com"),
                params={"origin": item},
            ) from None


class BotMode(models.TextChoices):
    """What the bot does in a workspace (knowledge/pipeline.py)."""

    OFF = "off", _("Off")
    ANSWER_FIRST = "answer_first", _("Answer first; hand off on request or low confidence")
    WHEN_NO_AGENT = "when_no_agent", _("Answer only when no agent is available")
    ASSIST_ONLY = "assist_only", _("Agent-assist only: suggestions in the console")


class Workspace(models.Model):
    """One company running the helpdesk; every other row belongs to one."""

    name = models.CharField(_("name"), max_length=120)
    widget_key = models.CharField(
        _("public widget key"), max_length=64, unique=True, default=new_widget_key
    )
    allowed_origins = models.TextField(
        _("allowed origins"),
        blank=True,
        validators=[validate_origins],
        help_text=_(
            "Sites that may embed the widget, one origin per line "
            "(https://www.example.com). This server's own origin is always allowed."
        ),
    )
    upload_max_bytes = models.PositiveIntegerField(
        _("largest upload (bytes)"), default=10 * 1024 * 1024
    )
    upload_allowed_types = models.TextField(
        _("allowed upload types"),
        default=DEFAULT_UPLOAD_TYPES,
        help_text=_("MIME types separated by spaces, checked against the file's content."),
    )
    welcome_text = models.CharField(
        _("welcome text"), max_length=500, default="Hi! How can we help you today?"
    )
    offline_text = models.CharField(
        _("offline text"),
        max_length=500,
        default="We are offline right now. Leave a message and we will get back to you.",
    )
    bot_mode = models.CharField(
        _("bot mode"), max_length=20, choices=BotMode.choices, default=BotMode.OFF
    )
    bot_kb_threshold = models.FloatField(
        _("knowledge-base answer threshold"),
        default=0.55,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("A knowledge-base hit scoring at least this (0-1) is sent as the answer."),
    )
    bot_confidence_floor = models.FloatField(
        _("AI confidence floor"),
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Below this share of the vote (0-1) the conversation goes to a human."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("workspace")

    def __str__(self) -> str:
        return self.name

    def origin_list(self) -> list[str]:
        out = []
        for item in self.allowed_origins.split():
            try:
                out.append(normalize_origin(item))
            except ValueError:
                continue
        return out

    def upload_type_list(self) -> list[str]:
        return self.upload_allowed_types.split()

    @property
    def bot_answers_visitors(self) -> bool:
        return self.bot_mode in (BotMode.ANSWER_FIRST, BotMode.WHEN_NO_AGENT)


class Team(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(_("name"), max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="team_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Presence(models.TextChoices):
    ONLINE = "online", _("Online")
    AWAY = "away", _("Away")
    OFFLINE = "offline", _("Offline")


class AgentProfile(models.Model):
    """The agent side of a user: which workspace they answer for, and how much."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="agents")
    teams = models.ManyToManyField(Team, blank=True, related_name="agents")
    display_name = models.CharField(_("display name"), max_length=80)
    avatar = models.FileField(_("avatar"), upload_to="avatars/", blank=True)
    max_concurrent_chats = models.PositiveSmallIntegerField(_("max concurrent chats"), default=5)
    presence = models.CharField(
        _("presence"), max_length=10, choices=Presence.choices, default=Presence.ONLINE
    )
    is_workspace_admin = models.BooleanField(_("workspace admin"), default=False)
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "display_name"]
        verbose_name = _("agent")

    def __str__(self) -> str:
        return self.display_name


class AgentConnection(models.Model):
    """One open console socket; an agent with a fresh one is connected.

    Kept in the database so every ASGI process sees the same presence, and so a
    crashed process's sockets go stale instead of counting forever.
    """

    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="connections")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["workspace", "last_seen_at"])]

    def __str__(self) -> str:
        return f"{self.agent} @ {self.channel_name}"
