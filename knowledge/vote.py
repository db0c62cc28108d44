"""Combine several providers' answers by weighted vote.

Similarity. Two answers *agree* when the Jaccard similarity of their token sets is at
least :data:`AGREE_AT` (0.4). Tokens are chosen so one measure works for English and
Chinese: text is NFKC-normalised and lower-cased; every run of Han characters gives its
character bigrams (Chinese has no spaces, and bigrams are the usual unit there); every
run of other letters/digits is a word, dropped if it is a common English function word,
and reduced to its Snowball (Porter 2) stem, so "accepted" and "accepts" are one token.
Punctuation and spacing do not count. Paraphrases of one answer score 0.45–0.9;
unrelated answers score near 0; answers that share the topic but differ in the fact
(``30 days`` vs ``14 days``) land around 0.2–0.3 and do not agree.

Vote. Each answering provider brings its weight. An answer's *support* is the sum of the
weights of every answer that agrees with it (its own included). The best-supported answer
wins; a tie goes to the answer whose own provider has the higher weight, then to the
provider listed first. So two agreeing providers of weight 1 (support 2) beat a lone
provider of weight 1.5, and a lone provider of weight 3 beats them.

Confidence is the winner's support divided by the total weight of the providers that
answered (failed and skipped providers do not dilute it; the pipeline hands off when
nobody answered). A single answering provider therefore has confidence 1.0, and three
equal providers that all disagree have 1/3.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

AGREE_AT = 0.4

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_HAN}]+|[^\W_{_HAN}]+")
_HAN_RUN = re.compile(rf"^[{_HAN}]")
_STOPWORDS = frozenset(
    "a an the is are was were be been to of and or in on at for from by with as it its this "
    "that these those can could will would do does did i my me you your we our us they their "
    "he she his her so if then than there here please just".split()
)


_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def tokens(text: str) -> frozenset[str]:
    """The token set used for similarity (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    out: set[str] = set()
    for run in _RUN.findall(text):
        if _HAN_RUN.match(run):
            if len(run) == 1:
                out.add(run)
            else:
                out.update(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in _STOPWORDS:
            out.add(_stem(run))
    return frozenset(out)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the token sets of ``a`` and ``b``, in [0, 1]."""
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0 if a.strip() == b.strip() else 0.0
    return len(ta & tb) / len(ta | tb)


@dataclass(frozen=True)
class Ballot:
    """One provider's answer."""

    key: int  # the provider id
    name: str
    text: str
    weight: float


@dataclass(frozen=True)
class VoteResult:
    winner: Ballot | None
    support: float
    total: float
    confidence: float
    # per ballot: its support and which ballots agree with it; for the decision log
    tally: list[dict]

    def as_log(self) -> dict:
        return {
            "measure": "token-jaccard",
            "agree_at": AGREE_AT,
            "winner": self.winner.key if self.winner else None,
            "support": round(self.support, 4),
            "total": round(self.total, 4),
            "confidence": round(self.confidence, 4),
            "tally": self.tally,
        }


def weighted_vote(ballots: Sequence[Ballot], *, agree_at: float = AGREE_AT) -> VoteResult:
    """Pick the best-supported answer; see the module docstring for the rules."""
    ballots = [b for b in ballots if b.text.strip() and b.weight > 0]
    total = sum(b.weight for b in ballots)
    if not ballots:
        return VoteResult(None, 0.0, 0.0, 0.0, [])
    token_sets = [tokens(b.text) for b in ballots]

    def agree(i: int, j: int) -> bool:
        if i == j:
            return True
        ta, tb = token_sets[i], token_sets[j]
        union = ta | tb
        if not union:
            return ballots[i].text.strip() == ballots[j].text.strip()
        return len(ta & tb) / len(union) >= agree_at

    tally = []
    best: tuple[float, float, int] | None = None
    best_index = 0
    for i, ballot in enumerate(ballots):
        friends = [j for j in range(len(ballots)) if agree(i, j)]
        support = sum(ballots[j].weight for j in friends)
        tally.append(
            {
                "provider_id": ballot.key,
                "name": ballot.name,
                "weight": ballot.weight,
                "support": round(support, 4),
                "agrees_with": [ballots[j].key for j in friends if j != i],
            }
        )
        # Higher support, then higher own weight, then earlier in the list.
        rank = (support, ballot.weight, -i)
        if best is None or rank > best:
            best, best_index = rank, i
    winner = ballots[best_index]
    support = best[0] if best else 0.0
    return VoteResult(winner, support, total, support / total if total else 0.0, tally)
