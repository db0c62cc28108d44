"""Writes of the knowledge base: articles, categories, the demo seed.

(Search lives in search.py, help-centre reads in selectors.py.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace

from .models import Article, ArticleStatus, Category

SEED_FILE = Path(__file__).resolve().parent / "seed" / "demo_articles.yaml"


def article_publish(*, article: Article) -> Article:
    if article.status != ArticleStatus.PUBLISHED:
        article.status = ArticleStatus.PUBLISHED
        article.published_at = article.published_at or timezone.now()
        article.save(update_fields=["status", "published_at", "updated_at"])
    return article


def article_unpublish(*, article: Article) -> Article:
    if article.status != ArticleStatus.DRAFT:
        article.status = ArticleStatus.DRAFT
        article.save(update_fields=["status", "updated_at"])
    return article


def article_status_changed(*, article: Article) -> None:
    """Stamp ``published_at`` the first time an article goes live (admin saves call this)."""
    if article.status == ArticleStatus.PUBLISHED and article.published_at is None:
        article.published_at = timezone.now()


@transaction.atomic
def kb_load_articles(*, workspace: Workspace, entries: Iterable[dict]) -> dict[str, Article]:
    """Create the articles (and their categories) described by ``entries``; keep existing ones.

    Each entry: ``key`` (optional), ``title``, ``body`` (Markdown), ``language``,
    ``category``, ``tags`` (list or comma string), ``status`` (default published). An
    article of the same workspace, title and language is left as it is, so running this
    again changes nothing and never overwrites an editor's changes. Returns key -> article.
    """
    out: dict[str, Article] = {}
    categories: dict[str, Category] = {}
    for position, entry in enumerate(entries):
        category = None
        name = (entry.get("category") or "").strip()
        if name:
            category = categories.get(name)
            if category is None:
                category, _ = Category.objects.get_or_create(
                    workspace=workspace,
                    name=name,
                    defaults={"position": len(categories), "description": ""},
                )
                categories[name] = category
        tags = entry.get("tags") or ""
        if not isinstance(tags, str):
            tags = ", ".join(tags)
        status = entry.get("status", ArticleStatus.PUBLISHED)
        article = Article.objects.filter(
            workspace=workspace, title=entry["title"], language=entry.get("language", "en")
        ).first()
        if article is None:
            article = Article.objects.create(
                workspace=workspace,
                category=category,
                title=entry["title"],
                body=entry["body"],
                tags=tags,
                language=entry.get("language", "en"),
                status=status,
                published_at=timezone.now() if status == ArticleStatus.PUBLISHED else None,
            )
        out[entry.get("key") or str(position)] = article
    return out


def kb_seed_demo(*, workspace: Workspace) -> int:
    """Seed the demo workspace's help centre (English and Chinese); idempotent.

    Returns how many articles the workspace's knowledge base holds afterwards.
    """
    entries = yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))
    kb_load_articles(workspace=workspace, entries=entries)
    return Article.objects.filter(workspace=workspace).count()
