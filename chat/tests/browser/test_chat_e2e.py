"""The widget and the console in headless Chromium, against a real daphne server.

A visitor (one browser context) on the demo page and an agent (another context) signed in
to the console chat in real time; everything is driven through the UIs' data-testid hooks
and checked both on screen and, where it matters, in the database.
"""

import urllib.request

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.models import Conversation, ConversationStatus, Message, Visitor

from .pages import Console, Widget
from .support import png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.servers]

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def agent(transactional_db):
    """The only (so the demo page's) workspace, with one agent."""
    workspace = WorkspaceFactory(name="Ember & Oak")
    return AgentFactory(workspace=workspace, display_name="Alice Agent")


@pytest.fixture
def server(asgi_server, agent):
    return asgi_server


@pytest.fixture
def console(open_actor, server, agent) -> Console:
    """The agent, signed in and connected (so the workspace has an agent online)."""
    return Console(open_actor("agent"), server.url).login(agent.user.username)


@pytest.fixture
def widget(open_actor, server) -> Widget:
    """A visitor on the demo page, widget not opened yet."""
    return Widget(open_actor("visitor"), server.url).visit()


def no_injected_markup(*pages) -> None:
    """Chat text must never have become elements: no <img src=x>, no onerror anywhere."""
    for page in pages:
        # CSS locators pierce the widget's open shadow root.
        expect(page.locator('img[src="x"]')).to_have_count(0)
        expect(page.locator("[onerror]")).to_have_count(0)


def test_visitor_and_agent_chat_live(console, widget, server, shot):
    widget.open()
    first = "Hello! Do you ship beans to Spain?"
    widget.send(first)
    shot(widget.actor, "sent")

    # The conversation shows up live in the agent's list, unread.
    item = console.items
    expect(item).to_have_count(1)
    expect(item.get_by_test_id("conversation-unread")).to_have_text("1")
    expect(item.get_by_test_id("conversation-preview")).to_have_text(first)
    shot(console.actor, "new-conversation")

    console.open_conversation(item)
    expect(console.texts_from("visitor")).to_have_text([first])
    details = console.page.get_by_test_id("visitor-details")
    expect(details.get_by_test_id("visitor-browser")).to_contain_text("Chrome")
    expect(details.get_by_test_id("visitor-current-url")).to_contain_text(server.url + "/")
    expect(details.get_by_test_id("visitor-device")).to_have_text("desktop")
    # Opening it reads it: the badge goes away.
    expect(item.get_by_test_id("conversation-unread")).to_be_hidden()

    reply = "Hi! Yes, we ship to all of the EU within 3 days."
    console.reply(reply)
    expect(widget.texts_from("agent")).to_have_text([reply])
    expect(widget.bubbles_from("agent").first).to_have_attribute("data-seq", "2")

    # Markup in chat text is text, in both directions and in the list preview.
    widget.send(XSS)
    expect(console.texts_from("visitor").last).to_have_text(XSS)
    expect(item.get_by_test_id("conversation-preview")).to_have_text(XSS)
    console.reply("You wrote: " + XSS)
    expect(widget.texts_from("agent").last).to_have_text("You wrote: " + XSS)
    expect(widget.texts_from("visitor").last).to_have_text(XSS)
    no_injected_markup(widget.page, console.page)
    shot(widget.actor, "conversation")
    shot(console.actor, "conversation")
    for actor in (widget.actor, console.actor):
        actor.problems.assert_clean(actor.name)

    # Both sides agree with the database, in order.
    conversation = Conversation.objects.get()
    stored = list(conversation.messages.order_by("seq").values_list("seq", "sender_kind", "text"))
    assert stored == [
        (1, "visitor", first),
        (2, "agent", reply),
        (3, "visitor", XSS),
        (4, "agent", "You wrote: " + XSS),
    ]
    expected = [[sender, str(seq), text] for seq, sender, text in stored]
    assert widget.transcript() == expected
    assert console.transcript() == expected


def test_reload_keeps_history_on_both_sides(console, widget):
    widget.open()
    widget.send("First question")
    item = console.items
    expect(item).to_have_count(1)
    console.open_conversation(item)
    console.reply("First answer")
    expect(widget.bubbles_from("agent")).to_have_count(1)
    widget.send("Second question")
    expect(console.messages).to_have_count(3)

    expected = [
        ["visitor", "1", "First question"],
        ["agent", "2", "First answer"],
        ["visitor", "3", "Second question"],
    ]
    assert widget.transcript() == expected

    widget.page.reload()
    widget.open()
    # The same bubbles in the same order, each once (the history, not a resend).
    expect(widget.texts_from()).to_have_text([text for _, _, text in expected])
    assert widget.transcript() == expected
    # The chat goes on where it was: the next message is seq 4, nothing was stored twice.
    widget.send("Third question, after a reload")
    expected.append(["visitor", "4", "Third question, after a reload"])
    assert widget.transcript() == expected
    assert Message.objects.count() == 4

    expect(console.messages).to_have_count(4)
    console.page.reload()
    console.wait_connected()
    expect(console.items).to_have_count(1)
    # The console reopens the conversation it showed (its URL says which).
    expect(console.messages).to_have_count(4)
    assert console.transcript() == expected


def test_image_upload_shows_in_console(console, widget, server, shot):
    widget.open()
    image = png_bytes(96, 64)
    widget.page.get_by_test_id("widget-file").set_input_files(
        files=[{"name": "beans.png", "mimeType": "image/png", "buffer": image}]
    )
    mine = widget.page.locator('[data-testid="widget-message"][data-sender="visitor"][data-seq]')
    expect(mine.locator("img")).to_have_count(1)
    loaded(widget.page, mine.locator("img"), 96, 64)

    item = console.items
    expect(item).to_have_count(1)
    expect(item.get_by_test_id("conversation-preview")).to_have_text("[beans.png]")
    console.open_conversation(item)
    preview = console.messages_from("visitor").locator("img")
    expect(preview).to_have_count(1)
    expect(preview).to_have_attribute("alt", "beans.png")
    loaded(console.page, preview, 96, 64)
    shot(widget.actor, "image")
    shot(console.actor, "image")

    src = preview.get_attribute("src")
    assert src.startswith(server.url + "/attachments/")
    assert mine.locator("img").get_attribute("src") == src
    with urllib.request.urlopen(src, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.read() == image


def loaded(page, img, width: int, height: int) -> None:
    """Wait until the <img> has really loaded and decoded (a broken one has no size)."""
    page.wait_for_function(
        "([img, w, h]) => img.complete && img.naturalWidth === w && img.naturalHeight === h",
        arg=[img.element_handle(), width, height],
    )


def test_offline_form_then_agent_sees_it(open_actor, server, agent, shot):
    widget = Widget(open_actor("visitor"), server.url).visit()
    widget.open(online=False)
    form = widget.page.get_by_test_id("widget-offline-form")
    expect(form).to_be_visible()
    expect(widget.page.get_by_test_id("widget-input")).to_be_hidden()

    form.locator('input[name="name"]').fill("Grace Hopper")
    form.locator('input[name="email"]').fill("grace@example.com")
    form.locator('textarea[name="message"]').fill("Do you sell green beans? Call me back.")
    form.locator('button[type="submit"]').click()
    # The thank-you replaces the form once the server has acked (i.e. committed) it.
    expect(widget.page.get_by_text("Thanks! We will get back to you by email.")).to_be_visible()
    expect(form).to_be_hidden()
    shot(widget.actor, "left-message")

    visitor = Visitor.objects.get()
    assert (visitor.name, visitor.email) == ("Grace Hopper", "grace@example.com")
    message = Message.objects.get()
    assert message.text == "Do you sell green beans? Call me back."
    assert message.conversation.visitor == visitor

    console = Console(open_actor("agent"), server.url).login(agent.user.username)
    item = console.items
    expect(item).to_have_count(1)
    expect(item.get_by_test_id("conversation-name")).to_have_text("Grace Hopper")
    console.open_conversation(item)
    expect(console.texts_from("visitor")).to_have_text([message.text])
    expect(console.page.get_by_test_id("visitor-email")).to_have_text("grace@example.com")
    # The agent coming online reaches the open widget: the chat box replaces the form.
    expect(widget.page.get_by_test_id("widget-status")).to_have_text("We are online")
    expect(widget.page.get_by_test_id("widget-input")).to_be_visible()


def test_resolve_then_visitor_reopens(console, widget, shot):
    widget.open()
    widget.send("Where is my order #1234?")
    item = console.items
    expect(item).to_have_count(1)
    console.open_conversation(item)
    console.reply("It left the roastery this morning.")
    expect(widget.bubbles_from("agent")).to_have_count(1)

    status = console.page.get_by_test_id("conversation-status")
    resolve = console.page.get_by_test_id("resolve-button")
    expect(status).to_have_attribute("data-status", "open")
    resolve.click()
    expect(status).to_have_attribute("data-status", "resolved")
    expect(resolve).to_be_disabled()
    expect(item).to_have_attribute("data-status", "resolved")
    expect(widget.page.get_by_test_id("widget-note")).to_have_text(
        "This conversation was marked as resolved. Write again any time."
    )
    shot(console.actor, "resolved")
    assert Conversation.objects.get().status == ConversationStatus.RESOLVED

    widget.send("Thanks! One more thing: do you have decaf?")
    expect(status).to_have_attribute("data-status", "open")
    expect(resolve).to_be_enabled()
    expect(item).to_have_count(1)  # the same conversation, reopened
    expect(item).to_have_attribute("data-status", "open")
    expect(console.messages_from("visitor")).to_have_count(2)
    shot(console.actor, "reopened")
    assert Conversation.objects.get().status == ConversationStatus.OPEN


def test_widget_usable_on_a_phone(console, open_actor, server, shot):
    phone = open_actor(
        "phone",
        viewport={"width": 375, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    widget = Widget(phone, server.url).visit()
    widget.open()
    textarea = phone.page.get_by_test_id("widget-input")
    send = phone.page.get_by_test_id("widget-send")
    for control in (textarea, send):
        expect(control).to_be_in_viewport(ratio=1)
        box = control.bounding_box()
        assert box["x"] >= 0 and box["y"] >= 0, box
        assert box["x"] + box["width"] <= 375 and box["y"] + box["height"] <= 740, box
    # Nothing covers the input (the launcher turns into the close button up top).
    centre = textarea.bounding_box()
    hit = phone.page.evaluate(
        "([x, y]) => { const h = document.querySelector('helpdesk-chat');"
        " const e = h.shadowRoot.elementFromPoint(x, y);"
        " return e && e.getAttribute('data-testid'); }",
        [centre["x"] + centre["width"] / 2, centre["y"] + centre["height"] / 2],
    )
    assert hit == "widget-input"
    textarea.tap()
    widget.send("Sent from my phone")
    expect(console.items).to_have_count(1)
    shot(phone, "phone")


def test_the_talk_to_a_human_button_goes_once_an_agent_answers(open_actor, asgi_server, agent):
    """With the bot answering first the widget offers "Talk to a human"; once a person
    has written in the conversation there is nobody else to ask for."""
    from accounts.models import BotMode

    agent.workspace.bot_mode = BotMode.ANSWER_FIRST
    agent.workspace.save()
    console = Console(open_actor("agent"), asgi_server.url).login(agent.user.username)
    widget = Widget(open_actor("visitor"), asgi_server.url).visit()
    widget.open()
    widget.send("Hello, anyone there?")
    human = widget.page.get_by_test_id("widget-human")
    expect(human).to_be_visible()

    console.open_conversation(console.items)
    console.reply("Hi, Alice here.")
    expect(widget.texts_from("agent")).to_have_text(["Hi, Alice here."])
    expect(human).to_be_hidden()
