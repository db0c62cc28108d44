"""Knowledge-base articles and their categories, one set per workspace."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.models import Workspace


class Category(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="kb_categories")
    name = models.CharField(_("name"), max_length=120)
    description = models.CharField(_("description"), max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(
        _("position"), default=0, help_text=_("Smaller numbers come first in the help centre.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "position", "name"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="kb_category_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class ArticleStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")


class Article(models.Model):
    """A help-centre article; only published ones are shown or searched.

    ``search_terms`` holds the analysed title, tags and body as a tsvector literal,
    rewritten by ``save()`` every time. On PostgreSQL a stored
    generated column ``search_vector`` casts it to tsvector, with a GIN index (created by
    migration 0002, invisible to the ORM); SQLite reads the text itself.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="kb_articles")
    category = models.ForeignKey(
        Category,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="articles",
        verbose_name=_("category"),
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body (Markdown)"))
    tags = models.CharField(
        _("tags"),
        max_length=500,
        blank=True,
        help_text=_(
            "Comma-separated keywords and the other words visitors use for this topic "
            "(refund, money back, 退款); they weigh like the title in search."
        ),
    )
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, default="en"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=ArticleStatus.choices, default=ArticleStatus.DRAFT
    )
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)
    search_terms = models.TextField(editable=False, default="")
    search_length = models.PositiveIntegerField(editable=False, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "category__position", "title"]
        verbose_name = _("article")
        indexes = [
            models.Index(fields=["workspace", "status", "language"], name="kb_article_ws_status"),
            models.Index(fields=["workspace", "-updated_at"], name="kb_article_ws_updated"),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        """Keep the search terms in step with the text, whatever path saves the article."""
        from .rendering import markdown_to_text
        from .search import search_document

        self.search_terms, self.search_length = search_document(
            title=self.title, tags=self.tags, body_text=markdown_to_text(self.body)
        )
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "search_terms", "search_length"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse(
            "help:article", kwargs={"widget_key": self.workspace.widget_key, "pk": self.pk}
        )

    def clean(self) -> None:
        if (
            self.category_id
            and self.workspace_id
            and self.category.workspace_id != self.workspace_id
        ):
            raise ValidationError({"category": _("Pick a category of the same workspace.")})

    @property
    def is_published(self) -> bool:
        return self.status == ArticleStatus.PUBLISHED

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.tags.replace("，", ",").split(",") if t.strip()]


# =============================================================================================
# AI replies: providers and the bot's decision log.
# (This section belongs to the AI-replies half of the knowledge issue; the knowledge base's
# models above belong to the KB half. Each half generates its own migrations.)
# =============================================================================================


class ProviderKind(models.TextChoices):
    OPENAI = "openai", _("OpenAI-compatible chat completions")


class AIProvider(models.Model):
    """A model endpoint the bot may ask; its answers are weighed by ``weight``.

    ``api_key`` is a secret: it is sent only in the Authorization header of calls to
    ``base_url``, never rendered back in the admin (which shows a masked suffix), never
    logged and never part of any frame or API output.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="ai_providers")
    name = models.CharField(_("name"), max_length=80)
    kind = models.CharField(
        _("kind"), max_length=20, choices=ProviderKind.choices, default=ProviderKind.OPENAI
    )
    base_url = models.URLField(
        _("base URL"),
        max_length=500,
        help_text=_(
            "The API root that /chat/completions is appended to: https://api.openai.com/v1, "
            "https://dashscope.aliyuncs.com/compatible-mode/v1, http://127.0.0.1:11434/v1 "
            "(Ollama)…"
        ),
    )
    model = models.CharField(_("model"), max_length=120)
    api_key = models.CharField(_("API key"), max_length=500, blank=True)
    weight = models.FloatField(
        _("weight"),
        default=1.0,
        validators=[MinValueValidator(0.01), MaxValueValidator(100)],
        help_text=_("How much this provider's answer counts in the vote."),
    )
    timeout_seconds = models.FloatField(
        _("timeout (seconds)"),
        default=10.0,
        validators=[MinValueValidator(0.2), MaxValueValidator(120)],
    )
    max_tokens = models.PositiveIntegerField(_("max answer tokens"), default=400)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace", "name"]
        verbose_name = _("AI provider")
        indexes = [models.Index(fields=["workspace", "enabled"], name="ai_provider_ws_enabled")]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="ai_provider_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<AIProvider {self.pk} {self.name!r}>"

    @property
    def key_hint(self) -> str:
        """The key masked to its last four characters (none of it when it is short)."""
        if not self.api_key:
            return ""
        if len(self.api_key) < 12:
            return "••••"
        return "••••" + self.api_key[-4:]

    def config(self):
        """A detached snapshot for :mod:`knowledge.providers` (safe to use in threads)."""
        from .providers import ProviderConfig

        return ProviderConfig(
            id=self.pk,
            name=self.name,
            kind=self.kind,
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key,
            weight=self.weight,
            timeout=self.timeout_seconds,
            max_tokens=self.max_tokens,
        )


class DecisionKind(models.TextChoices):
    REPLY = "reply", _("Reply to a visitor")
    ASSIST = "assist", _("Suggestion for an agent")


class DecisionOutcome(models.TextChoices):
    KB_ANSWER = "kb_answer", _("Answered from the knowledge base")
    AI_ANSWER = "ai_answer", _("Answered by the AI vote")
    HANDOFF = "handoff", _("Handed to a human")
    HUMAN_REQUEST = "human_request", _("Visitor asked for a human")
    SKIPPED = "skipped", _("Bot stayed silent")
    SUGGESTED = "suggested", _("Suggested a reply")
    NO_SUGGESTION = "no_suggestion", _("No suggestion")


class BotDecision(models.Model):
    """Why the bot said what it said (or nothing): one row per question it considered."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        "chat.Conversation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The visitor message being answered (replies), and what the bot posted, if anything.
    message = models.ForeignKey(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reply = models.ForeignKey(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    agent = models.ForeignKey(
        "accounts.AgentProfile",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The agent who asked for a suggestion."),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=DecisionKind.choices)
    outcome = models.CharField(_("outcome"), max_length=20, choices=DecisionOutcome.choices)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    question = models.TextField(_("question"), blank=True)
    kb_hits = models.JSONField(_("knowledge-base hits"), default=list, blank=True)
    providers = models.JSONField(_("provider answers"), default=list, blank=True)
    vote = models.JSONField(_("vote"), default=dict, blank=True)
    confidence = models.FloatField(_("confidence"), null=True, blank=True)
    answer = models.TextField(_("answer"), blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("bot decision")
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="bot_decision_ws_created"),
            models.Index(fields=["conversation", "outcome"], name="bot_decision_conv_outcome"),
        ]
        constraints = [
            # A task retried after a crash finds the first decision instead of answering twice.
            models.UniqueConstraint(
                fields=["message"],
                condition=models.Q(kind="reply"),
                name="bot_decision_one_reply_per_message",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_outcome_display()}"
