"""Reads of the public help centre: published articles of one workspace only."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from accounts.models import Workspace

from .models import Article, ArticleStatus, Category


@dataclass
class CategoryListing:
    category: Category | None  # None: articles without a category
    articles: list[Article] = field(default_factory=list)


def _language_q(language: str | None) -> Q:
    if not language:
        return Q()
    return Q(language=language) | Q(language__startswith=f"{language}-")


def articles_published(*, workspace: Workspace, language: str | None = None) -> QuerySet[Article]:
    return Article.objects.filter(
        _language_q(language), workspace=workspace, status=ArticleStatus.PUBLISHED
    )


def help_languages(*, workspace: Workspace) -> list[str]:
    """Languages the workspace has published articles in, in settings.LANGUAGES order."""
    from django.conf import settings

    present = set(articles_published(workspace=workspace).values_list("language", flat=True))
    return [code for code, _ in settings.LANGUAGES if code in present]


def help_category_listings(
    *, workspace: Workspace, language: str | None = None
) -> list[CategoryListing]:
    """Categories (in their order) with their published articles; empty ones left out."""
    listings: dict[int | None, CategoryListing] = {}
    articles = (
        articles_published(workspace=workspace, language=language)
        .select_related("category")
        .order_by("category__position", "category__name", "title")
    )
    for article in articles:
        key = article.category_id
        if key not in listings:
            listings[key] = CategoryListing(category=article.category)
        listings[key].articles.append(article)
    # Uncategorised articles go last.
    return sorted(listings.values(), key=lambda item: item.category is None)


def help_category_get(*, workspace: Workspace, pk: int) -> Category | None:
    return Category.objects.filter(workspace=workspace, pk=pk).first()


def help_article_get(*, workspace: Workspace, pk: int) -> Article | None:
    """A published article of this workspace, or None (drafts and others' are not found)."""
    return articles_published(workspace=workspace).select_related("category").filter(pk=pk).first()
