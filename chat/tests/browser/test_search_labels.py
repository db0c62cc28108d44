"""Searching message history and labelling conversations in the console (headless Chromium)."""

import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import services
from chat.models import Conversation
from chat.tests.factories import ConversationFactory, VisitorFactory

from .pages import Console

pytestmark = [pytest.mark.browser, pytest.mark.servers]

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def agent(transactional_db):
    workspace = WorkspaceFactory(name="Ember & Oak")
    return AgentFactory(workspace=workspace, display_name="Alice Agent", is_workspace_admin=True)


def conversation_with(workspace, name: str, *texts: str) -> Conversation:
    visitor = VisitorFactory(workspace=workspace, name=name)
    conversation = ConversationFactory(workspace=workspace, visitor=visitor)
    for i, text in enumerate(texts):
        services.bot_message_send(
            conversation_id=conversation.pk, text=text, client_id=f"seed-{conversation.pk}-{i}"
        )
    return conversation


def test_search_finds_chinese_in_history_and_opens_the_match(open_actor, asgi_server, agent, shot):
    workspace = agent.workspace
    filler = [f"Message number {i} about shipping." for i in range(40)]
    wanted = conversation_with(workspace, "Wang Fang", *filler, "你好，我想申请退款 " + XSS, "好的")
    conversation_with(workspace, "Bob", "Where is my parcel?")
    elsewhere = WorkspaceFactory()
    conversation_with(elsewhere, "Mallory", "我想申请退款")

    console = Console(open_actor("agent"), asgi_server.url).login(agent.user.username)
    page = console.page
    expect(console.items).to_have_count(2)

    page.get_by_test_id("search-input").fill("退款")
    results = page.get_by_test_id("search-result")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Wang Fang")
    expect(results.first.get_by_test_id("search-snippet")).to_have_text("你好，我想申请退款 " + XSS)
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()
    shot(console.actor, "search-results")

    results.first.get_by_role("button").click()
    expect(page.get_by_test_id("chat-title")).to_have_text("Wang Fang")
    match = page.locator('[data-testid="message"][data-seq="41"]')
    expect(match).to_be_in_viewport()
    expect(match).to_have_class(re.compile(r"\bis-found\b"))

    # English by stem, and Enter searches at once.
    page.get_by_test_id("search-input").fill("parcels")
    page.get_by_test_id("search-input").press("Enter")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Bob")

    page.get_by_test_id("search-input").fill("nothing like this")
    expect(results).to_have_count(0)
    expect(page.get_by_test_id("search-status")).to_contain_text("Nothing found")

    page.get_by_test_id("search-input").fill("")
    expect(page.get_by_test_id("conversation-list")).to_be_visible()
    expect(console.items).to_have_count(2)
    expect(page.locator('img[src="x"]')).to_have_count(0)
    assert wanted.pk


def test_labels_are_added_and_removed_from_the_header(open_actor, asgi_server, agent, shot):
    conversation = conversation_with(agent.workspace, "Carol", "Hello")
    console = Console(open_actor("agent"), asgi_server.url).login(agent.user.username)
    page = console.page
    console.open_conversation(console.items.first)

    label_input = page.get_by_test_id("label-input")
    label_input.fill("VIP")
    label_input.press("Enter")
    header_chips = page.get_by_test_id("chat-labels").get_by_test_id("label-chip")
    expect(header_chips).to_have_text(["VIP×"])
    label_input.fill(XSS)
    label_input.press("Enter")
    expect(header_chips).to_have_count(2)
    row_chips = console.items.first.get_by_test_id("label-chip")
    expect(row_chips).to_have_count(2)
    expect(row_chips.filter(has_text="VIP")).to_have_count(1)
    expect(row_chips.filter(has_text=XSS)).to_have_count(1)
    shot(console.actor, "labels")

    header_chips.filter(has_text="VIP").get_by_role("button").click()
    expect(header_chips).to_have_count(1)
    expect(row_chips).to_have_count(1)
    assert list(conversation.labels.values_list("name", flat=True)) == [XSS]
    expect(page.locator('img[src="x"]')).to_have_count(0)
