"""Routing and the agent's day in headless Chromium against a real daphne server.

The issue's required scenario: two agents online with one chat each at most, two visitors
get one agent each, a third waits in the queue (the widget says so, the consoles count it)
and is assigned automatically once an agent resolves their chat. Then: transfer with a
private note, notes in the timeline, presence shown to colleagues, and the list filters.
Screenshots go to /tmp/shots/ (looked at by hand when the UI changes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.models import AgentProfile
from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.models import Conversation, ConversationEvent, ConversationStatus

from .pages import Console, Widget

pytestmark = [pytest.mark.browser, pytest.mark.servers]

SHOTS = Path("/tmp/shots")
NOTE = 'VIP: refund approved <b onmouseover="alert(1)">ok</b>'


def snap(actor, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    actor.page.screenshot(path=str(SHOTS / f"routing-{name}.png"))


def row(console: Console, conversation_id: int):
    return console.page.locator(
        f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]'
    )


def record_frames(actor) -> list[str]:
    """Every WebSocket frame the page receives, as text (to prove what never reached it)."""
    received: list[str] = []

    def on_socket(ws) -> None:
        ws.on("framereceived", lambda payload: received.append(str(payload)))

    actor.page.on("websocket", on_socket)
    return received


@pytest.fixture
def agents(transactional_db):
    """The only (so the demo page's) workspace, with two agents."""
    workspace = WorkspaceFactory(name="Ember & Oak")
    alice = AgentFactory(workspace=workspace, display_name="Alice Agent")
    bob = AgentFactory(workspace=workspace, display_name="Bob Agent")
    return alice, bob


def visitor_chats(open_actor, server, name: str, text: str) -> tuple[Widget, Conversation]:
    widget = Widget(open_actor(name), server.url).visit()
    widget.open()
    widget.send(text)
    conversation = Conversation.objects.get(messages__text=text)
    return widget, conversation


def test_third_visitor_waits_in_queue_then_gets_the_freed_agent(open_actor, asgi_server, agents):
    alice, bob = agents
    AgentProfile.objects.filter(pk__in=[alice.pk, bob.pk]).update(max_concurrent_chats=1)
    consoles = {
        a.pk: Console(
            open_actor(f"console-{a.display_name.split()[0].lower()}"), asgi_server.url
        ).login(a.user.username)
        for a in (alice, bob)
    }
    for console in consoles.values():
        expect(console.page.get_by_test_id("queue-count")).to_have_text("0")

    w1, c1 = visitor_chats(open_actor, asgi_server, "visitor-1", "First visitor here")
    w2, c2 = visitor_chats(open_actor, asgi_server, "visitor-2", "Second visitor here")
    for widget in (w1, w2):
        expect(widget.page.get_by_test_id("widget-agent")).to_contain_text("You are chatting with")
        expect(widget.page.get_by_test_id("widget-queue-position")).to_be_hidden()
    c1.refresh_from_db()
    c2.refresh_from_db()
    assert {c1.assignee_id, c2.assignee_id} == {alice.pk, bob.pk}  # one chat each

    w3, c3 = visitor_chats(open_actor, asgi_server, "visitor-3", "Third visitor, anyone?")
    position = w3.page.get_by_test_id("widget-queue-position")
    expect(position).to_be_visible()
    expect(position).to_have_text("You are number 1 in the queue")
    expect(position).to_have_attribute("data-position", "1")
    expect(w3.page.get_by_test_id("widget-agent")).to_be_hidden()
    for console in consoles.values():
        expect(console.page.get_by_test_id("queue-count")).to_have_text("1")
    c3.refresh_from_db()
    assert c3.assignee_id is None and c3.queued_at is not None
    snap(w3.actor, "a1-widget-queued")

    # The agent of the first chat resolves it: the third visitor is theirs at once.
    freed = AgentProfile.objects.get(pk=c1.assignee_id)
    console = consoles[freed.pk]
    # The waiting conversation is in the inbox (unassigned) and says it is queued.
    expect(row(console, c3.pk)).to_contain_text("Waiting in the queue")
    snap(console.actor, "a2-console-queue")
    console.open_conversation(row(console, c1.pk))
    console.page.get_by_test_id("resolve-button").click()

    expect(position).to_be_hidden()
    expect(w3.page.get_by_test_id("widget-agent")).to_have_text(
        f"You are chatting with {freed.display_name}"
    )
    for each in consoles.values():
        expect(each.page.get_by_test_id("queue-count")).to_have_text("0")
    third = row(console, c3.pk)
    expect(third).to_have_count(1)
    expect(third).to_contain_text(freed.display_name)
    c3.refresh_from_db()
    assert c3.assignee_id == freed.pk and c3.queued_at is None
    event = ConversationEvent.objects.get(conversation=c3, kind="assigned")
    assert event.data["how"] == "queue" and event.agent_id == freed.pk
    snap(w3.actor, "a3-widget-assigned")

    # The timeline of the resolved chat shows the assignment and the status change.
    events = console.page.get_by_test_id("timeline-event")
    expect(events.filter(has_text="Resolved")).to_have_count(1)
    expect(console.page.get_by_test_id("status-select")).to_have_value("resolved")
    # The visitor waiting for the freed agent's reply sees it.
    console.open_conversation(third)
    expect(console.page.get_by_test_id("timeline-event").first).to_contain_text("queue")
    console.reply("Sorry for the wait! How can I help?")
    expect(w3.texts_from("agent")).to_have_text(["Sorry for the wait! How can I help?"])
    snap(console.actor, "a4-console-assigned")

    # The status filter: resolved only, then back to everything in the inbox.
    status = console.page.get_by_test_id("status-filter")
    status.select_option("resolved")
    expect(console.items).to_have_count(1)
    expect(row(console, c1.pk)).to_have_count(1)
    status.select_option("")
    expect(row(console, c3.pk)).to_have_count(1)
    console.page.get_by_test_id("view-filter").select_option("mine")
    expect(row(console, c1.pk)).to_have_count(1)
    expect(row(console, c3.pk)).to_have_count(1)
    other = c2.pk
    expect(row(console, other)).to_have_count(0)  # the colleague's chat is not "mine"
    for actor in (w1.actor, w2.actor, w3.actor, *(c.actor for c in consoles.values())):
        actor.problems.assert_clean(actor.name)


def test_transfer_with_a_private_note(open_actor, asgi_server, agents):
    alice, bob = agents
    AgentProfile.objects.filter(pk=bob.pk).update(presence="away")  # routing picks Alice
    con_a = Console(open_actor("console-alice"), asgi_server.url).login(alice.user.username)
    con_b = Console(open_actor("console-bob"), asgi_server.url).login(bob.user.username)
    visitor = open_actor("visitor")
    frames = record_frames(visitor)
    widget = Widget(visitor, asgi_server.url).visit()
    widget.open()
    widget.send("My order never arrived")
    conversation = Conversation.objects.get()
    assert conversation.assignee_id == alice.pk
    expect(widget.page.get_by_test_id("widget-agent")).to_have_text(
        "You are chatting with Alice Agent"
    )
    # Bob's inbox holds only his and unassigned chats: not this one yet.
    expect(row(con_b, conversation.pk)).to_have_count(0)

    con_a.open_conversation(row(con_a, conversation.pk))
    con_a.page.get_by_test_id("transfer-button").click()
    target = con_a.page.get_by_test_id("transfer-target")
    expect(target.locator(f'option[value="agent:{bob.pk}"]')).to_contain_text("Bob Agent")
    expect(target.locator(f'option[value="agent:{bob.pk}"]')).to_contain_text("Away")
    expect(target.locator(f'option[value="agent:{alice.pk}"]')).to_have_count(0)  # hers now
    target.select_option(f"agent:{bob.pk}")
    con_a.page.get_by_test_id("transfer-note").fill(NOTE)
    snap(con_a.actor, "b1-transfer-dialog")
    con_a.page.get_by_test_id("transfer-confirm").click()
    expect(con_a.page.get_by_test_id("transfer-dialog")).to_be_hidden()

    # Bob's console lists it, and its timeline has the transfer with the note.
    item = row(con_b, conversation.pk)
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Bob Agent")
    con_b.open_conversation(item)
    transferred = con_b.page.locator('[data-testid="timeline-event"][data-kind="transferred"]')
    expect(transferred).to_contain_text("Alice Agent transferred the conversation to Bob Agent")
    expect(transferred.get_by_test_id("timeline-event-note")).to_have_text(NOTE)
    expect(con_b.page.locator("[onmouseover]")).to_have_count(0)
    # Alice, who has it open, sees the same event live.
    expect(
        con_a.page.locator('[data-testid="timeline-event"][data-kind="transferred"]')
    ).to_contain_text("Bob Agent")
    snap(con_b.actor, "b2-console-transferred")

    # The visitor learns who answers now, and never sees the note.
    expect(widget.page.get_by_test_id("widget-agent")).to_have_text(
        "You are chatting with Bob Agent"
    )
    con_b.reply("Hi, Bob here: sorting it out.")
    expect(widget.texts_from("agent")).to_have_text(["Hi, Bob here: sorting it out."])
    expect(widget.page.get_by_text("refund approved")).to_have_count(0)
    assert not [f for f in frames if "refund approved" in f]
    snap(widget.actor, "b3-widget-after-transfer")


def test_private_note_shows_in_the_console_only(open_actor, asgi_server, agents):
    alice, _bob = agents
    con_a = Console(open_actor("console-alice"), asgi_server.url).login(alice.user.username)
    visitor = open_actor("visitor")
    frames = record_frames(visitor)
    widget = Widget(visitor, asgi_server.url).visit()
    widget.open()
    widget.send("Can I change my delivery address?")
    conversation = Conversation.objects.get()
    con_a.open_conversation(row(con_a, conversation.pk))
    con_a.reply("Sure, what is the new address?")
    widget.send("12 Baker Street")

    box = con_a.page.get_by_test_id("note-input")
    box.fill(NOTE)
    con_a.page.get_by_test_id("note-send").click()
    note = con_a.page.get_by_test_id("timeline-note")
    expect(note).to_have_count(1)
    expect(note.get_by_test_id("timeline-note-text")).to_have_text(NOTE)
    expect(note).to_contain_text("Alice Agent")
    expect(box).to_have_value("")
    # In time order: after the messages so far, before the next one.
    widget.send("Thanks!")
    expect(con_a.texts_from("visitor")).to_have_count(3)
    order = con_a.page.get_by_test_id("message-list").evaluate(
        """list => Array.from(list.children)
            .filter(e => e.dataset.testid === 'message' || e.dataset.testid === 'timeline-note')
            .map(e => e.dataset.testid === 'message' ? e.dataset.seq : 'note')"""
    )
    assert order[-2:] == ["note", "4"], order
    expect(con_a.page.locator("[onmouseover]")).to_have_count(0)
    snap(con_a.actor, "c1-console-note")

    # After a reload the note comes back with the history.
    con_a.page.reload()
    con_a.wait_connected()
    expect(con_a.page.get_by_test_id("timeline-note-text")).to_have_text(NOTE)

    expect(widget.bubbles).to_have_count(4)
    expect(widget.page.get_by_text("refund approved")).to_have_count(0)
    assert not [f for f in frames if "refund approved" in f]
    snap(widget.actor, "c2-widget-no-note")


def test_presence_switch_is_shown_to_colleagues(open_actor, asgi_server, agents):
    alice, bob = agents
    con_a = Console(open_actor("console-alice"), asgi_server.url).login(alice.user.username)
    con_b = Console(open_actor("console-bob"), asgi_server.url).login(bob.user.username)
    toggle = con_a.page.get_by_test_id("presence-toggle")
    expect(toggle).to_have_value("online")

    con_b.page.get_by_test_id("colleagues-toggle").click()
    listing = con_b.page.get_by_test_id("agent-presence-list")
    expect(listing).to_be_visible()
    alice_item = listing.locator(f'[data-testid="agent-presence"][data-agent-id="{alice.pk}"]')
    expect(alice_item).to_have_attribute("data-presence", "online")
    expect(alice_item.get_by_test_id("agent-presence-name")).to_have_text("Alice Agent")

    toggle.select_option("away")
    expect(alice_item).to_have_attribute("data-presence", "away")
    expect(alice_item.get_by_test_id("agent-presence-state")).to_have_text("Away")
    alice.refresh_from_db()
    assert alice.presence == "away"
    snap(con_b.actor, "d1-colleague-away")
    # Alice's own switch keeps it after a reload.
    con_a.page.reload()
    con_a.wait_connected()
    expect(con_a.page.get_by_test_id("presence-toggle")).to_have_value("away")
    snap(con_a.actor, "d2-own-away")

    # Closing the console shows her as offline (not connected) to Bob.
    con_a.page.close()
    expect(alice_item).to_have_attribute("data-presence", "offline")
    expect(alice_item.get_by_test_id("agent-presence-state")).to_have_text("Not connected")


def test_snooze_from_the_status_select(open_actor, asgi_server, agents):
    alice, _bob = agents
    con_a = Console(open_actor("console-alice"), asgi_server.url).login(alice.user.username)
    widget = Widget(open_actor("visitor"), asgi_server.url).visit()
    widget.open()
    widget.send("Call me back tomorrow please")
    conversation = Conversation.objects.get()
    con_a.open_conversation(row(con_a, conversation.pk))

    select = con_a.page.get_by_test_id("status-select")
    select.select_option("pending")
    expect(con_a.page.get_by_test_id("conversation-status")).to_have_text("Pending")
    select.select_option("snoozed")
    form = con_a.page.get_by_test_id("snooze-form")
    expect(form).to_be_visible()
    snap(con_a.actor, "e1-snooze-form")
    con_a.page.get_by_test_id("snooze-tomorrow").click()
    expect(form).to_be_hidden()
    expect(con_a.page.get_by_test_id("conversation-status")).to_contain_text(
        re.compile(r"Snoozed until .*9:00")
    )
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.SNOOZED
    local = conversation.snoozed_until.astimezone()
    assert (local.hour, local.minute) == (9, 0)
    expect(
        con_a.page.locator('[data-testid="timeline-event"][data-kind="status"]').last
    ).to_contain_text("snoozed the conversation until")
    snap(con_a.actor, "e2-snoozed")

    # Back to open with the select; the old resolve button still works.
    select.select_option("open")
    expect(con_a.page.get_by_test_id("conversation-status")).to_have_text("Open")
    con_a.page.get_by_test_id("resolve-button").click()
    expect(con_a.page.get_by_test_id("conversation-status")).to_have_text("Resolved")
    expect(select).to_have_value("resolved")
