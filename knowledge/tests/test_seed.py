from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Workspace
from knowledge.models import Article, ArticleStatus
from knowledge.search import kb_search
from knowledge.services import kb_seed_demo

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_keeps_edits(workspace):
    count = kb_seed_demo(workspace=workspace)
    assert count >= 6
    langs = set(Article.objects.filter(workspace=workspace).values_list("language", flat=True))
    assert langs == {"en", "zh-hans"}
    edited = Article.objects.filter(workspace=workspace).first()
    edited.body = "Edited by a person."
    edited.save()
    assert kb_seed_demo(workspace=workspace) == count
    edited.refresh_from_db()
    assert edited.body == "Edited by a person."


def test_seed_demo_command_seeds_searchable_articles(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)
    workspace = Workspace.objects.get(name="Demo workspace")
    published = Article.objects.filter(workspace=workspace, status=ArticleStatus.PUBLISHED)
    assert published.count() >= 6
    assert f"/help/{workspace.widget_key}/" in out.getvalue()
    (hit, *_) = kb_search(workspace_id=workspace.pk, query="how do I get a refund?")
    assert hit.title == "Returns and refunds" and hit.score >= 0.55
    (hit, *_) = kb_search(workspace_id=workspace.pk, query="我想退货")
    assert hit.title == "退货和退款"
