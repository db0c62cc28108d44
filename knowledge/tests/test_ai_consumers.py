"""The bot over real sockets: replies, the human button, agent-assist (Channels communicators)."""

import pytest
from asgiref.sync import sync_to_async

from accounts.models import BotMode
from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.models import Message, SenderKind
from chat.tests.sockets import (
    agent_socket,
    assert_silent,
    receive_error,
    receive_message,
    receive_until,
    row_counts,
    visitor_socket,
)
from knowledge.models import BotDecision, DecisionKind, DecisionOutcome

from .ai_support import make_provider, seed_kb

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_eager")]


async def drain(comm, quiet: float = 0.3) -> None:
    """Read frames until none has come for ``quiet`` seconds."""
    while not await comm.receive_nothing(timeout=quiet, interval=0.02):
        await comm.receive_output(timeout=1)


@sync_to_async
def _bot_workspace(mode=BotMode.ANSWER_FIRST):
    workspace = WorkspaceFactory(allowed_origins="https://shop.example.com", bot_mode=mode)
    seed_kb(workspace)
    return workspace


@sync_to_async
def _agent(workspace):
    return AgentFactory(workspace=workspace)


async def test_welcome_says_whether_a_bot_answers(workspace):
    comm, welcome = await visitor_socket(workspace)
    assert welcome["bot"] is False
    await comm.disconnect()
    bot_ws = await _bot_workspace()
    comm, welcome = await visitor_socket(bot_ws)
    assert welcome["bot"] is True
    await comm.disconnect()


async def test_the_bots_answer_arrives_on_the_visitor_socket_marked_as_bot():
    workspace = await _bot_workspace()
    agent = await _agent(workspace)
    console, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to(
        {"type": "message", "client_id": "q1", "text": "How do I get a refund for a return?"}
    )
    await receive_until(visitor, "ack")
    reply = (await receive_message(visitor, sender="bot"))["message"]
    assert reply["sender"] == "bot" and reply["agent_name"] is None
    assert "30 days of delivery" in reply["text"] and reply["client_id"].startswith("bot-")
    # Agents see the bot's answer too, in the conversation.
    seen = await receive_message(console, sender="bot")
    assert seen["message"]["id"] == reply["id"]
    await visitor.disconnect()
    await console.disconnect()


async def test_the_human_button_hands_off_at_once():
    workspace = await _bot_workspace()
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to({"type": "handoff"})
    assert (await receive_error(visitor))["code"] == "no_conversation"  # nothing to hand yet

    await visitor.send_json_to({"type": "message", "client_id": "q1", "text": "Hello"})
    ack = await receive_until(visitor, "ack")
    await receive_message(visitor, sender="bot")  # the bot's own hand-off: no KB hit, no AI

    agent = await _agent(workspace)
    console, _ = await agent_socket(agent.user)
    await visitor.send_json_to({"type": "handoff"})
    notice = (await receive_message(visitor, sender="bot"))["message"]
    assert notice["text"] == "A human agent will take over from here and reply shortly."
    frame = await receive_message(console, sender="bot")
    assert frame["conversation"]["assignee"]["id"] == agent.pk

    # Pressed again: nothing new. The bot stays quiet from now on.
    await visitor.send_json_to({"type": "handoff"})
    await visitor.send_json_to(
        {"type": "message", "client_id": "q2", "text": "Refund for a return?"}
    )
    await receive_until(visitor, "ack")
    await receive_message(visitor, sender="visitor")  # the visitor's own message, fanned out
    await assert_silent(visitor, timeout=0.5)
    decisions = await sync_to_async(list)(
        BotDecision.objects.filter(conversation_id=ack["conversation_id"]).values_list(
            "outcome", flat=True
        )
    )
    assert sorted(decisions) == sorted(
        [DecisionOutcome.HANDOFF, DecisionOutcome.HUMAN_REQUEST, DecisionOutcome.SKIPPED]
    )
    await visitor.disconnect()
    await console.disconnect()


async def test_agent_assist_suggests_to_the_asking_agent_only_and_never_to_the_visitor(
    fake_openai,
):
    workspace = await _bot_workspace(BotMode.ASSIST_ONLY)
    fake_openai.set("a", "answer", "Gift cards can be returned unused within 30 days.")
    await sync_to_async(make_provider)(workspace, fake_openai, "a")
    asking = await _agent(workspace)
    colleague = await _agent(workspace)
    a1, _ = await agent_socket(asking.user)
    a2, _ = await agent_socket(colleague.user)
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to(
        {"type": "message", "client_id": "q1", "text": "Can I return a gift card I bought?"}
    )
    ack = await receive_until(visitor, "ack")
    await receive_message(visitor)
    for comm in (visitor, a1, a2):  # whatever the message and its assignment caused
        await drain(comm)
    before = await row_counts()

    await a1.send_json_to({"type": "suggest", "conversation_id": ack["conversation_id"]})
    suggestion = await receive_until(a1, "suggestion")
    assert suggestion == {
        "type": "suggestion",
        "conversation_id": ack["conversation_id"],
        "text": "Gift cards can be returned unused within 30 days.",
        "source": "ai",
        "confidence": 1.0,
        "reason": "",
    }
    await assert_silent(visitor)
    await assert_silent(a2)
    assert await row_counts() == before  # no message was written
    decision = await BotDecision.objects.aget(kind=DecisionKind.ASSIST)
    assert decision.outcome == DecisionOutcome.SUGGESTED and decision.agent_id == asking.pk
    assert not await Message.objects.filter(sender_kind=SenderKind.BOT).aexists()
    for comm in (a1, a2, visitor):
        await comm.disconnect()


async def test_agent_assist_answers_from_the_kb_and_explains_an_empty_suggestion(workspace):
    agent = await _agent(workspace)
    console, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to({"type": "message", "client_id": "q1", "text": "hi"})
    ack = await receive_until(visitor, "ack")
    await console.send_json_to({"type": "suggest", "conversation_id": ack["conversation_id"]})
    off = await receive_until(console, "suggestion")
    assert (off["text"], off["source"]) == ("", "none") and "off" in off["reason"]

    workspace.bot_mode = BotMode.ASSIST_ONLY
    await workspace.asave(update_fields=["bot_mode"])
    await sync_to_async(seed_kb)(workspace)
    await visitor.send_json_to(
        {"type": "message", "client_id": "q2", "text": "How do I get a refund for a return?"}
    )
    await receive_until(visitor, "ack")
    await console.send_json_to({"type": "suggest", "conversation_id": ack["conversation_id"]})
    kb = await receive_until(console, "suggestion")
    assert kb["source"] == "kb" and "30 days of delivery" in kb["text"] and kb["confidence"] > 0.5
    await visitor.disconnect()
    await console.disconnect()


async def test_suggest_for_another_workspaces_conversation_is_not_found(workspace):
    other = await _bot_workspace()
    visitor, _ = await visitor_socket(other)
    await visitor.send_json_to({"type": "message", "client_id": "q1", "text": "hi"})
    ack = await receive_until(visitor, "ack")
    agent = await _agent(workspace)
    console, _ = await agent_socket(agent.user)
    await console.send_json_to({"type": "suggest", "conversation_id": ack["conversation_id"]})
    assert (await receive_error(console))["code"] == "not_found"
    await console.send_json_to({"type": "suggest"})
    assert (await receive_error(console))["code"] == "missing_field"
    await visitor.disconnect()
    await console.disconnect()
