import json
import time

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from accounts.admin import WorkspaceScopedAdmin
from accounts.models import Workspace

from . import breaker, services
from .models import AIProvider, Article, ArticleStatus, BotDecision, Category
from .rendering import render_markdown

# =================================================================================================
# Knowledge-base articles and categories
# =================================================================================================

# The largest body the live preview renders (the model has no limit; this is a courtesy).
PREVIEW_MAX_CHARS = 200_000


def _own_workspace_id(request: HttpRequest) -> int | None:
    agent = getattr(request.user, "agent", None)
    return agent.workspace_id if agent is not None else None


class KbWorkspaceFormMixin:
    """Workspace admins pick only their own workspace (and its categories)."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            own = _own_workspace_id(request)
            if db_field.name == "workspace":
                kwargs["queryset"] = Workspace.objects.filter(pk=own)
                kwargs["initial"] = own
            elif db_field.name == "category":
                kwargs["queryset"] = Category.objects.filter(workspace_id=own)
        elif db_field.name == "category":
            kwargs["queryset"] = Category.objects.select_related("workspace")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            obj.workspace_id = _own_workspace_id(request)
        super().save_model(request, obj, form, change)


@admin.register(Category)
class CategoryAdmin(KbWorkspaceFormMixin, WorkspaceScopedAdmin):
    list_display = ["name", "workspace", "position", "article_count"]
    list_filter = ["workspace"]
    list_editable = ["position"]
    search_fields = ["name"]

    @admin.display(description=_("articles"))
    def article_count(self, obj: Category) -> int:
        return obj.articles.count()


@admin.register(Article)
class ArticleAdmin(KbWorkspaceFormMixin, WorkspaceScopedAdmin):
    list_display = ["title", "language", "status", "category", "workspace", "updated_at"]
    list_filter = ["status", "language", "workspace"]
    list_select_related = ["category", "workspace"]
    search_fields = ["title", "tags", "body"]
    date_hierarchy = "updated_at"
    actions = ["publish_selected", "unpublish_selected"]
    readonly_fields = ["preview", "help_centre_link", "published_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["workspace", "title", "category", "language", "status", "tags"]}),
        (_("Body"), {"fields": ["body", "preview"]}),
        (
            _("History"),
            {"fields": ["help_centre_link", "published_at", "created_at", "updated_at"]},
        ),
    ]

    class Media:
        js = ["knowledge/article_preview.js"]

    def get_urls(self):
        urls = [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="knowledge_article_preview",
            )
        ]
        return urls + super().get_urls()

    @admin.display(description=_("preview"))
    def preview(self, obj: Article):
        # render_markdown sanitizes (nh3): this is the same HTML the help centre shows.
        html = render_markdown(obj.body) if obj and obj.body else ""
        return format_html(
            '<div id="kb-preview" class="kb-preview" data-testid="article-preview" '
            'style="max-width:760px;padding:12px 16px;border:1px solid #ddd;border-radius:8px;'
            'background:#fff">{}</div>',
            mark_safe(html),  # noqa: S308
        )

    @admin.display(description=_("help centre page"))
    def help_centre_link(self, obj: Article):
        if not obj or not obj.pk:
            return "-"
        if obj.status != ArticleStatus.PUBLISHED:
            return _("not shown while it is a draft")
        return format_html(
            '<a href="{0}" target="_blank" rel="noopener">{0}</a>', obj.get_absolute_url()
        )

    def preview_view(self, request: HttpRequest):
        """POST body=<markdown> -> {"html": sanitized HTML}, for the live preview."""
        return _preview(request)

    def save_model(self, request, obj, form, change):
        services.article_status_changed(article=obj)
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Publish selected articles"))
    def publish_selected(self, request, queryset):
        for article in queryset:
            services.article_publish(article=article)
        self.message_user(request, _("Published."), messages.SUCCESS)

    @admin.action(description=_("Turn selected articles back into drafts"))
    def unpublish_selected(self, request, queryset):
        for article in queryset:
            services.article_unpublish(article=article)
        self.message_user(request, _("Unpublished."), messages.SUCCESS)


@require_POST
def _preview(request: HttpRequest) -> JsonResponse:
    source = request.POST.get("body", "")
    if len(source) > PREVIEW_MAX_CHARS:
        return JsonResponse({"error": "too long"}, status=400)
    return JsonResponse({"html": render_markdown(source)})


# =================================================================================================
# AI providers and bot decisions (the AI replies part) go below this line.
# =================================================================================================


class AIProviderForm(forms.ModelForm):
    """The API key is write-only: a password input that never renders the stored value.

    Leaving it empty on an existing provider keeps the stored key; "clear key" removes it.
    """

    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only: leave empty to keep the stored key."),
    )
    clear_api_key = forms.BooleanField(label=_("clear the stored key"), required=False)
    base_url = forms.URLField(
        label=_("base URL"),
        max_length=500,
        assume_scheme="https",
        help_text=AIProvider._meta.get_field("base_url").help_text,
    )

    class Meta:
        model = AIProvider
        fields = [
            "workspace",
            "name",
            "kind",
            "base_url",
            "model",
            "api_key",
            "weight",
            "timeout_seconds",
            "max_tokens",
            "enabled",
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key") and self.instance.pk:
            cleaned["api_key"] = self.instance.api_key  # unchanged
        return cleaned


def _breaker_text(provider: AIProvider) -> str:
    state = breaker.breaker_state(provider.pk)
    if state is None:
        return str(_("unknown (store unreachable)"))
    text = state.label
    if state.failures:
        text += f", {state.failures} " + str(_("consecutive failures"))
    if state.state == breaker.OPEN and state.retry_at:
        wait = max(0, round(state.retry_at - time.time()))
        text += ", " + str(_("probe in %(seconds)s s")) % {"seconds": wait}
    return text


@admin.register(AIProvider)
class AIProviderAdmin(KbWorkspaceFormMixin, WorkspaceScopedAdmin):
    form = AIProviderForm
    list_display = ["name", "workspace", "model", "weight", "enabled", "key_hint", "breaker"]
    list_filter = ["enabled", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["name", "model"]
    readonly_fields = ["key_hint", "breaker", "created_at", "updated_at"]
    actions = ["reset_breakers"]
    fieldsets = [
        (None, {"fields": ["workspace", "name", "enabled", "kind", "base_url", "model"]}),
        (_("Secret"), {"fields": ["key_hint", "api_key", "clear_api_key"]}),
        (_("Vote and limits"), {"fields": ["weight", "timeout_seconds", "max_tokens"]}),
        (_("State"), {"fields": ["breaker", "created_at", "updated_at"]}),
    ]

    @admin.display(description=_("API key"))
    def key_hint(self, obj: AIProvider) -> str:
        return obj.key_hint or "—"

    @admin.display(description=_("circuit breaker"))
    def breaker(self, obj: AIProvider) -> str:
        return _breaker_text(obj) if obj.pk else "—"

    @admin.action(description=_("Close the circuit breaker of the selected providers"))
    def reset_breakers(self, request, queryset):
        for provider in queryset:
            breaker.breaker_reset(provider.pk)
        self.message_user(request, _("Circuit breakers closed."), messages.SUCCESS)


@admin.register(BotDecision)
class BotDecisionAdmin(WorkspaceScopedAdmin):
    """The bot's log: read-only."""

    list_display = [
        "created_at",
        "kind",
        "outcome",
        "confidence_pct",
        "question_short",
        "conversation_id",
        "duration_ms",
        "workspace",
    ]
    list_filter = ["kind", "outcome", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["question", "answer", "reason"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "workspace",
        "kind",
        "outcome",
        "reason",
        "conversation_id",
        "message_id",
        "reply_id",
        "agent",
        "question",
        "answer",
        "confidence",
        "duration_ms",
        "kb_hits_pretty",
        "providers_pretty",
        "vote_pretty",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser  # pruning old logs; nobody edits them

    @admin.display(description=_("confidence"))
    def confidence_pct(self, obj: BotDecision) -> str:
        return "—" if obj.confidence is None else f"{obj.confidence:.0%}"

    @admin.display(description=_("question"))
    def question_short(self, obj: BotDecision) -> str:
        return obj.question if len(obj.question) <= 80 else obj.question[:79] + "…"

    @staticmethod
    def _pre(value) -> str:
        return format_html(
            '<pre style="white-space:pre-wrap;max-width:900px">{}</pre>',
            json.dumps(value, ensure_ascii=False, indent=2),
        )

    @admin.display(description=_("knowledge-base hits"))
    def kb_hits_pretty(self, obj: BotDecision) -> str:
        return self._pre(obj.kb_hits)

    @admin.display(description=_("provider answers"))
    def providers_pretty(self, obj: BotDecision) -> str:
        return self._pre(obj.providers)

    @admin.display(description=_("vote"))
    def vote_pretty(self, obj: BotDecision) -> str:
        return self._pre(obj.vote)
