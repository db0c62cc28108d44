"""Satisfaction rating, the pre-chat department choice and business hours in headless
Chromium against a real daphne server; plus the console's block form following the open
conversation. Screenshots go to /tmp/shots/ (looked at by hand when the UI changes).
"""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import BusinessHours
from accounts.tests.factories import AgentFactory, TeamFactory, WorkspaceFactory
from chat.models import BlockEntry, Conversation, ConversationStatus

from .pages import Console, Widget

pytestmark = [pytest.mark.browser, pytest.mark.servers]

SHOTS = Path("/tmp/shots")
COMMENT = 'Quick and friendly <b onmouseover="alert(1)">thanks</b>'


def snap(actor, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    actor.page.screenshot(path=str(SHOTS / f"{name}.png"))


def row(console: Console, conversation_id: int):
    return console.page.locator(
        f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]'
    )


@pytest.fixture
def agent(transactional_db):
    """The only (so the demo page's) workspace, with one agent."""
    workspace = WorkspaceFactory(name="Ember & Oak")
    return AgentFactory(workspace=workspace, display_name="Alice Agent")


def test_visitor_rates_the_resolved_conversation(open_actor, asgi_server, agent):
    console = Console(open_actor("agent"), asgi_server.url).login(agent.user.username)
    widget = Widget(open_actor("visitor"), asgi_server.url).visit()
    widget.open()
    widget.send("My grinder makes a strange noise")
    conversation = Conversation.objects.get()
    rating = widget.page.get_by_test_id("widget-rating")
    expect(rating).to_be_hidden()  # only once the conversation is resolved

    item = row(console, conversation.pk)
    console.open_conversation(item)
    console.reply("Try cleaning the burrs; that fixes it most of the time.")
    expect(console.page.get_by_test_id("conversation-rating")).to_have_text("Not rated")
    console.page.get_by_test_id("resolve-button").click()

    expect(rating).to_be_visible()
    expect(rating).to_contain_text("How would you rate this conversation?")
    submit = widget.page.get_by_test_id("widget-rating-submit")
    expect(submit).to_be_disabled()  # a rating first
    snap(widget.actor, "rating-1-widget-asks")
    widget.page.get_by_test_id("widget-rating-4").click()
    expect(widget.page.get_by_test_id("widget-rating-4")).to_have_attribute("aria-pressed", "true")
    widget.page.get_by_test_id("widget-rating-comment").fill(COMMENT)
    snap(widget.actor, "rating-2-widget-filled")
    submit.click()
    thanks = widget.page.get_by_test_id("widget-rating-thanks")
    expect(thanks).to_have_text("Thank you for your feedback!")
    expect(widget.page.get_by_test_id("widget-rating-comment")).to_be_hidden()
    snap(widget.actor, "rating-3-widget-thanks")

    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.RESOLVED
    assert (conversation.rating, conversation.rating_comment) == (4, COMMENT)
    assert conversation.rated_at is not None

    # The agent sees it live: in the details pane and as a line in the timeline.
    stars = console.page.get_by_test_id("conversation-rating-stars")
    expect(stars).to_have_attribute("data-rating", "4")
    expect(stars).to_have_text("★★★★☆")
    expect(console.page.get_by_test_id("conversation-rating-comment")).to_have_text(COMMENT)
    line = console.page.locator('[data-testid="timeline-event"][data-kind="rating"]')
    expect(line).to_have_count(1)
    expect(line).to_contain_text(f"The visitor rated the conversation 4 of 5: “{COMMENT}”")
    # The comment stayed text everywhere.
    for page in (console.page, widget.page):
        expect(page.locator("[onmouseover]")).to_have_count(0)
    snap(console.actor, "rating-4-console")

    # After a reload the rating comes back with the history.
    console.page.reload()
    console.wait_connected()
    expect(
        console.page.locator('[data-testid="timeline-event"][data-kind="rating"]')
    ).to_contain_text("4 of 5")
    expect(console.page.get_by_test_id("conversation-rating-stars")).to_have_attribute(
        "data-rating", "4"
    )


def test_block_form_closes_when_another_conversation_opens(open_actor, asgi_server, agent):
    console = Console(open_actor("agent"), asgi_server.url).login(agent.user.username)
    conversations = []
    for name, text in (("visitor-1", "First visitor"), ("visitor-2", "Second visitor")):
        widget = Widget(open_actor(name), asgi_server.url).visit()
        widget.open()
        widget.send(text)
        conversations.append(Conversation.objects.get(messages__text=text))
    first, second = conversations
    page = console.page
    form = page.get_by_test_id("block-confirm")

    console.open_conversation(row(console, first.pk))
    page.get_by_test_id("block-button").click()
    expect(form).to_be_visible()
    page.get_by_test_id("block-scope").select_option("ip")
    page.get_by_test_id("block-reason").fill("spam about the first visitor")

    # Switching conversation closes and resets it: nothing can block the wrong visitor.
    console.open_conversation(row(console, second.pk))
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("block-button")).to_have_attribute("aria-expanded", "false")
    page.get_by_test_id("block-button").click()
    expect(form).to_be_visible()
    expect(page.get_by_test_id("block-reason")).to_have_value("")
    expect(page.get_by_test_id("block-scope")).to_have_value("visitor")
    page.get_by_test_id("block-reason").fill("abusive")
    page.get_by_test_id("block-confirm-button").click()
    expect(form).to_be_hidden()
    blocked = page.locator('[data-testid="timeline-event"][data-kind="blocked"]')
    expect(blocked).to_contain_text("Alice Agent blocked the visitor")
    expect(blocked.get_by_test_id("timeline-event-note")).to_have_text("abusive")
    snap(console.actor, "rating-5-console-blocked")
    entry = BlockEntry.objects.get()
    assert entry.visitor_id == second.visitor_id and entry.reason == "abusive"


def test_visitor_picks_a_department_and_its_team_gets_the_chat(open_actor, asgi_server):
    workspace = WorkspaceFactory(name="Ember & Oak", ask_department=True)
    sales = TeamFactory(workspace=workspace, name="Sales", is_department=True)
    support = TeamFactory(workspace=workspace, name="Support", is_department=True)
    TeamFactory(workspace=workspace, name="Back office")  # not a department: not offered
    alice = AgentFactory(workspace=workspace, display_name="Alice Agent")
    bob = AgentFactory(workspace=workspace, display_name="Bob Agent")
    alice.teams.add(sales)
    bob.teams.add(support)
    con_a = Console(open_actor("console-alice"), asgi_server.url).login(alice.user.username)
    con_b = Console(open_actor("console-bob"), asgi_server.url).login(bob.user.username)

    widget = Widget(open_actor("visitor"), asgi_server.url).visit()
    widget.open()
    choice = widget.page.get_by_test_id("widget-department")
    expect(choice).to_be_visible()  # before the first message
    expect(choice.locator("option")).to_have_text(
        ["Choose a department (optional)", "Sales", "Support"]
    )
    choice.select_option(label="Support")
    snap(widget.actor, "department-1-widget")
    widget.send("My espresso machine leaks")
    expect(choice).to_be_hidden()  # the conversation exists now

    conversation = Conversation.objects.get()
    assert conversation.team_id == support.pk
    assert conversation.assignee_id == bob.pk
    item = row(con_b, conversation.pk)
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Bob Agent")
    con_b.open_conversation(item)
    expect(con_b.page.locator("#chat-assignee")).to_contain_text("Support")
    expect(con_b.texts_from("visitor")).to_have_text(["My espresso machine leaks"])
    expect(widget.page.get_by_test_id("widget-agent")).to_have_text(
        "You are chatting with Bob Agent"
    )
    snap(con_b.actor, "department-2-console")
    # Alice (Sales) is not given it: her inbox holds her own and unassigned chats only.
    expect(row(con_a, conversation.pk)).to_have_count(0)


def test_outside_business_hours_the_widget_offers_the_offline_form(open_actor, asgi_server):
    zone = "Pacific/Auckland"
    workspace = WorkspaceFactory(
        name="Ember & Oak",
        timezone=zone,
        business_hours_enabled=True,
        offline_text="Our roastery is closed now. Leave us a note!",
    )
    # Open only on tomorrow's weekday in the workspace's time zone: closed all of today there,
    # whatever the time of day the test runs.
    tomorrow = (timezone.now().astimezone(ZoneInfo(zone)) + timedelta(days=1)).weekday()
    BusinessHours.objects.create(
        workspace=workspace, weekday=tomorrow, opens_at=time(9), closes_at=time(17)
    )
    agent = AgentFactory(workspace=workspace, display_name="Alice Agent")
    console = Console(open_actor("agent"), asgi_server.url).login(agent.user.username)
    expect(console.page.get_by_test_id("presence-toggle")).to_have_value("online")

    widget = Widget(open_actor("visitor"), asgi_server.url).visit()
    widget.open(online=False)  # an agent is online, but the hours say closed
    expect(widget.page.get_by_text("Our roastery is closed now. Leave us a note!")).to_be_visible()
    form = widget.page.get_by_test_id("widget-offline-form")
    expect(form).to_be_visible()
    expect(widget.page.get_by_test_id("widget-input")).to_be_hidden()
    snap(widget.actor, "hours-1-widget-closed")

    form.locator('input[name="name"]').fill("Grace Hopper")
    form.locator('input[name="email"]').fill("grace@example.com")
    form.locator('textarea[name="message"]').fill("Are you open on Sunday?")
    form.locator('button[type="submit"]').click()
    expect(widget.page.get_by_text("Thanks! We will get back to you by email.")).to_be_visible()
    message = Conversation.objects.get().messages.get()
    assert message.text == "Are you open on Sunday?"
    # The agent still sees the message left outside hours.
    expect(console.items).to_have_count(1)
