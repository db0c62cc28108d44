"""The hybrid reply: the knowledge base first, then several AI providers by weighted vote,
then a human.

:func:`bot_reply` answers one visitor message (run by ``knowledge.tasks.bot_reply_task``,
enqueued when the message commits); :func:`assist_suggest` computes a suggestion for an
agent (``assist_suggest_task``) and sends it to that agent's socket only;
:func:`human_requested` is the widget's "talk to a human" button.

The steps of a reply (docs/knowledge.md, "AI replies"):

1. Search the workspace's knowledge base. A top hit scoring at least the workspace's
   ``bot_kb_threshold`` is the answer: its passage and a link to the article. No provider
   is asked.
2. Otherwise ask every enabled provider of the workspace at once (one thread each), with
   the top passages as context, each bounded by its own timeout; a provider whose circuit
   breaker is open is skipped without a network call.
3. Combine the answers by weighted vote (:mod:`knowledge.vote`).
4. Below the workspace's ``bot_confidence_floor``, or when no provider answered, hand the
   conversation to a human and tell the visitor (once per conversation).

The bot stays silent in a conversation once an agent has written in it or the visitor
has asked for a human. Every decision is a :class:`~knowledge.models.BotDecision` row.
Nothing here makes a network call unless an enabled provider exists.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import AgentProfile, BotMode, Workspace
from accounts.selectors import workspace_has_agents_online
from chat.errors import ChatError
from chat.models import Conversation, Message, SenderKind
from chat.realtime import send_to_socket
from chat.services import bot_message_send, conversation_handoff

from .breaker import breaker_allow, breaker_record
from .models import AIProvider, BotDecision, DecisionKind, DecisionOutcome
from .providers import ProviderConfig, ProviderResult, ask
from .search import KbHit, kb_search
from .vote import Ballot, VoteResult, weighted_vote

log = logging.getLogger(__name__)

# How many knowledge-base passages go to the providers as context, and how many earlier
# messages of the conversation.
CONTEXT_PASSAGES = 3
CONTEXT_MESSAGES = 6
# Grace on top of a provider's own timeout before its thread is given up on.
DEADLINE_GRACE_SECONDS = 1.0

# --- asking for a human -------------------------------------------------------------------------

_HUMAN_EXACT = frozenset(
    {
        "human",
        "humanplease",
        "ahuman",
        "agent",
        "realperson",
        "人工",
        "转人工",
        "人工客服",
        "转人工客服",
        "找人工",
        "真人",
        "客服",
    }
)
_HUMAN_EN = re.compile(
    r"\b(talk|speak|chat|connect)\s+(me\s+)?(to|with)\s+(a\s+|an\s+)?"
    r"(human|person|real\s+person|agent|someone)\b"
    r"|\b(human|real person|live agent)\s+please\b"
    r"|\bi\s+want\s+(a\s+|an\s+)?(human|real person|live agent)\b",
    re.IGNORECASE,
)


def _squash(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if unicodedata.category(c)[0] not in "PZSC")


def is_human_request(text: str) -> bool:
    """Does the visitor ask for a person ("human", "人工", "转人工", "talk to a human"…)?

    Short messages only: "is this cream safe for human skin?" is a question for the bot.
    """
    squashed = _squash(text)
    if not squashed or len(squashed) > 40:
        return False
    if squashed in _HUMAN_EXACT or "转人工" in squashed or "人工客服" in squashed:
        return True
    return bool(_HUMAN_EN.search(text))


# --- one consultation: knowledge base, then providers -------------------------------------------


@dataclass
class Consultation:
    """Everything the bot learnt about one question, for the answer and the log."""

    question: str
    kb_hits: list[KbHit] = field(default_factory=list)
    kb_answer: KbHit | None = None
    results: list[ProviderResult] = field(default_factory=list)
    vote: VoteResult | None = None
    providers_configured: int = 0

    def kb_log(self) -> list[dict]:
        return [
            {
                "article_id": h.article_id,
                "title": h.title,
                "url": h.url,
                "score": round(h.score, 4),
                "snippet": h.snippet[:300],
            }
            for h in self.kb_hits
        ]


def providers_for(*, workspace_id: int) -> list[ProviderConfig]:
    """The workspace's enabled providers, in the order ties are broken (oldest first)."""
    rows = AIProvider.objects.filter(workspace_id=workspace_id, enabled=True).order_by("pk")
    return [row.config() for row in rows]


def _ask_and_record(config: ProviderConfig, messages: list[dict]) -> ProviderResult:
    result = ask(config, messages)
    breaker_record(config.id, ok=result.ok)
    if not result.ok:
        log.info(
            "provider %s (%s) failed in %s ms: %s",
            config.id,
            config.name,
            result.latency_ms,
            result.error,
        )
    return result


def ask_all(configs: list[ProviderConfig], messages: list[dict]) -> list[ProviderResult]:
    """Ask every provider whose breaker allows it, in parallel; one result per provider.

    Each provider is bounded by its own timeout (the HTTP client's, plus a small grace
    here in case a thread hangs anyway); the slowest decides how long this takes.
    """
    results: dict[int, ProviderResult] = {}
    to_ask = []
    for config in configs:
        if breaker_allow(config.id):
            to_ask.append(config)
        else:
            results[config.id] = ProviderResult(
                provider_id=config.id,
                name=config.name,
                weight=config.weight,
                error="circuit breaker open: skipped",
                error_kind="breaker_open",
                skipped=True,
            )
    if to_ask:
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=len(to_ask), thread_name_prefix="ai-provider")
        try:
            futures = [(c, pool.submit(_ask_and_record, c, messages)) for c in to_ask]
            for config, future in sorted(futures, key=lambda item: item[0].timeout):
                # connect (at most 5 s) + read (timeout) is what the client allows.
                budget = config.timeout + min(config.timeout, 5.0) + DEADLINE_GRACE_SECONDS
                remaining = started + budget - time.monotonic()
                try:
                    results[config.id] = future.result(timeout=max(remaining, 0.0))
                except FutureTimeout:
                    # The thread records the breaker outcome itself when it ends.
                    results[config.id] = ProviderResult(
                        provider_id=config.id,
                        name=config.name,
                        weight=config.weight,
                        error=f"no answer within {budget:g} s",
                        error_kind="timeout",
                        latency_ms=round(budget * 1000),
                    )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return [results[c.id] for c in configs]


def _system_prompt(workspace: Workspace, hits: list[KbHit]) -> str:
    lines = [
        f"You are the customer-service assistant of {workspace.name}.",
        "Answer the visitor's last message briefly and politely, in the language the "
        "visitor writes in. Use the knowledge-base passages below when they are relevant. "
        "Do not invent prices, policies, dates or other facts that are not in them; if "
        "you cannot answer, say so in one sentence.",
    ]
    if hits:
        lines.append("\nKnowledge-base passages:")
        for n, hit in enumerate(hits[:CONTEXT_PASSAGES], 1):
            lines.append(f"[{n}] {hit.title}\n{hit.snippet}")
    return "\n".join(lines)


def _history(conversation_id: int, before_seq: int) -> list[dict]:
    rows = list(
        Message.objects.filter(conversation_id=conversation_id, seq__lt=before_seq)
        .exclude(text="")
        .order_by("-seq")
        .values_list("sender_kind", "text")[:CONTEXT_MESSAGES]
    )
    rows.reverse()
    return [
        {"role": "user" if kind == SenderKind.VISITOR else "assistant", "content": text}
        for kind, text in rows
    ]


def consult(
    *, workspace: Workspace, question: str, history: list[dict] | None = None
) -> Consultation:
    """Search the knowledge base; below its threshold, ask the providers and vote."""
    c = Consultation(question=question)
    c.kb_hits = kb_search(workspace_id=workspace.pk, query=question, limit=5)
    if c.kb_hits and c.kb_hits[0].score >= workspace.bot_kb_threshold:
        c.kb_answer = c.kb_hits[0]
        return c
    configs = providers_for(workspace_id=workspace.pk)
    c.providers_configured = len(configs)
    if not configs:
        return c
    messages = [{"role": "system", "content": _system_prompt(workspace, c.kb_hits)}]
    messages += history or []
    messages.append({"role": "user", "content": question})
    c.results = ask_all(configs, messages)
    ballots = [Ballot(r.provider_id, r.name, r.answer, r.weight) for r in c.results if r.ok]
    if ballots:
        c.vote = weighted_vote(ballots)
    return c


def _article_url(hit: KbHit) -> str:
    base = getattr(settings, "HELPDESK_PUBLIC_URL", "").rstrip("/")
    return base + hit.url if hit.url.startswith("/") and base else hit.url


def kb_answer_text(hit: KbHit) -> str:
    """The passage and a link to the article (call with the visitor's language active)."""
    return f"{hit.snippet}\n\n" + _("Read more: %(title)s %(url)s") % {
        "title": hit.title,
        "url": _article_url(hit),
    }


def _visitor_language(conversation: Conversation) -> str:
    return "zh-hans" if (conversation.visitor.language or "").lower().startswith("zh") else "en"


def _fill_log(decision: BotDecision, c: Consultation) -> None:
    decision.kb_hits = c.kb_log()
    decision.providers = [r.as_log() for r in c.results]
    decision.vote = c.vote.as_log() if c.vote else {}


# --- replying to visitors -----------------------------------------------------------------------


def _silenced(conversation: Conversation) -> str:
    """Why the bot must not speak in this conversation any more ("" if it may)."""
    if Message.objects.filter(conversation=conversation, sender_kind=SenderKind.AGENT).exists():
        return "an agent has joined the conversation"
    if BotDecision.objects.filter(
        conversation=conversation, outcome=DecisionOutcome.HUMAN_REQUEST
    ).exists():
        return "the visitor asked for a human"
    return ""


def _save_once(decision: BotDecision) -> BotDecision:
    try:
        with transaction.atomic():
            decision.save()
    except IntegrityError:  # another delivery of the same task got there first
        return BotDecision.objects.get(message=decision.message, kind=DecisionKind.REPLY)
    return decision


def bot_reply(*, message_id: int) -> BotDecision | None:
    """Decide and post the bot's answer to visitor message ``message_id``.

    Safe to run twice for one message (task retries, redelivery): the decision is stored
    once and the bot's message has a client id derived from the visitor's message.
    Returns the decision, or None when there is nothing to decide (no such visitor
    message, or the workspace's bot no longer answers visitors).
    """
    started = time.monotonic()
    message = (
        Message.objects.select_related("conversation__workspace", "conversation__visitor")
        .filter(pk=message_id, sender_kind=SenderKind.VISITOR)
        .first()
    )
    if message is None:
        return None
    done = BotDecision.objects.filter(message=message, kind=DecisionKind.REPLY).first()
    if done is not None:
        return done
    conversation = message.conversation
    workspace = conversation.workspace
    if not workspace.bot_answers_visitors:
        return None
    decision = BotDecision(
        workspace=workspace,
        conversation=conversation,
        message=message,
        kind=DecisionKind.REPLY,
        question=message.text,
    )
    client_id = f"bot-{message.pk}"

    def finish(outcome: str, reason: str, post=None) -> BotDecision:
        """Log the decision; with ``post``, in one transaction with the message it posts.

        The message is broadcast on commit, so whoever sees it can also read its log.
        """
        decision.outcome, decision.reason = outcome, reason[:300]
        with transaction.atomic():
            if post is not None:
                reply = post()
                decision.reply, decision.answer = reply, reply.text
            decision.duration_ms = round((time.monotonic() - started) * 1000)
            saved = _save_once(decision)
        log.info("bot decision %s on message %s: %s (%s)", saved.pk, message.pk, outcome, reason)
        return saved

    if reason := _silenced(conversation):
        return finish(DecisionOutcome.SKIPPED, reason)
    if is_human_request(message.text):
        return finish(
            DecisionOutcome.HUMAN_REQUEST,
            "the visitor asked for a human",
            lambda: conversation_handoff(
                conversation_id=conversation.pk, reason="the visitor asked", client_id=client_id
            ),
        )
    if workspace.bot_mode == BotMode.WHEN_NO_AGENT and workspace_has_agents_online(
        workspace_id=workspace.pk
    ):
        return finish(DecisionOutcome.SKIPPED, "an agent is available")

    c = consult(
        workspace=workspace,
        question=message.text,
        history=_history(conversation.pk, message.seq),
    )
    _fill_log(decision, c)
    with translation.override(_visitor_language(conversation)):
        if c.kb_answer is not None:
            decision.confidence = c.kb_answer.score
            text, outcome = kb_answer_text(c.kb_answer), DecisionOutcome.KB_ANSWER
            reason = f"knowledge-base hit {c.kb_answer.score:.2f} ≥ {workspace.bot_kb_threshold}"
        elif c.vote and c.vote.winner and c.vote.confidence >= workspace.bot_confidence_floor:
            decision.confidence = c.vote.confidence
            text, outcome = c.vote.winner.text, DecisionOutcome.AI_ANSWER
            reason = (
                f"vote won by {c.vote.winner.name} with {c.vote.support:g} of {c.vote.total:g} "
                f"(confidence {c.vote.confidence:.2f} ≥ {workspace.bot_confidence_floor})"
            )
        else:
            text, outcome = "", DecisionOutcome.HANDOFF
            if c.vote and c.vote.winner:
                decision.confidence = c.vote.confidence
                reason = (
                    f"vote confidence {c.vote.confidence:.2f} below the floor "
                    f"{workspace.bot_confidence_floor}"
                )
            else:
                reason = (
                    f"best knowledge-base hit {c.kb_hits[0].score:.2f} is below "
                    f"{workspace.bot_kb_threshold}"
                    if c.kb_hits
                    else "no knowledge-base match"
                ) + (
                    ", and every AI provider failed or was skipped"
                    if c.providers_configured
                    else ", and no AI provider is configured"
                )

    # A human may have stepped in while the providers were thinking.
    if late := _silenced(conversation):
        return finish(DecisionOutcome.SKIPPED, f"{late} (after consulting)")
    if outcome != DecisionOutcome.HANDOFF:
        return finish(
            outcome,
            reason,
            lambda: bot_message_send(
                conversation_id=conversation.pk, text=text, client_id=client_id
            ),
        )
    told = BotDecision.objects.filter(
        conversation=conversation, outcome=DecisionOutcome.HANDOFF, reply__isnull=False
    ).exists()
    if told:  # the visitor already knows; do not repeat it on every message
        return finish(outcome, reason + "; visitor already told")
    return finish(
        outcome,
        reason,
        lambda: conversation_handoff(
            conversation_id=conversation.pk, reason=reason, client_id=client_id
        ),
    )


def human_requested(*, visitor) -> Message | None:
    """The visitor pressed "talk to a human": hand off at once, and keep the bot quiet.

    Returns the message telling the visitor, or None if they had asked already (or were
    already told that nobody is available, which is still so).
    """
    from chat.selectors import conversation_current_for_visitor

    conversation = conversation_current_for_visitor(visitor=visitor)
    if conversation is None:
        raise ChatError("no_conversation", "There is no conversation yet.")
    if BotDecision.objects.filter(
        conversation=conversation, outcome=DecisionOutcome.HUMAN_REQUEST
    ).exists():
        return None
    told = BotDecision.objects.filter(
        conversation=conversation, outcome=DecisionOutcome.HANDOFF, reply__isnull=False
    ).exists()
    if told and not workspace_has_agents_online(workspace_id=conversation.workspace_id):
        # The bot already said nobody is available, and that is still true: do not repeat
        # it; the request is recorded, so the bot stays quiet from now on.
        BotDecision.objects.create(
            workspace_id=conversation.workspace_id,
            conversation=conversation,
            kind=DecisionKind.REPLY,
            outcome=DecisionOutcome.HUMAN_REQUEST,
            reason="the visitor pressed the human button; already told nobody is available",
        )
        return None
    with transaction.atomic():
        reply = conversation_handoff(conversation_id=conversation.pk, reason="human button")
        BotDecision.objects.create(
            workspace_id=conversation.workspace_id,
            conversation=conversation,
            kind=DecisionKind.REPLY,
            outcome=DecisionOutcome.HUMAN_REQUEST,
            reason="the visitor pressed the human button",
            reply=reply,
            answer=reply.text,
        )
    return reply


# --- agent-assist -------------------------------------------------------------------------------


def assist_suggest(*, agent_id: int, conversation_id: int, channel_name: str) -> BotDecision | None:
    """Compute a suggested reply and send it to the asking agent's socket only.

    Never writes a message: the agent decides whether to use it. Unlike a reply, a
    suggestion below the thresholds is still offered (with its confidence): a person
    reads it before anyone else does.
    """
    started = time.monotonic()
    agent = AgentProfile.objects.select_related("workspace").filter(pk=agent_id).first()
    conversation = (
        Conversation.objects.select_related("workspace", "visitor")
        .filter(pk=conversation_id, workspace_id=agent.workspace_id if agent else None)
        .first()
    )
    if agent is None or conversation is None:
        return None
    workspace = conversation.workspace
    frame = {
        "type": "assist.suggestion",
        "conversation_id": conversation.pk,
        "text": "",
        "source": "none",
        "confidence": None,
        "reason": "",
    }
    decision = BotDecision(
        workspace=workspace, conversation=conversation, agent=agent, kind=DecisionKind.ASSIST
    )
    last = (
        Message.objects.filter(conversation=conversation, sender_kind=SenderKind.VISITOR)
        .exclude(text="")
        .order_by("-seq")
        .first()
    )
    if workspace.bot_mode == BotMode.OFF:
        frame["reason"] = "Agent-assist is off for this workspace (bot mode)."
    elif last is None:
        frame["reason"] = "The visitor has not written anything yet."
    else:
        decision.question = last.text
        c = consult(
            workspace=workspace, question=last.text, history=_history(conversation.pk, last.seq)
        )
        _fill_log(decision, c)
        with translation.override(_visitor_language(conversation)):
            if c.kb_answer is not None:
                frame.update(
                    text=kb_answer_text(c.kb_answer), source="kb", confidence=c.kb_answer.score
                )
            elif c.vote and c.vote.winner:
                frame.update(text=c.vote.winner.text, source="ai", confidence=c.vote.confidence)
            elif c.kb_hits:
                hit = c.kb_hits[0]
                frame.update(text=kb_answer_text(hit), source="kb", confidence=hit.score)
            elif c.providers_configured:
                frame["reason"] = "No knowledge-base match, and no AI provider answered."
            else:
                frame["reason"] = "No knowledge-base match, and no AI provider is configured."
    if frame["confidence"] is not None:
        frame["confidence"] = round(frame["confidence"], 4)
    decision.outcome = DecisionOutcome.SUGGESTED if frame["text"] else DecisionOutcome.NO_SUGGESTION
    decision.reason = frame["reason"] or f"source {frame['source']}"
    decision.answer = frame["text"]
    decision.confidence = frame["confidence"]
    decision.duration_ms = round((time.monotonic() - started) * 1000)
    decision.save()
    send_to_socket(channel_name, frame)
    return decision
