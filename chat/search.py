"""Full-text search over a workspace's message history, English and Chinese alike.

docs/routing.md ("Searching message history") has the reasoning; in short:

* Each message stores its terms in ``Message.search_terms`` as a tsvector literal
  (``'refund' '_退款' ...``), written by :func:`message_search_terms` where messages are
  built (:func:`chat.message_store.messages_store`). On PostgreSQL a stored generated column
  ``search_vector`` casts it to tsvector, with a GIN index (migration 0004, invisible to the
  ORM); SQLite (the embedded mode) matches the same literal with ``LIKE``.
* Latin text: the knowledge base's analyser (``knowledge.analysis``): NFKC, lower case,
  English stop words dropped, Snowball stems ("refunds" -> "refund").
* Chinese text (no spaces): every character and every pair of adjacent characters of a
  Han run, with the knowledge base's n-gram prefix (``_退``, ``_退款``). A query's Han run
  must match all of its pairs (a one-character run: that character), so "退款" finds
  "我想申请退款" and "退款多久到账" whatever a dictionary would make of either sentence.
  jieba's words are not stored: a query never needs them, and they would cost time on
  every message.
* A query is the AND of its terms; the last Latin word is matched as a prefix, so the
  console's search-as-you-type finds "refund" from "refu".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models import Q

from accounts.models import AgentProfile
from knowledge.analysis import ENGLISH_STOP_WORDS, NGRAM_PREFIX, _stemmer, normalize

from . import frames
from .errors import ChatError
from .models import Conversation, Message

MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 32
MAX_LIMIT = 50
SNIPPET_CHARS = 160
# tsvector refuses lexemes over 2046 bytes; nothing that long is a word anyone searches.
MAX_TERM_CHARS = 60

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:['’][a-z]+)?")
_IS_CJK = re.compile(rf"[{_CJK}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@lru_cache(maxsize=50_000)
def _latin_term(run: str) -> str | None:
    """The stem of one Latin word, as ``knowledge.analysis.analyze`` makes it, or None.

    Cached: Snowball in pure Python costs ~50 µs a word, and chat vocabulary repeats.
    """
    run = run.replace("’", "'")
    if run in ENGLISH_STOP_WORDS:
        return None
    word = run.split("'", 1)[0]  # "customer's" -> "customer"
    if (len(word) < 2 and not word.isdigit()) or len(word) > MAX_TERM_CHARS:
        return None
    return _stemmer().stemWord(word)


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def message_search_terms(text: str) -> str:
    """The tsvector literal stored in ``Message.search_terms``: distinct terms, no positions.

    Han runs give their adjacent pairs and their last character (``_退款 _款``), so every
    character of the text starts some stored term: a one-character query is a prefix
    query. Terms are only ``[a-z0-9]`` or Han characters (see ``_RUN``), so quoting them
    needs no escaping. Runs for every message on the hot path: a few microseconds for a
    typical message (docs/routing.md has the measurement).
    """
    if not text:
        return ""
    terms: list[str] = []
    for run in _RUN.findall(normalize(text)):
        if run[0] >= "\u3400":  # a Han run; Latin runs start with [a-z0-9]
            terms += [NGRAM_PREFIX + run[i : i + 2] for i in range(len(run) - 1)]
            terms.append(NGRAM_PREFIX + run[-1])
        elif (term := _latin_term(run)) is not None:
            terms.append(term)
    return " ".join(["'" + t + "'" for t in dict.fromkeys(terms)])


@dataclass(frozen=True)
class Query:
    """What a search asks for: every one of ``terms``, and a term starting with each of
    ``prefixes``."""

    text: str  # the query as typed, trimmed
    terms: tuple[str, ...]
    prefixes: tuple[str, ...]
    needles: tuple[str, ...]  # lower-cased pieces to look for when cutting a snippet


def search_query(q: Any) -> Query:
    """Check and analyse a query; raises ``invalid_query`` / ``query_too_long``."""
    if not isinstance(q, str):
        raise ChatError("invalid_query", "q must be a string.")
    text = _CONTROL.sub(" ", q).strip()
    if not text:
        raise ChatError("invalid_query", "Type something to search for.")
    if len(text) > MAX_QUERY_CHARS:
        raise ChatError("query_too_long", f"Search for at most {MAX_QUERY_CHARS} characters.")
    terms: dict[str, None] = {}
    prefixes: dict[str, None] = {}
    needles: dict[str, None] = {}
    folded = normalize(text)
    runs = list(_RUN.finditer(folded))
    for i, match in enumerate(runs):
        run = match.group()
        if run[0] >= "\u3400":  # Han
            needles.setdefault(run, None)
            if len(run) == 1:  # stored as the first of a pair, or a run's last character
                prefixes.setdefault(NGRAM_PREFIX + run, None)
            for j in range(len(run) - 1):
                terms.setdefault(NGRAM_PREFIX + run[j : j + 2], None)
            continue
        term = _latin_term(run)
        if not term:
            continue
        needles.setdefault(run.split("'", 1)[0], None)
        needles.setdefault(term, None)
        # Still being typed: the last word, when nothing follows it, also as a prefix.
        if i == len(runs) - 1 and match.end() == len(folded) and run.isalpha():
            prefixes.setdefault(term, None)
        else:
            terms.setdefault(term, None)
    return Query(
        text=text,
        terms=tuple(list(terms)[:MAX_QUERY_TERMS]),
        prefixes=tuple(p for p in prefixes if p not in terms),
        needles=tuple(needles),
    )


def tsquery_literal(query: Query) -> str:
    parts = [_quote(t) for t in query.terms] + [_quote(p) + ":*" for p in query.prefixes]
    return " & ".join(parts)


def _matching_messages(workspace_id: int, query: Query, limit: int) -> list[int]:
    """Ids of the newest matching message of up to ``limit`` conversations, newest first."""
    if not query.terms and not query.prefixes:
        return []
    if connection.vendor == "postgresql":
        sql = (
            "SELECT max(m.id) AS newest FROM chat_message m "
            "WHERE m.workspace_id = %s AND m.search_vector @@ %s::tsquery "
            "GROUP BY m.conversation_id ORDER BY newest DESC LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [workspace_id, tsquery_literal(query), limit])
            return [row[0] for row in cursor.fetchall()]
    # SQLite (embedded mode): LIKE on the literal, whose lexemes are quoted: 'refund'.
    qs = Message.objects.filter(workspace_id=workspace_id)
    for term in query.terms:
        qs = qs.filter(search_terms__contains=_quote(term))
    for prefix in query.prefixes:
        qs = qs.filter(search_terms__contains=_quote(prefix)[:-1])
    seen: dict[int, int] = {}
    for message_id, conversation_id in qs.order_by("-id").values_list("id", "conversation_id"):
        if conversation_id not in seen:
            seen[conversation_id] = message_id
            if len(seen) >= limit:
                break
    return list(seen.values())


def snippet(text: str, needles: tuple[str, ...], limit: int = SNIPPET_CHARS) -> str:
    """About ``limit`` characters of ``text`` around the first match, as plain text."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    lower = normalize(text)
    if len(lower) != len(text):  # NFKC changed lengths (rare ligatures): positions differ
        lower = text.lower()
    found = [p for p in (lower.find(n) for n in needles if n) if p >= 0]
    at = min(found) if found else 0
    start = max(0, min(at - limit // 3, len(text) - limit))
    out = text[start : start + limit].strip()
    return ("…" if start > 0 else "") + out + ("…" if start + limit < len(text) else "")


def conversation_search(*, agent: AgentProfile, q: Any, limit: int = 30) -> list[dict[str, Any]]:
    """Conversations of the agent's workspace whose messages (or visitor) match ``q``.

    One row per conversation, newest match first: the conversation frame and the newest
    matching message (its seq and a snippet), or ``message: None`` when only the visitor's
    name or email matched. Raises ``invalid_query`` / ``query_too_long``.
    """
    query = search_query(q)
    limit = max(1, min(int(limit), MAX_LIMIT))
    workspace_id = agent.workspace_id
    message_ids = _matching_messages(workspace_id, query, limit)
    messages = {
        m.conversation_id: m
        for m in Message.objects.filter(pk__in=message_ids, workspace_id=workspace_id).only(
            "id", "conversation_id", "seq", "text", "created_at"
        )
    }
    by_visitor = list(
        Conversation.objects.filter(workspace_id=workspace_id)
        .filter(Q(visitor__name__icontains=query.text) | Q(visitor__email__icontains=query.text))
        .exclude(pk__in=list(messages))
        .order_by("-last_message_at", "-id")
        .values_list("pk", "last_message_at", "created_at")[:limit]
    )
    ranked = [(m.created_at, cid) for cid, m in messages.items()]
    ranked += [(last or created, cid) for cid, last, created in by_visitor]
    ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
    ids = [cid for _, cid in ranked[:limit]]
    conversations = Conversation.objects.select_related("visitor", "assignee", "team").filter(
        pk__in=ids, workspace_id=workspace_id
    )
    rows = {c.pk: c for c in frames.labels_prefetch(conversations)}
    results = []
    for cid in ids:
        conversation = rows.get(cid)
        if conversation is None:
            continue
        message = messages.get(cid)
        results.append(
            {
                "conversation": frames.conversation_frame(conversation),
                "message": (
                    {
                        "id": message.pk,
                        "seq": message.seq,
                        "snippet": snippet(message.text, query.needles),
                        "created_at": message.created_at.isoformat(),
                    }
                    if message
                    else None
                ),
            }
        )
    return results
