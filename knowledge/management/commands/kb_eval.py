"""Measure search quality on the shipped evaluation set (knowledge/eval/).

Loads the articles into a scratch workspace inside a transaction that is rolled back at the
end (nothing is left behind), asks every question and prints precision@1 and recall@3 per
language and overall. The last line is always ``precision@1=0.NN recall@3=0.NN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Workspace
from knowledge import search
from knowledge.services import kb_load_articles

EVAL_DIR = Path(__file__).resolve().parents[2] / "eval"


@dataclass
class Outcome:
    question: str
    language: str
    expected: str | None
    ranked: list[str]
    top_score: float

    @property
    def hit1(self) -> bool:
        return bool(self.ranked) and self.ranked[0] == self.expected

    @property
    def hit3(self) -> bool:
        return self.expected in self.ranked[:3]


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Run the KB search evaluation set and print precision@1 / recall@3."

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=str(EVAL_DIR), help="folder with the YAML files")
        parser.add_argument(
            "--threshold",
            type=float,
            default=search.RECOMMENDED_THRESHOLD,
            help="confidence threshold to report the answer rate at",
        )
        parser.add_argument(
            "--with-language",
            action="store_true",
            help="pass the question's language to kb_search (default: search all languages)",
        )
        parser.add_argument("--show-misses", action="store_true")

    def handle(self, *args, dir: str, threshold: float, with_language: bool, **options):
        folder = Path(dir)
        try:
            articles = yaml.safe_load((folder / "articles.yaml").read_text(encoding="utf-8"))
            questions = yaml.safe_load((folder / "questions.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read the evaluation set in {folder}: {exc}") from exc
        outcomes: list[Outcome] = []
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(name="kb_eval scratch workspace")
                by_key = kb_load_articles(workspace=workspace, entries=articles)
                key_of = {a.pk: key for key, a in by_key.items()}
                lang_of = {key: a.language.split("-")[0] for key, a in by_key.items()}
                for item in questions:
                    expected = item.get("expected")
                    if expected is not None and expected not in by_key:
                        raise CommandError(f"unknown expected article {expected!r}")
                    lang = item.get("language") or lang_of[expected]
                    hits = search.kb_search(
                        workspace_id=workspace.pk,
                        query=item["q"],
                        language=lang if with_language else None,
                        limit=3,
                    )
                    outcomes.append(
                        Outcome(
                            question=item["q"],
                            language=lang,
                            expected=expected,
                            ranked=[key_of[h.article_id] for h in hits],
                            top_score=hits[0].score if hits else 0.0,
                        )
                    )
                raise _Rollback
        except _Rollback:
            pass
        self._report(outcomes, threshold, show_misses=options["show_misses"])

    def _report(self, outcomes: list[Outcome], threshold: float, *, show_misses: bool) -> None:
        out = self.stdout.write
        answerable = [o for o in outcomes if o.expected]
        unanswerable = [o for o in outcomes if not o.expected]
        out(
            f"{len(answerable)} questions with an expected article, "
            f"{len(unanswerable)} without (not in precision/recall)"
        )
        for lang in sorted({o.language for o in answerable}):
            group = [o for o in answerable if o.language == lang]
            sure = [o for o in group if o.top_score >= threshold]
            out(
                f"  {lang}: n={len(group)} "
                f"precision@1={_ratio(sum(o.hit1 for o in group), len(group)):.2f} "
                f"recall@3={_ratio(sum(o.hit3 for o in group), len(group)):.2f} "
                f"(score >= {threshold:.2f}: {len(sure)} answered, "
                f"{sum(not o.hit1 for o in sure)} wrong)"
            )
        above = [o for o in answerable if o.top_score >= threshold]
        wrong_above = [o for o in above if not o.hit1]
        off_above = [o for o in unanswerable if o.top_score >= threshold]
        out(
            f"  at score >= {threshold:.2f}: answered {len(above)}/{len(answerable)}, "
            f"wrong {len(wrong_above)}; unanswerable questions above it "
            f"{len(off_above)}/{len(unanswerable)}"
        )
        if show_misses:
            for o in answerable:
                if not o.hit1:
                    out(
                        f"  MISS [{o.language}] {o.question!r}: expected {o.expected}, got "
                        f"{o.ranked} (top score {o.top_score:.2f})"
                    )
            for o in unanswerable:
                out(f"  OFF  [{o.language}] {o.question!r}: {o.ranked[:1]} {o.top_score:.2f}")
        p1 = _ratio(sum(o.hit1 for o in answerable), len(answerable))
        r3 = _ratio(sum(o.hit3 for o in answerable), len(answerable))
        out(f"precision@1={p1:.2f} recall@3={r3:.2f}")
