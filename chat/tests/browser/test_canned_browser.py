"""Canned replies in the console, in headless Chromium against a real daphne server.

The agent types ``/gre`` in the reply box, picks the suggestion (keyboard and mouse), and
the box holds the reply with the variables filled in; sending it sends that text.
"""

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.models import CannedReply, Conversation, Message, SenderKind
from chat.tests.factories import ConversationFactory, MessageFactory

from .pages import Console

pytestmark = [pytest.mark.browser, pytest.mark.servers]

VISITOR = 'Maria <b onmouseover="alert(1)">'


@pytest.fixture
def agent(transactional_db):
    workspace = WorkspaceFactory(name="Ember & Oak")
    agent = AgentFactory(workspace=workspace, display_name="Alice Agent")
    colleague = AgentFactory(workspace=workspace, display_name="Carol")
    CannedReply.objects.create(
        workspace=workspace,
        shortcut="greet",
        text="Hi {visitor_name}, I'm {agent_name} from {workspace_name}. How can I help?",
    )
    CannedReply.objects.create(
        workspace=workspace, agent=agent, shortcut="great-news", text="Great news: it shipped!"
    )
    CannedReply.objects.create(
        workspace=workspace, agent=colleague, shortcut="greet-carol", text="Carol's own"
    )
    CannedReply.objects.create(
        workspace=WorkspaceFactory(), shortcut="greetings", text="another workspace"
    )
    conversation = ConversationFactory(
        visitor__workspace=workspace, visitor__name=VISITOR, assignee=agent, last_seq=1
    )
    MessageFactory(conversation=conversation, seq=1, text="Hello, anyone there?")
    return agent


@pytest.fixture
def console(open_actor, asgi_server, agent) -> Console:
    return Console(open_actor("agent"), asgi_server.url).login(agent.user.username)


def test_slash_shortcut_suggests_and_inserts_the_expanded_reply(console, agent, shot):
    expect(console.items).to_have_count(1)
    console.open_conversation(console.items.first)
    page = console.page
    box = page.get_by_test_id("reply-input")
    suggestions = page.get_by_test_id("canned-suggestion")

    box.click()
    box.press_sequentially("/gre")
    # Both of this agent's matches, prefix order; never a colleague's or another workspace's.
    expect(suggestions).to_have_count(2)
    expect(suggestions.nth(0)).to_contain_text("/great-news")
    expect(suggestions.nth(1)).to_contain_text("/greet")
    expect(suggestions.nth(0)).to_have_attribute("aria-selected", "true")
    shot(console.actor, "suggestions")

    # Arrow keys move, Enter inserts (and does not send).
    box.press("ArrowDown")
    expect(suggestions.nth(1)).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expected = f"Hi {VISITOR}, I'm Alice Agent from Ember & Oak. How can I help?"
    expect(box).to_have_value(expected)
    expect(suggestions).to_have_count(0)
    expect(console.messages_from("agent")).to_have_count(0)

    # Escape closes the list without inserting; a click inserts.
    box.fill("")
    box.press_sequentially("/gre")
    expect(suggestions).to_have_count(2)
    box.press("Escape")
    expect(suggestions).to_have_count(0)
    expect(box).to_have_value("/gre")
    box.press_sequentially("a")
    expect(suggestions).to_have_count(1)
    suggestions.first.click()
    expect(box).to_have_value("Great news: it shipped!")

    # Tab inserts too; then the reply is sent as typed.
    box.fill("")
    box.press_sequentially("/greet")
    expect(suggestions).to_have_count(1)
    box.press("Tab")
    expect(box).to_have_value(expected)
    page.get_by_test_id("reply-send").click()
    expect(console.texts_from("agent")).to_have_text([expected])
    conversation = Conversation.objects.get(assignee=agent)
    assert Message.objects.get(conversation=conversation, sender_kind=SenderKind.AGENT).text == (
        expected
    )
    # The visitor's name went in as text: no element was made of it.
    expect(page.locator("[onmouseover]")).to_have_count(0)
