import re
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from accounts.models import Workspace
from knowledge.management.commands.kb_eval import EVAL_DIR
from knowledge.models import Article

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "knowledge.md"
LAST_LINE = re.compile(r"^precision@1=(\d\.\d\d) recall@3=(\d\.\d\d)$")


def test_evaluation_set_is_big_enough_and_half_chinese():
    articles = {a["key"]: a for a in yaml.safe_load((EVAL_DIR / "articles.yaml").read_text())}
    questions = yaml.safe_load((EVAL_DIR / "questions.yaml").read_text())
    answerable = [q for q in questions if q["expected"]]
    assert len(answerable) >= 40
    assert all(q["expected"] in articles for q in answerable)
    chinese = [q for q in answerable if articles[q["expected"]]["language"].startswith("zh")]
    assert len(chinese) * 2 >= len(answerable) - 2
    # Honest questions: none is a copy of its article's title.
    assert not [q for q in answerable if q["q"].strip(" ?？") == articles[q["expected"]]["title"]]


def test_kb_eval_prints_the_figures_the_docs_record():
    before = (Workspace.objects.count(), Article.objects.count())
    out = StringIO()
    call_command("kb_eval", stdout=out)
    lines = out.getvalue().strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    # The scratch workspace is rolled back.
    assert (Workspace.objects.count(), Article.objects.count()) == before
    # Each language reaches the target.
    per_lang = dict(re.findall(r"^  (\w+): n=\d+ precision@1=(\d\.\d\d)", out.getvalue(), re.M))
    assert set(per_lang) == {"en", "zh"}
    assert all(float(p) >= 0.85 for p in per_lang.values()), per_lang
    # docs/knowledge.md states exactly what the command measures.
    assert lines[-1] in DOCS.read_text(encoding="utf-8")
    for lang, p1 in per_lang.items():
        assert re.search(rf"\|\s*{lang}\b[^|]*\|[^|]*\|\s*{p1}\s*\|", DOCS.read_text()), (lang, p1)
