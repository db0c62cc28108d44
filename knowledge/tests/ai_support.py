"""Fixtures and helpers shared by the AI-reply tests (a pytest plugin: see the root conftest)."""

from __future__ import annotations

import pytest

from knowledge.models import AIProvider
from knowledge.services import kb_load_articles

from .fake_openai import FakeOpenAI

SECRET_KEY_PREFIX = "sk-test-SECRET-"


@pytest.fixture
def fake_openai():
    """A fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def celery_eager(settings):
    """Run Celery tasks in the caller, as the embedded default does."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


def make_provider(workspace, fake: FakeOpenAI, slug: str, **fields) -> AIProvider:
    """A provider of ``workspace`` served by ``fake`` under ``slug``."""
    defaults = {
        "name": slug,
        "base_url": fake.url(slug),
        "model": f"model-{slug}",
        "api_key": SECRET_KEY_PREFIX + slug + "-0123456789",
        "weight": 1.0,
        "timeout_seconds": 2.0,
    }
    defaults.update(fields)
    return AIProvider.objects.create(workspace=workspace, **defaults)


RETURNS_ARTICLE = {
    "key": "returns",
    "title": "Returns and refunds",
    "category": "Orders",
    "tags": "refund, return, money back",
    "language": "en",
    "body": (
        "You can return any item within 30 days of delivery for a full refund. "
        "Start a return from the Orders page and print the prepaid label."
    ),
}
RETURNS_ARTICLE_ZH = {
    "key": "returns-zh",
    "title": "退货和退款",
    "category": "订单",
    "tags": "退款, 退货",
    "language": "zh-hans",
    "body": "收到商品后 30 天内可以退货并全额退款。请在“我的订单”页面申请退货并打印预付运单。",
}


def seed_kb(workspace):
    """A couple of published articles, through the knowledge base's own service."""
    return kb_load_articles(workspace=workspace, entries=[RETURNS_ARTICLE, RETURNS_ARTICLE_ZH])
