"""The hybrid reply (knowledge/pipeline.py), end to end through chat.services.

Real knowledge-base search, real HTTP to the fake provider server on loopback, Celery in
eager mode (the worker process is tested in test_ai_worker.py).
"""

import json
import logging
import socket
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AgentConnection, BotMode
from accounts.tests.factories import AgentFactory
from chat import services
from chat.models import Message, SenderKind
from chat.tests.factories import VisitorFactory
from knowledge import breaker, pipeline
from knowledge.models import BotDecision, DecisionKind, DecisionOutcome

from .ai_support import SECRET_KEY_PREFIX, make_provider, seed_kb

pytestmark = pytest.mark.usefixtures("celery_eager")

REFUND_Q = "How do I get a refund for a return?"
OFF_KB_Q = "Can I return a gift card I bought for a birthday?"  # KB score ~0.38
GIFT_A = "Yes, we sell digital gift cards from 10 to 100 euros in our shop."
GIFT_B = "Yes: digital gift cards are sold in the shop, from 10 up to 100 euros."
OUTLIER = "Unfortunately we do not offer any vouchers at the moment, sorry."


@pytest.fixture
def bot_workspace(workspace):
    workspace.bot_mode = BotMode.ANSWER_FIRST
    workspace.save(update_fields=["bot_mode"])
    seed_kb(workspace)
    return workspace


@pytest.fixture
def visitor(bot_workspace):
    return VisitorFactory(workspace=bot_workspace, language="en-GB")


def connect(agent) -> AgentConnection:
    return AgentConnection.objects.create(
        agent=agent,
        workspace=agent.workspace,
        channel_name=f"test.{uuid.uuid4().hex}",
        last_seen_at=timezone.now(),
    )


def ask(visitor, text, capture) -> Message:
    """A visitor message, committed: the on-commit hook enqueues (here: runs) the bot."""
    with capture(execute=True):
        message, _ = services.visitor_message_send(
            visitor=visitor, client_id=uuid.uuid4().hex, text=text
        )
    return message


def bot_messages(message: Message) -> list[Message]:
    return list(
        Message.objects.filter(
            conversation_id=message.conversation_id, sender_kind=SenderKind.BOT
        ).order_by("seq")
    )


def decision_for(message: Message) -> BotDecision:
    return BotDecision.objects.get(message=message, kind=DecisionKind.REPLY)


# --- step 1: the knowledge base ----------------------------------------------------------------


def test_a_kb_hit_answers_with_the_passage_and_link_without_calling_any_provider(
    visitor, fake_openai, django_capture_on_commit_callbacks
):
    make_provider(visitor.workspace, fake_openai, "a")
    question = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)

    (reply,) = bot_messages(question)
    assert "30 days of delivery" in reply.text
    assert "Returns and refunds" in reply.text and "/help/" in reply.text
    assert fake_openai.calls() == []
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.KB_ANSWER and decision.reply == reply
    assert decision.kb_hits[0]["title"] == "Returns and refunds"
    assert decision.confidence == decision.kb_hits[0]["score"] >= 0.55
    assert decision.providers == [] and decision.question == REFUND_Q


def test_a_chinese_question_gets_the_chinese_article_and_a_chinese_link_label(
    bot_workspace, django_capture_on_commit_callbacks
):
    visitor = VisitorFactory(workspace=bot_workspace, language="zh-CN")
    question = ask(visitor, "怎么申请退货退款？", django_capture_on_commit_callbacks)
    (reply,) = bot_messages(question)
    assert "全额退款" in reply.text
    assert decision_for(question).outcome == DecisionOutcome.KB_ANSWER


# --- steps 2 and 3: providers in parallel, weighted vote ---------------------------------------


def test_a_majority_of_agreeing_providers_beats_a_single_heavier_outlier(
    visitor, fake_openai, django_capture_on_commit_callbacks
):
    for slug, text, weight in (("a", GIFT_A, 1.0), ("b", GIFT_B, 1.0), ("heavy", OUTLIER, 1.5)):
        fake_openai.set(slug, "answer", text)
        make_provider(visitor.workspace, fake_openai, slug, weight=weight)

    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)

    (reply,) = bot_messages(question)
    assert reply.text == GIFT_A  # support 2.0 beats 1.5; a and b tie, a is listed first
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.AI_ANSWER
    assert decision.confidence == pytest.approx(2 / 3.5, abs=1e-3)
    assert decision.vote["support"] == 2.0 and decision.vote["total"] == 3.5
    assert {p["name"]: p["answer"] for p in decision.providers} == {
        "a": GIFT_A,
        "b": GIFT_B,
        "heavy": OUTLIER,
    }
    assert all(p["latency_ms"] is not None and p["error"] == "" for p in decision.providers)
    # Every provider got the question and the knowledge-base passages as context.
    for call in fake_openai.calls():
        system, *_, last = call["json"]["messages"]
        assert last == {"role": "user", "content": OFF_KB_Q}
        assert system["role"] == "system" and "Knowledge-base passages" in system["content"]


def test_providers_are_asked_in_parallel(visitor, fake_openai, django_capture_on_commit_callbacks):
    # Three providers that each take 0.6 s: in parallel the answer comes in well under 1.8 s.
    for slug in ("a", "b", "c"):
        fake_openai.set(slug, "slow", GIFT_A, delay=0.6)
        make_provider(visitor.workspace, fake_openai, slug, timeout_seconds=5)
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.AI_ANSWER
    assert decision.duration_ms < 1500, decision.duration_ms
    assert all(p["latency_ms"] >= 550 for p in decision.providers)


@pytest.mark.parametrize("failure", ["http500", "http429", "malformed", "empty", "slow"])
def test_one_provider_down_still_yields_an_answer(
    visitor, fake_openai, django_capture_on_commit_callbacks, failure
):
    fake_openai.set("up", "answer", GIFT_A)
    fake_openai.set("down", failure, delay=5)
    make_provider(visitor.workspace, fake_openai, "up")
    make_provider(visitor.workspace, fake_openai, "down", weight=5, timeout_seconds=0.5)

    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)

    assert [m.text for m in bot_messages(question)] == [GIFT_A]
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.AI_ANSWER and decision.confidence == 1.0
    down = next(p for p in decision.providers if p["name"] == "down")
    assert down["error"] and down["answer"] == ""
    assert down["error_kind"] == {"slow": "timeout", "http429": "rate_limited"}.get(
        failure, down["error_kind"]
    )


# --- step 4: hand-off ------------------------------------------------------------------------


def test_all_providers_down_hands_off_to_an_available_agent_and_tells_the_visitor(
    visitor, fake_openai, django_capture_on_commit_callbacks
):
    agent = AgentFactory(workspace=visitor.workspace)
    for slug, mode in (("a", "http500"), ("b", "slow"), ("c", "malformed")):
        fake_openai.set(slug, mode, delay=5)
        make_provider(visitor.workspace, fake_openai, slug, timeout_seconds=0.5)
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    # Nobody was online when the message came in; the agent connects before the hand-off.
    # (Here both happen in one call: assert the outcome.)
    (notice,) = bot_messages(question)
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.HANDOFF and decision.reply == notice
    assert "every AI provider failed or was skipped" in decision.reason
    assert "No agent is available right now" in notice.text
    question.conversation.refresh_from_db()
    assert question.conversation.assignee is None  # in the queue, in every agent's list

    connect(agent)
    later = ask(
        visitor, "Is there anybody there? My order is late", django_capture_on_commit_callbacks
    )
    assert decision_for(later).outcome == DecisionOutcome.HANDOFF
    assert "already told" in decision_for(later).reason
    assert len(bot_messages(later)) == 1  # told once, not on every message


def test_hand_off_assigns_an_available_agent(
    visitor, fake_openai, django_capture_on_commit_callbacks, monkeypatch
):
    agent = AgentFactory(workspace=visitor.workspace)
    # The agent comes online only after the visitor's message was assigned to nobody.
    question = ask(visitor, OFF_KB_Q + "?", django_capture_on_commit_callbacks)
    BotDecision.objects.all().delete()
    Message.objects.filter(sender_kind=SenderKind.BOT).delete()
    connect(agent)
    pipeline.bot_reply(message_id=question.pk)
    (notice,) = bot_messages(question)
    assert "A human agent will take over" in notice.text
    question.conversation.refresh_from_db()
    assert question.conversation.assignee == agent


def test_low_confidence_hands_off(visitor, fake_openai, django_capture_on_commit_callbacks):
    texts = (GIFT_A, OUTLIER, "Our office is open Monday to Friday from nine to five.")
    for n, text in enumerate(texts):
        fake_openai.set(f"p{n}", "answer", text)
        make_provider(visitor.workspace, fake_openai, f"p{n}")
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.HANDOFF
    assert decision.confidence == pytest.approx(1 / 3, abs=1e-3)
    assert "below the floor" in decision.reason
    (notice,) = bot_messages(question)
    assert notice.text != GIFT_A and "agent" in notice.text


def test_no_provider_and_no_kb_match_hands_off(visitor, django_capture_on_commit_callbacks):
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.HANDOFF
    assert decision.reason == (
        f"best knowledge-base hit {decision.kb_hits[0]['score']:.2f} is below 0.55, "
        "and no AI provider is configured"
    )


@pytest.mark.parametrize("phrase", ["human", "人工", "转人工", "Human, please!", "talk to a human"])
def test_asking_for_a_human_hands_off_at_once_and_silences_the_bot(
    visitor, fake_openai, django_capture_on_commit_callbacks, phrase
):
    make_provider(visitor.workspace, fake_openai, "a")
    question = ask(visitor, phrase, django_capture_on_commit_callbacks)
    (notice,) = bot_messages(question)
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.HUMAN_REQUEST and decision.reply == notice
    assert decision.kb_hits == [] and fake_openai.calls() == []  # nothing else was tried

    after = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)
    assert decision_for(after).outcome == DecisionOutcome.SKIPPED
    assert decision_for(after).reason == "the visitor asked for a human"
    assert len(bot_messages(after)) == 1


@pytest.mark.parametrize(
    "text", ["Is this cream safe for human skin and for children under three?", "humanity"]
)
def test_questions_that_merely_mention_humans_are_not_hand_off_requests(text):
    assert not pipeline.is_human_request(text)


def test_once_an_agent_writes_the_bot_stays_silent(visitor, django_capture_on_commit_callbacks):
    agent = AgentFactory(workspace=visitor.workspace)
    first = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)
    services.agent_message_send(
        agent=agent, conversation_id=first.conversation_id, client_id="a1", text="Hi, Ann here."
    )
    second = ask(visitor, REFUND_Q + " Again?", django_capture_on_commit_callbacks)
    assert decision_for(second).outcome == DecisionOutcome.SKIPPED
    assert len(bot_messages(second)) == 1


# --- modes ------------------------------------------------------------------------------------


def test_when_no_agent_mode_answers_only_while_nobody_is_available(
    visitor, django_capture_on_commit_callbacks
):
    workspace = visitor.workspace
    workspace.bot_mode = BotMode.WHEN_NO_AGENT
    workspace.save(update_fields=["bot_mode"])
    first = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)
    assert decision_for(first).outcome == DecisionOutcome.KB_ANSWER

    connect(AgentFactory(workspace=workspace))
    second = ask(visitor, REFUND_Q + " Please?", django_capture_on_commit_callbacks)
    assert decision_for(second).outcome == DecisionOutcome.SKIPPED
    assert decision_for(second).reason == "an agent is available"


@pytest.mark.parametrize(
    ("mode", "enqueued"),
    [
        (BotMode.OFF, False),
        (BotMode.ASSIST_ONLY, False),
        (BotMode.ANSWER_FIRST, True),
        (BotMode.WHEN_NO_AGENT, True),
    ],
)
def test_the_bot_is_enqueued_on_commit_only_when_the_mode_asks_for_it(
    visitor, monkeypatch, django_capture_on_commit_callbacks, mode, enqueued
):
    from knowledge import tasks

    calls = []
    monkeypatch.setattr(tasks.bot_reply_task, "delay", lambda pk: calls.append(pk))
    visitor.workspace.bot_mode = mode
    visitor.workspace.save(update_fields=["bot_mode"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message, created = services.visitor_message_send(visitor=visitor, client_id="c1", text="hi")
    assert calls == []  # nothing before commit
    for callback in callbacks:
        callback()
    assert calls == ([message.pk] if enqueued else [])
    # A retried send (same client id) is not a new message: nothing more is enqueued.
    with django_capture_on_commit_callbacks(execute=True):
        services.visitor_message_send(visitor=visitor, client_id="c1", text="hi")
    assert len(calls) == (1 if enqueued else 0)


def test_a_broker_outage_does_not_fail_the_visitors_send(
    visitor, monkeypatch, django_capture_on_commit_callbacks
):
    from knowledge import tasks

    def broken(pk):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.bot_reply_task, "delay", broken)
    message = ask(visitor, "hello?", django_capture_on_commit_callbacks)
    assert Message.objects.filter(pk=message.pk).exists()


# --- the circuit breaker in the pipeline --------------------------------------------------------


def test_the_breaker_opens_skips_the_provider_and_later_closes(
    visitor, fake_openai, django_capture_on_commit_callbacks, settings, monkeypatch
):
    settings.HELPDESK_BREAKER_FAILURES = 3
    settings.HELPDESK_BREAKER_COOLDOWN_SECONDS = 30
    now = [timezone.now().timestamp()]
    monkeypatch.setattr(breaker, "_now", lambda: now[0])
    fake_openai.set("flaky", "http500")
    fake_openai.set("steady", "answer", GIFT_A)
    flaky = make_provider(visitor.workspace, fake_openai, "flaky")
    make_provider(visitor.workspace, fake_openai, "steady")

    for n in range(3):
        ask(visitor, f"{OFF_KB_Q} ({n})", django_capture_on_commit_callbacks)
    assert len(fake_openai.calls("flaky")) == 3
    assert breaker.breaker_state(flaky.pk).state == breaker.OPEN

    # Open: skipped without a request; the other provider still answers.
    skipped = ask(visitor, OFF_KB_Q + " (3)", django_capture_on_commit_callbacks)
    assert len(fake_openai.calls("flaky")) == 3
    log = {p["name"]: p for p in decision_for(skipped).providers}
    assert log["flaky"]["skipped"] and log["flaky"]["error_kind"] == "breaker_open"
    assert decision_for(skipped).outcome == DecisionOutcome.AI_ANSWER

    # After the cool-down one probe goes through; the provider has recovered: closed.
    now[0] += 31
    fake_openai.set("flaky", "answer", GIFT_B)
    probe = ask(visitor, OFF_KB_Q + " (4)", django_capture_on_commit_callbacks)
    assert len(fake_openai.calls("flaky")) == 4
    assert {p["name"]: p["answer"] for p in decision_for(probe).providers}["flaky"] == GIFT_B
    assert breaker.breaker_state(flaky.pk).state == breaker.CLOSED


# --- the log, idempotency, secrets ---------------------------------------------------------------


def test_running_the_task_twice_answers_once(visitor, django_capture_on_commit_callbacks):
    question = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)
    again = pipeline.bot_reply(message_id=question.pk)
    assert again == decision_for(question)
    assert len(bot_messages(question)) == 1 and BotDecision.objects.count() == 1


def test_api_keys_never_reach_logs_decisions_or_messages(
    visitor, fake_openai, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.DEBUG)
    fake_openai.set("a", "answer", GIFT_A)
    fake_openai.set("b", "http500")  # echoes the Authorization header in its body
    make_provider(visitor.workspace, fake_openai, "a")
    make_provider(visitor.workspace, fake_openai, "b")
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    decision = decision_for(question)
    assert decision.outcome == DecisionOutcome.AI_ANSWER
    assert any(
        c["authorization"].startswith("Bearer " + SECRET_KEY_PREFIX) for c in fake_openai.calls()
    )
    stored = json.dumps(
        [decision.providers, decision.vote, decision.kb_hits, decision.reason, decision.answer]
    )
    assert "[redacted]" in stored
    for text in (stored, caplog.text, *(m.text for m in Message.objects.all())):
        assert SECRET_KEY_PREFIX not in text


# --- no provider, no network -------------------------------------------------------------------


class OutboundCall(AssertionError):
    pass


@pytest.fixture
def no_outbound_network(monkeypatch):
    """Fail any connection or name lookup that leaves the machine, and any provider call.

    Loopback stays open: PostgreSQL and Redis live there.
    """
    import requests

    from knowledge import providers

    def loopback(host) -> bool:
        return isinstance(host, str) and (
            host in ("localhost", "::1") or host.startswith("127.") or host.startswith("/")
        )

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    attempts = []

    def check(address):
        host = address[0] if isinstance(address, tuple) else address
        if not loopback(host):
            attempts.append(address)
            raise OutboundCall(f"outbound connection to {address!r}")

    def connect(self, address):
        check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        check((host,))
        return real_getaddrinfo(host, *args, **kwargs)

    def no_provider_call(*args, **kwargs):
        attempts.append(("provider client", args))
        raise OutboundCall("a provider client was used")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(requests, "post", no_provider_call)
    monkeypatch.setattr(requests.Session, "request", no_provider_call)
    monkeypatch.setattr(providers.OpenAICompatibleClient, "__init__", no_provider_call)
    return attempts


def test_the_guard_catches_an_outbound_call(no_outbound_network):
    with pytest.raises(OutboundCall):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    assert no_outbound_network


def test_with_no_provider_configured_nothing_leaves_the_machine(
    visitor, no_outbound_network, django_capture_on_commit_callbacks
):
    kb = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)
    agent = AgentFactory(workspace=visitor.workspace)
    suggestion = pipeline.assist_suggest(
        agent_id=agent.pk, conversation_id=kb.conversation_id, channel_name="test.nowhere"
    )
    miss = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    human = ask(visitor, "转人工", django_capture_on_commit_callbacks)
    assert [decision_for(m).outcome for m in (kb, miss, human)] == [
        DecisionOutcome.KB_ANSWER,
        DecisionOutcome.HANDOFF,
        DecisionOutcome.HUMAN_REQUEST,
    ]
    assert suggestion.outcome == DecisionOutcome.SUGGESTED
    assert no_outbound_network == []


def test_disabled_providers_are_not_called(
    visitor, fake_openai, django_capture_on_commit_callbacks
):
    make_provider(visitor.workspace, fake_openai, "off", enabled=False)
    miss = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    assert decision_for(miss).outcome == DecisionOutcome.HANDOFF
    assert fake_openai.calls() == []


def test_stale_agents_do_not_count_as_available(visitor, django_capture_on_commit_callbacks):
    agent = AgentFactory(workspace=visitor.workspace)
    AgentConnection.objects.create(
        agent=agent,
        workspace=visitor.workspace,
        channel_name="stale",
        last_seen_at=timezone.now() - timedelta(hours=1),
    )
    miss = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    assert "No agent is available" in bot_messages(miss)[0].text


def test_the_human_button_does_not_repeat_a_notice_that_still_holds(
    visitor, django_capture_on_commit_callbacks
):
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)  # hand-off: nobody
    assert pipeline.human_requested(visitor=visitor) is None
    assert len(bot_messages(question)) == 1
    assert BotDecision.objects.filter(outcome=DecisionOutcome.HUMAN_REQUEST).count() == 1
    # Still recorded: the bot is quiet from now on.
    later = ask(visitor, REFUND_Q, django_capture_on_commit_callbacks)
    assert decision_for(later).outcome == DecisionOutcome.SKIPPED


def test_the_human_button_assigns_an_agent_who_came_online_since(
    visitor, django_capture_on_commit_callbacks
):
    question = ask(visitor, OFF_KB_Q, django_capture_on_commit_callbacks)
    agent = AgentFactory(workspace=visitor.workspace)
    connect(agent)
    notice = pipeline.human_requested(visitor=visitor)
    assert notice.text == "A human agent will take over from here and reply shortly."
    question.conversation.refresh_from_db()
    assert question.conversation.assignee == agent
