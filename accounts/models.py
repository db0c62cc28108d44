"""Workspaces (tenants), agents, teams and agent presence."""

import ipaddress
import secrets
import zoneinfo
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


class RoutingStrategy(models.TextChoices):
    """How chat.routing picks an agent; see docs/routing.md."""

    ROUND_ROBIN = "round_robin", _("Round-robin")
    LEAST_BUSY = "least_busy", _("Least busy (open chats relative to capacity)")
    CUSTOM = "custom", _("Custom class (settings.HELPDESK_ROUTING_CUSTOM_STRATEGY)")


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("%(tz)s is not a time zone like Europe/Paris"), params={"tz": value}
        ) from None


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
    routing_strategy = models.CharField(
        _("routing strategy"),
        max_length=20,
        choices=RoutingStrategy.choices,
        default=RoutingStrategy.ROUND_ROBIN,
        help_text=_("How a new conversation finds an agent when no team rule applies."),
    )
    routing_sticky = models.BooleanField(
        _("sticky routing"),
        default=True,
        help_text=_(
            "A returning visitor goes back to the agent who last served them when that "
            "agent is available."
        ),
    )
    ask_department = models.BooleanField(
        _("ask for a department"),
        default=False,
        help_text=_("The widget asks the visitor to pick one of the teams marked as department."),
    )
    timezone = models.CharField(
        _("time zone"), max_length=64, default="UTC", validators=[validate_timezone]
    )
    business_hours_enabled = models.BooleanField(
        _("use business hours"),
        default=False,
        help_text=_("Outside the hours below the widget shows the offline text and form."),
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
    routing_strategy = models.CharField(
        _("routing inside the team"),
        max_length=20,
        choices=RoutingStrategy.choices,
        default=RoutingStrategy.LEAST_BUSY,
    )
    is_department = models.BooleanField(
        _("offered as a department"),
        default=False,
        help_text=_("Listed in the widget when the workspace asks visitors for a department."),
    )
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


class BusinessHours(models.Model):
    """One opening interval of a weekday, in the workspace's time zone."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="business_hours"
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens"))
    closes_at = models.TimeField(_("closes"))

    class Meta:
        ordering = ["workspace", "weekday", "opens_at"]
        verbose_name = _("business hours")
        verbose_name_plural = _("business hours")

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}-{self.closes_at:%H:%M}"

    def clean(self) -> None:
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValidationError(_("The closing time must be after the opening time."))


class RoutingRule(models.Model):
    """Send matching conversations to a team (checked in order; the first match wins).

    A rule matches when every condition it sets matches: the page URL (a shell-style
    pattern such as ``*/pricing*``) and the visitor's language (a prefix such as ``zh``).
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="routing_rules")
    position = models.PositiveSmallIntegerField(_("order"), default=0)
    url_pattern = models.CharField(_("page URL pattern"), max_length=300, blank=True)
    language = models.CharField(_("language prefix"), max_length=35, blank=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="routing_rules")
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        ordering = ["workspace", "position", "pk"]
        verbose_name = _("routing rule")

    def __str__(self) -> str:
        return f"{self.url_pattern or '*'} / {self.language or '*'} -> {self.team}"

    def clean(self) -> None:
        if not self.url_pattern and not self.language:
            raise ValidationError(_("Give a URL pattern, a language, or both."))
        if self.team_id and self.workspace_id and self.team.workspace_id != self.workspace_id:
            raise ValidationError(_("The team belongs to another workspace."))


def validate_ip_network(value: str) -> None:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValidationError(
            _("%(value)s is not an IP address or network like 203.0.113.0/24"),
            params={"value": value},
        ) from None
