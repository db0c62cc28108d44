"""Automatic replies: an operator's rules that answer a visitor's message at once.

A rule (:class:`chat.models.AutoReplyRule`) matches when

* ``any``: one of its keywords is in the message;
* ``all``: every one of its keywords is in the message;
* ``regex``: its regular expression is found in the message.

Keywords are separated by commas (``,``, the Chinese ``，`` or ``、``) and compared without
regard to case. A keyword in a script written with spaces between words (Latin, Cyrillic...)
matches whole words only ("price" is not found in "priceless"); a keyword with Chinese,
Japanese or Korean characters matches anywhere, because those scripts do not separate
words. Regular expressions are case-insensitive too (``(?-i:...)`` turns that off).

The first enabled rule by ``position`` (then by id) that matches answers; the others do not.

This runs for every visitor message, on the thread that stores messages, so:

* the enabled rules of a workspace are compiled once and kept in memory for
  :data:`CACHE_SECONDS` (an empty list too: a workspace without rules costs no query);
  saving or deleting a rule clears this process's copy at once, other processes see the
  change within :data:`CACHE_SECONDS`;
* operators' regular expressions run under the ``regex`` module's timeout
  (:data:`REGEX_TIMEOUT` seconds) and release the GIL while they run; a rule that times
  out or fails is skipped, logged, and not tried again until the cache is refreshed, so a
  pathological pattern costs at most one timeout per refresh;
* keyword rules are our own patterns (escaped literals), linear in the message length.
"""

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import regex
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils.translation import gettext as _

from .models import AutoReplyMatch, AutoReplyRule, Message, SenderKind

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
REGEX_TIMEOUT = 0.05  # seconds; sane rules take microseconds
PATTERN_MAX = 500  # the model's max_length, checked again for regexes set outside forms
RULES_MAX = 200  # per workspace: bounds the work per message
KEYWORD_SEPARATORS = re.compile(r"[,，、]")
# Scripts written without spaces between words: a keyword in them matches as a substring.
_CJK_RANGES = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
CJK = re.compile(f"[{_CJK_RANGES}]")
# A word character of a spaced script: "iPhone" is a whole word in "我的iPhone坏了".
_SPACED_WORD_CHAR = f"[^\\W{_CJK_RANGES}]"
# Probes for validation: inputs that make backtracking-prone patterns blow up.
_PROBES = ("a" * 40 + "!", "1" * 40 + "!", " " * 40 + "!", "ab" * 20 + "!", "x@" * 20 + "!")


# --- parsing and validation ---------------------------------------------------------------


def keywords_split(pattern: str) -> list[str]:
    """The keywords of a keyword rule: split on commas, trimmed, empty ones and repeats dropped."""
    seen: dict[str, str] = {}
    for part in KEYWORD_SEPARATORS.split(pattern):
        word = " ".join(part.split())
        if word:
            seen.setdefault(word.casefold(), word)
    return list(seen.values())


def _keyword_regex(word: str) -> str:
    body = r"\s+".join(re.escape(piece) for piece in word.split(" "))
    if CJK.search(word):
        return body
    # Whole words: no letter or digit of a spaced script just before or after (so "c++",
    # "e-mail" and "iPhone" in "我的iPhone坏了" work).
    return f"(?<!{_SPACED_WORD_CHAR}){body}(?!{_SPACED_WORD_CHAR})"


def _regex_compile(pattern: str):
    return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)


def auto_reply_pattern_clean(*, match: str, pattern: str) -> str:
    """Check a rule's pattern for ``match``; returns it trimmed or raises ``ValidationError``."""
    pattern = (pattern or "").strip()
    if not pattern:
        raise ValidationError(_("Enter keywords or a pattern."), code="required")
    if len(pattern) > PATTERN_MAX:
        raise ValidationError(
            _("At most %(max)d characters.") % {"max": PATTERN_MAX}, code="max_length"
        )
    if match != AutoReplyMatch.REGEX:
        if not keywords_split(pattern):
            raise ValidationError(_("Enter at least one keyword."), code="no_keywords")
        return pattern
    try:
        compiled = _regex_compile(pattern)
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValidationError(
            _("Not a valid regular expression: %(error)s") % {"error": exc}, code="invalid_regex"
        ) from None
    try:
        if compiled.search("", timeout=REGEX_TIMEOUT):
            # A rule that matches the empty text answers every message (often a stray "|").
            raise ValidationError(
                _("This pattern matches every message; make it more specific."),
                code="matches_everything",
            )
        for probe in _PROBES:
            compiled.search(probe, timeout=REGEX_TIMEOUT * 2)
    except TimeoutError:
        raise ValidationError(
            _("This pattern can take too long on some messages (catastrophic backtracking)."),
            code="too_slow",
        ) from None
    return pattern


# --- the compiled, cached rules ---------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    rule: AutoReplyRule
    patterns: tuple  # "all": every one must be found; otherwise one
    operator: bool  # an operator's regex: run under the timeout

    def found(self, text: str) -> bool:
        if self.operator:
            return self.patterns[0].search(text, timeout=REGEX_TIMEOUT, concurrent=True) is not None
        return all(p.search(text) is not None for p in self.patterns)


@dataclass
class _Entry:
    expires: float
    rules: list[_Compiled]
    tripped: set[int] = field(default_factory=set)  # rules that timed out or failed


_cache: dict[int, _Entry] = {}
_lock = threading.Lock()


def _compile(rule: AutoReplyRule) -> _Compiled | None:
    if not rule.reply.strip():
        return None  # nothing to say
    try:
        if rule.match == AutoReplyMatch.REGEX:
            if len(rule.pattern) > PATTERN_MAX:
                raise ValueError("pattern too long")
            return _Compiled(rule, (_regex_compile(rule.pattern),), operator=True)
        words = [_keyword_regex(w) for w in keywords_split(rule.pattern)]
        if not words:
            return None
        if rule.match == AutoReplyMatch.ALL_KEYWORDS:
            patterns = tuple(re.compile(w, re.IGNORECASE) for w in words)
        else:
            patterns = (re.compile("|".join(f"(?:{w})" for w in words), re.IGNORECASE),)
        return _Compiled(rule, patterns, operator=False)
    except Exception:  # a row saved around the form's checks: skip it, keep the others
        log.warning("auto-reply rule %s has an unusable pattern; skipped", rule.pk, exc_info=True)
        return None


def _entries(workspace_ids) -> dict[int, _Entry]:
    """The cached rules of each workspace; the ones not cached are loaded in one query."""
    now = time.monotonic()
    found: dict[int, _Entry] = {}
    missing: set[int] = set()
    for workspace_id in workspace_ids:
        entry = _cache.get(workspace_id)
        if entry is not None and entry.expires > now:
            found[workspace_id] = entry
        else:
            missing.add(workspace_id)
    if not missing:
        return found
    rows: dict[int, list[AutoReplyRule]] = {pk: [] for pk in missing}
    ranked = AutoReplyRule.objects.filter(workspace_id__in=missing, enabled=True).annotate(
        rank=Window(RowNumber(), partition_by=F("workspace_id"), order_by=[F("position"), F("pk")])
    )
    for row in ranked.filter(rank__lte=RULES_MAX + 1).order_by("workspace_id", "position", "pk"):
        rows[row.workspace_id].append(row)
    with _lock:
        if len(_cache) > 10_000:  # many workspaces: drop the stale entries
            for key in [k for k, e in _cache.items() if e.expires <= now]:
                _cache.pop(key, None)
        for workspace_id, loaded in rows.items():
            if len(loaded) > RULES_MAX:
                log.warning("workspace %s has over %s auto-reply rules", workspace_id, RULES_MAX)
            compiled = [c for c in map(_compile, loaded[:RULES_MAX]) if c is not None]
            found[workspace_id] = _cache[workspace_id] = _Entry(now + CACHE_SECONDS, compiled)
    return found


def _entry(workspace_id: int) -> _Entry:
    return _entries([workspace_id])[workspace_id]


def auto_reply_cache_clear(workspace_id: int | None = None) -> None:
    """Forget this process's copy of a workspace's rules (all workspaces' when ``None``)."""
    with _lock:
        if workspace_id is None:
            _cache.clear()
        else:
            _cache.pop(workspace_id, None)


@receiver(post_save, sender=AutoReplyRule)
@receiver(post_delete, sender=AutoReplyRule)
def _rule_changed(sender, instance: AutoReplyRule, **kwargs: Any) -> None:
    auto_reply_cache_clear(instance.workspace_id)


# --- matching -------------------------------------------------------------------------------


def auto_reply_match(workspace_id: int, text: str) -> AutoReplyRule | None:
    """The first enabled rule of the workspace that matches ``text``, or ``None``.

    Costs no query while the workspace's rules are cached. The rule returned is the cached
    instance: read it, do not change it.
    """
    if not text:
        return None
    entry = _entry(workspace_id)
    for compiled in entry.rules:
        rule = compiled.rule
        if rule.pk in entry.tripped:
            continue
        try:
            if compiled.found(text):
                return rule
        except TimeoutError:
            entry.tripped.add(rule.pk)
            log.warning(
                "auto-reply rule %s (workspace %s) timed out after %s s; skipped for %s s",
                rule.pk,
                workspace_id,
                REGEX_TIMEOUT,
                CACHE_SECONDS,
            )
        except Exception:
            entry.tripped.add(rule.pk)
            log.exception(
                "auto-reply rule %s (workspace %s) failed; skipped", rule.pk, workspace_id
            )
    return None


# --- where it runs: after a visitor's message commits ---------------------------------------


def auto_reply_enqueue_on_commit(messages: list[Message]) -> set[int]:
    """Schedule the automatic reply of each new visitor text message a rule answers.

    Called by :func:`chat.message_store.messages_store` inside its transaction; returns the
    ids of the messages a rule answers, so the bot leaves them alone. The task runs after
    commit (and matches again, in case the rules changed in between).
    """
    answered: set[int] = set()
    asked = [m for m in messages if m.sender_kind == SenderKind.VISITOR and m.text]
    if asked:
        _entries({m.workspace_id for m in asked})  # at most one query for the whole batch
    for message in asked:
        if auto_reply_match(message.workspace_id, message.text) is None:
            continue
        answered.add(message.pk)
        # robust: a broker outage must not turn a kept (and acked) message into an error
        transaction.on_commit(lambda pk=message.pk: _enqueue(pk), robust=True)
    return answered


_eager_pool = None


def _enqueue(message_id: int) -> None:
    """Celery in production; in the embedded default (eager tasks) a thread of its own.

    Not the bot's thread: an automatic reply must not wait behind a slow AI provider.
    """
    global _eager_pool
    from .tasks import auto_reply_task  # tasks -> services -> message_store -> here

    if not (settings.EMBEDDED and settings.CELERY_TASK_ALWAYS_EAGER):
        auto_reply_task.delay(message_id)  # Celery, or inline where tests ask for eager tasks
        return
    if _eager_pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _eager_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eager-autoreply")

    def run() -> None:
        try:
            auto_reply_task.apply(args=(message_id,), throw=True)
        except Exception:
            log.exception("automatic reply to message %s failed", message_id)
        finally:
            close_old_connections()

    _eager_pool.submit(run)


def auto_reply_send(*, message_id: int) -> Message | None:
    """Answer visitor message ``message_id`` with the first matching rule's reply, if any.

    Idempotent: the reply's client id is ``auto-<message id>``, stored once per conversation.
    """
    from .services import bot_message_send  # services -> message_store -> here

    message = (
        Message.objects.filter(pk=message_id, sender_kind=SenderKind.VISITOR)
        .only("pk", "workspace_id", "conversation_id", "text")
        .first()
    )
    if message is None or not message.text:
        return None
    rule = auto_reply_match(message.workspace_id, message.text)
    if rule is None:
        return None
    log.info("auto-reply rule %s answers message %s", rule.pk, message_id)
    return bot_message_send(
        conversation_id=message.conversation_id, text=rule.reply, client_id=f"auto-{message_id}"
    )
