"""Knowledge-base search: published articles of one workspace, ranked, with a confidence.

How it works (docs/knowledge.md has the reasoning and the measured figures):

1. ``knowledge.analysis.analyze`` turns the question into terms: English words stemmed
   and stop-word filtered, Chinese segmented by jieba (search mode).
2. Candidates are the published articles of the workspace whose stored tsvector matches
   any term (PostgreSQL: ``search_vector @@ 'a' | 'b'`` on a GIN index).
3. Each candidate is scored with BM25F computed in SQL over ``unnest(search_vector)``:
   a term's frequency is weighted by the field it sits in (title A, tags B, body D) and
   its IDF comes from this workspace's own articles, so words every article uses
   ("order", "订单") count for little and rare ones decide.
4. The score is normalised into a confidence in [0, 1] (see ``KbHit.score``).

The embedded SQLite mode has no tsvector: ``_rank_python`` runs the same formula over
the same stored terms, so both modes rank identically (a test holds them equal).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from django.db import connection
from django.urls import reverse

from .analysis import NGRAM_PREFIX, analyze, term_weight
from .models import Article, ArticleStatus
from .rendering import markdown_to_text

# BM25 parameters (the usual ones) and the weight of one occurrence in each field.
K1 = 1.2
B = 0.75
FIELD_WEIGHTS = {"A": 3.0, "B": 3.0, "C": 0.5, "D": 1.0}
# What "a strong match" of one term is: once in the title (3) and once in the body (1),
# in an article of average length. A question whose every term matches like that scores 1.
REFERENCE_TF = 4.0
# A question word no published article contains (df = 0) weighs this share of the rarest
# possible known word in the normaliser: an off-topic question then scores low, while one
# stray word (a typo, a product name) does not sink a good match.
UNKNOWN_TERM_WEIGHT = 0.5
MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
SNIPPET_CHARS = 600
# Answer from the KB without asking anyone else at or above this score (see docs).
RECOMMENDED_THRESHOLD = 0.55


@dataclass(frozen=True)
class KbHit:
    """One search result.

    ``score`` is a confidence in [0, 1]: the share of the question's informative weight
    (IDF-weighted terms) that the article matches strongly. 1.0 means every informative
    word of the question is in the article's title or tags and in its body; about 0.6
    means all of them occur once in the body only, or half of them strongly; below 0.3
    the article shares only a word or two with the question. On the shipped evaluation
    set, 45 of 66 answerable questions had a top hit at or above ``RECOMMENDED_THRESHOLD``
    (0.55), all of them the expected article, and 1 of 12 unanswerable questions did
    (docs/knowledge.md).
    """

    article_id: int
    title: str
    url: str  # absolute path of the help-centre article page
    snippet: str  # plain-text passage, the best-matching part of the body (<= ~600 chars)
    score: float  # confidence in [0, 1]


def kb_search(
    *, workspace_id: int, query: str, language: str | None = None, limit: int = 5
) -> list[KbHit]:
    """Published articles of the workspace ranked best first.

    ``language``: None searches every language; "en", "zh", "zh-CN", "zh-hans" ... keep
    articles whose language has the same primary subtag. Questions longer than
    ``MAX_QUERY_CHARS`` are cut there. One database round trip on PostgreSQL.
    """
    terms = query_terms(query)
    if not terms or limit < 1:
        return []
    lang = _primary_subtag(language)
    if connection.vendor == "postgresql":
        ranked = _rank_postgres(workspace_id=workspace_id, terms=terms, lang=lang, limit=limit)
    else:
        ranked = _rank_python(workspace_id=workspace_id, terms=terms, lang=lang, limit=limit)
    return [
        KbHit(
            article_id=row.article_id,
            title=row.title,
            url=reverse(
                "help:article", kwargs={"widget_key": row.widget_key, "pk": row.article_id}
            ),
            snippet=best_passage(markdown_to_text(row.body), terms),
            score=row.score,
        )
        for row in ranked
    ]


def query_terms(query: str) -> list[str]:
    """Distinct terms of a question, in order, at most ``MAX_QUERY_TERMS``."""
    seen: dict[str, None] = {}
    for term in analyze((query or "")[:MAX_QUERY_CHARS]):
        seen.setdefault(term, None)
    return list(seen)[:MAX_QUERY_TERMS]


@dataclass(frozen=True)
class _Ranked:
    article_id: int
    title: str
    body: str
    widget_key: str
    score: float


def _primary_subtag(language: str | None) -> str | None:
    if not language:
        return None
    return language.strip().lower().replace("_", "-").split("-", 1)[0] or None


def idf(df: float, n: float) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def confidence(raw: float, terms: list[str], df: dict[str, float], n: float) -> float:
    """Map a BM25F score onto [0, 1] against what a strong match of every term would score."""
    if n <= 0:
        return 0.0
    rarest = idf(1, n)
    weights = [
        term_weight(t) * (idf(df[t], n) if df.get(t) else UNKNOWN_TERM_WEIGHT * rarest)
        for t in terms
        # A character pair no article has mostly straddles a word boundary ("给我"):
        # no evidence either way, so it does not lower the confidence.
        if df.get(t) or not (t.startswith(NGRAM_PREFIX) and len(t) > len(NGRAM_PREFIX) + 1)
    ]
    reference = REFERENCE_TF * (K1 + 1) / (REFERENCE_TF + K1)
    norm = sum(weights) * reference
    return round(min(1.0, raw / norm), 4) if norm > 0 else 0.0


def _bm25_term(tf: float, length: float, avgdl: float, term_idf: float) -> float:
    return term_idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl))


# --- PostgreSQL ---------------------------------------------------------------------------------

_LANG_SQL = "AND (a.language = %(lang)s OR a.language LIKE %(lang_prefix)s)"

_RANK_SQL = """
WITH stats AS (
    SELECT count(*)::float8 AS n, greatest(avg(a.search_length), 1)::float8 AS avgdl
    FROM knowledge_article a
    WHERE a.workspace_id = %(ws)s AND a.status = 'published' {lang}
),
q AS (SELECT * FROM unnest(%(terms)s::text[], %(weights)s::float8[]) AS q(term, qw)),
hits AS (
    SELECT a.id, a.search_length::float8 AS len, u.lexeme, q.qw,
           (SELECT sum(CASE w WHEN 'A' THEN %(wa)s WHEN 'B' THEN %(wb)s
                              WHEN 'C' THEN %(wc)s ELSE %(wd)s END)
            FROM unnest(u.weights) AS w)::float8 AS tf
    FROM knowledge_article a
    CROSS JOIN LATERAL unnest(a.search_vector) AS u
    JOIN q ON q.term = u.lexeme
    WHERE a.workspace_id = %(ws)s AND a.status = 'published' {lang}
      AND a.search_vector @@ %(tsquery)s::tsquery
),
df AS (SELECT lexeme, count(*)::float8 AS df FROM hits GROUP BY lexeme),
scored AS (
    SELECT h.id,
           sum(h.qw * ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5))
               * h.tf * (%(k1)s + 1)
               / (h.tf + %(k1)s * (1 - %(b)s + %(b)s * h.len / s.avgdl))) AS raw
    FROM hits h JOIN df USING (lexeme) CROSS JOIN stats s
    GROUP BY h.id
    ORDER BY raw DESC, h.id
    LIMIT %(limit)s
)
SELECT sc.id, sc.raw, a.title, a.body, w.widget_key,
       (SELECT n FROM stats), (SELECT json_object_agg(lexeme, df) FROM df)
FROM scored sc
JOIN knowledge_article a ON a.id = sc.id
JOIN accounts_workspace w ON w.id = a.workspace_id
ORDER BY sc.raw DESC, sc.id
"""


def search_document(*, title: str, tags: str, body_text: str) -> tuple[str, int]:
    """The tsvector literal (``'term':1A,7D ...``) and word count stored on an article.

    The count (BM25's document length) leaves out character n-grams, so a Chinese article
    is not "longer" than an English one of the same size.

    Positions run through title (weight A), tags (B) and body (D); tsvector keeps at most
    256 positions per lexeme and positions up to 16383, so the same caps apply here.
    """
    positions: dict[str, list[str]] = {}
    pos = words = 0
    for weight, text in (("A", title), ("B", tags.replace("，", ",")), ("D", body_text)):
        for term in analyze(text):
            pos += 1
            words += term_weight(term) == 1.0
            slots = positions.setdefault(term, [])
            if len(slots) < 256 and pos <= 16383:
                slots.append(f"{pos}{'' if weight == 'D' else weight}")
    literal = " ".join(
        f"{_quote_lexeme(t)}:{','.join(p)}" for t, p in sorted(positions.items()) if p
    )
    return literal, words


def tsquery_literal(terms: list[str]) -> str:
    return " | ".join(_quote_lexeme(t) for t in terms)


def _quote_lexeme(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _rank_postgres(*, workspace_id: int, terms: list[str], lang: str | None, limit: int):
    params = {
        "ws": workspace_id,
        "tsquery": tsquery_literal(terms),
        "terms": terms,
        "weights": [term_weight(t) for t in terms],
        "k1": K1,
        "b": B,
        "wa": FIELD_WEIGHTS["A"],
        "wb": FIELD_WEIGHTS["B"],
        "wc": FIELD_WEIGHTS["C"],
        "wd": FIELD_WEIGHTS["D"],
        "limit": limit,
        "lang": lang,
        "lang_prefix": f"{lang}-%" if lang else None,
    }
    sql = _RANK_SQL.format(lang=_LANG_SQL if lang else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = []
    for article_id, raw, title, body, widget_key, n, df in rows:
        out.append(
            _Ranked(article_id, title, body, widget_key, confidence(raw, terms, df or {}, n))
        )
    return out


# --- Python (SQLite, embedded mode) --------------------------------------------------------------

_TSV_ENTRY = re.compile(r"'((?:[^'\\]|''|\\.)*)':([0-9A-D,]+)")
_POSITION = re.compile(r"\d+([A-D]?)")


def parse_search_terms(literal: str) -> dict[str, float]:
    """Field-weighted term frequencies from a tsvector literal written by search_document."""
    out: dict[str, float] = {}
    for match in _TSV_ENTRY.finditer(literal):
        lexeme = match.group(1).replace("''", "'").replace("\\\\", "\\")
        out[lexeme] = sum(
            FIELD_WEIGHTS[p.group(1) or "D"] for p in _POSITION.finditer(match.group(2))
        )
    return out


def _rank_python(*, workspace_id: int, terms: list[str], lang: str | None, limit: int):
    qs = Article.objects.filter(workspace_id=workspace_id, status=ArticleStatus.PUBLISHED)
    if lang:
        from django.db.models import Q

        qs = qs.filter(Q(language=lang) | Q(language__startswith=f"{lang}-"))
    docs = list(qs.values_list("id", "search_terms", "search_length"))
    if not docs:
        return []
    n = float(len(docs))
    avgdl = max(sum(d[2] for d in docs) / n, 1.0)
    wanted = set(terms)
    matched = []
    df: Counter[str] = Counter()
    for article_id, literal, length in docs:
        tfs = {t: tf for t, tf in parse_search_terms(literal).items() if t in wanted}
        if tfs:
            matched.append((article_id, float(length), tfs))
            df.update(tfs.keys())
    scored = []
    for article_id, length, tfs in matched:
        raw = sum(
            term_weight(t) * _bm25_term(tf, length, avgdl, idf(df[t], n)) for t, tf in tfs.items()
        )
        scored.append((raw, article_id))
    scored.sort(key=lambda s: (-s[0], s[1]))
    top = scored[:limit]
    rows = {
        a.pk: a
        for a in Article.objects.select_related("workspace").filter(pk__in=[s[1] for s in top])
    }
    return [
        _Ranked(
            pk,
            rows[pk].title,
            rows[pk].body,
            rows[pk].workspace.widget_key,
            confidence(raw, terms, dict(df), n),
        )
        for raw, pk in top
    ]


# --- snippets -----------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


def best_passage(text: str, terms: list[str], limit: int = SNIPPET_CHARS) -> str:
    """The paragraph sharing most question terms, topped up with what follows it."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    if not paragraphs:
        return ""
    wanted = set(terms)
    best, best_hits = 0, 0
    for i, para in enumerate(paragraphs):
        hits = len(wanted.intersection(analyze(para)))
        if hits > best_hits:
            best, best_hits = i, hits
    # A heading-only line ("## Refunds") says little: start from it but keep going.
    out = paragraphs[best]
    for para in paragraphs[best + 1 :]:
        if len(out) + 1 + len(para) > limit:
            break
        out += "\n" + para
    return _clip(out, limit)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    ends = [m.start() for m in _SENTENCE_END.finditer(cut) if m.start() > limit // 2]
    return (cut[: ends[-1]] if ends else cut.rstrip()) + "…"
