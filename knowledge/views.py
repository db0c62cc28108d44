"""The public help centre (server-rendered) and the widget's article-suggestion endpoint."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Workspace
from accounts.selectors import workspace_get_by_key
from chat.widget_http import (
    widget_error,
    widget_json,
    widget_origin,
    widget_preflight,
    widget_refusal,
)

from . import search, selectors
from .rendering import render_markdown

log = logging.getLogger(__name__)

# The widget asks while the visitor types: keep questions short and the answer small.
SUGGEST_MAX_CHARS = 200
SUGGEST_LIMIT = 3
# Below this a suggestion is more noise than help (see docs/knowledge.md for the scale).
SUGGEST_MIN_SCORE = 0.25
SEARCH_LIMIT = 10
# The search page lists more than the widget, but not articles sharing one character.
SEARCH_MIN_SCORE = 0.1


def _workspace_or_404(widget_key: str) -> Workspace:
    workspace = workspace_get_by_key(widget_key=widget_key)
    if workspace is None:
        raise Http404("No help centre here.")
    return workspace


def _language_param(request: HttpRequest, languages: list[str]) -> str | None:
    lang = request.GET.get("lang", "")
    return lang if lang in languages else None


def _base_context(workspace: Workspace, **extra) -> dict:
    return {"workspace": workspace, "max_query": search.MAX_QUERY_CHARS, **extra}


@require_GET
def help_index(request: HttpRequest, widget_key: str) -> HttpResponse:
    workspace = _workspace_or_404(widget_key)
    languages = selectors.help_languages(workspace=workspace)
    language = _language_param(request, languages)
    listings = selectors.help_category_listings(workspace=workspace, language=language)
    return render(
        request,
        "help/index.html",
        _base_context(workspace, listings=listings, languages=languages, language=language),
    )


@require_GET
def help_category(request: HttpRequest, widget_key: str, pk: int) -> HttpResponse:
    workspace = _workspace_or_404(widget_key)
    category = selectors.help_category_get(workspace=workspace, pk=pk)
    if category is None:
        raise Http404("No such category.")
    articles = list(
        selectors.articles_published(workspace=workspace)
        .filter(category=category)
        .order_by("title")
    )
    return render(
        request,
        "help/category.html",
        _base_context(workspace, category=category, articles=articles),
    )


@require_GET
def help_article(request: HttpRequest, widget_key: str, pk: int) -> HttpResponse:
    workspace = _workspace_or_404(widget_key)
    article = selectors.help_article_get(workspace=workspace, pk=pk)
    if article is None:
        raise Http404("No such article.")
    related = []
    if article.category_id:
        related = list(
            selectors.articles_published(workspace=workspace)
            .filter(category_id=article.category_id)
            .exclude(pk=article.pk)
            .order_by("title")[:8]
        )
    return render(
        request,
        "help/article.html",
        _base_context(
            workspace,
            article=article,
            # Sanitized by nh3 in render_markdown: the only unescaped HTML on these pages.
            body_html=mark_safe(render_markdown(article.body)),  # noqa: S308
            related=related,
        ),
    )


@require_GET
def help_search(request: HttpRequest, widget_key: str) -> HttpResponse:
    workspace = _workspace_or_404(widget_key)
    query = request.GET.get("q", "").strip()
    error = ""
    hits: list[search.KbHit] = []
    status = 200
    if len(query) > search.MAX_QUERY_CHARS:
        error = "too_long"
        status = 400
    elif query:
        hits = search.kb_search(workspace_id=workspace.pk, query=query, limit=SEARCH_LIMIT)
        hits = [hit for hit in hits if hit.score >= SEARCH_MIN_SCORE]
    return render(
        request,
        "help/search.html",
        _base_context(workspace, query=query, hits=hits, error=error),
        status=status,
    )


@require_http_methods(["GET", "OPTIONS"])
def suggest(request: HttpRequest, widget_key: str) -> HttpResponse:
    """GET ?q=... -> {"results": [{"id", "title", "url", "snippet", "score"}]}.

    Called by the widget while the visitor types. Public data (published articles), no
    cookies; CORS is answered for the workspace's allowed origins, like the upload
    endpoint. An empty question gives an empty list; one over SUGGEST_MAX_CHARS a 400.
    """
    workspace = workspace_get_by_key(widget_key=widget_key)
    origin = widget_origin(request, workspace)
    if request.method == "OPTIONS":
        return widget_preflight(origin, "GET")
    refusal = widget_refusal(request, workspace, origin, unknown_key=404)
    if refusal is not None:
        return refusal
    query = request.GET.get("q", "").strip()
    if len(query) > SUGGEST_MAX_CHARS:
        return widget_error(
            "query_too_long",
            f"The question is longer than {SUGGEST_MAX_CHARS} characters.",
            400,
            origin,
        )
    results = []
    if query:
        hits = search.kb_search(workspace_id=workspace.pk, query=query, limit=SUGGEST_LIMIT)
        results = [
            {
                "id": hit.article_id,
                "title": hit.title,
                "url": hit.url,
                "snippet": hit.snippet[:160],
                "score": hit.score,
            }
            for hit in hits
            if hit.score >= SUGGEST_MIN_SCORE
        ]
    response = widget_json({"query": query, "results": results}, 200, origin)
    response["Cache-Control"] = "public, max-age=60"
    return response
