"""Page objects for the two UIs, speaking only through their data-testid hooks.

Every wait is on an event the page shows (an attribute, a text, a count) through
Playwright's ``expect``, which polls until it holds or its timeout passes.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, expect

from .support import PASSWORD, Actor

# [sender, seq, text] of every bubble, in the order the widget shows them.
WIDGET_TRANSCRIPT_JS = """els => els.map(e => [
    e.dataset.sender, e.dataset.seq || null, e.querySelector('.bub').textContent])"""
CONSOLE_TRANSCRIPT_JS = """els => els.map(e => [
    e.dataset.sender, e.dataset.seq || null,
    (e.querySelector('.msg-text') || {textContent: ''}).textContent])"""


class Widget:
    """The visitor's widget on the demo page (an open shadow root; locators pierce it)."""

    def __init__(self, actor: Actor, base_url: str) -> None:
        self.actor, self.page, self.base_url = actor, actor.page, base_url

    def visit(self, path: str = "/") -> Widget:
        self.page.goto(self.base_url + path)
        expect(self.page.get_by_test_id("widget-launcher")).to_be_visible()
        return self

    def open(self, *, online: bool | None = True) -> Widget:
        """Click the launcher; wait for the server's welcome (the status line says so)."""
        launcher = self.page.get_by_test_id("widget-launcher")
        launcher.click()
        expect(launcher).to_have_attribute("aria-expanded", "true")
        status = self.page.get_by_test_id("widget-status")
        if online is True:
            expect(status).to_have_text("We are online")
        elif online is False:
            expect(status).to_have_text("We are offline")
        return self

    @property
    def bubbles(self) -> Locator:
        return self.page.get_by_test_id("widget-message")

    def bubbles_from(self, sender: str) -> Locator:
        return self.page.locator(f'[data-testid="widget-message"][data-sender="{sender}"]')

    def texts_from(self, sender: str | None = None) -> Locator:
        """The bubbles' own part (text, image), without the author and time lines."""
        rows = self.bubbles_from(sender) if sender else self.bubbles
        return rows.locator(".bub")

    def send(self, text: str) -> Locator:
        """Type and send; return the bubble once the server has acked it (it has a seq)."""
        self.page.get_by_test_id("widget-input").fill(text)
        self.page.get_by_test_id("widget-send").click()
        acked = self.page.locator(
            '[data-testid="widget-message"][data-sender="visitor"][data-seq]'
        ).filter(has_text=text)
        expect(acked).to_have_count(1)
        return acked

    def transcript(self) -> list[list]:
        return self.bubbles.evaluate_all(WIDGET_TRANSCRIPT_JS)


class Console:
    """The agent console, signed in through the real login form."""

    def __init__(self, actor: Actor, base_url: str) -> None:
        self.actor, self.page, self.base_url = actor, actor.page, base_url

    def login(self, username: str, password: str = PASSWORD) -> Console:
        self.page.goto(self.base_url + "/console/login/")
        self.page.get_by_test_id("login-username").fill(username)
        self.page.get_by_test_id("login-password").fill(password)
        self.page.get_by_test_id("login-submit").click()
        self.page.wait_for_url(self.base_url + "/console/**")
        self.wait_connected()
        return self

    def wait_connected(self) -> None:
        expect(self.page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "connected"
        )

    @property
    def items(self) -> Locator:
        return self.page.get_by_test_id("conversation-item")

    @property
    def messages(self) -> Locator:
        return self.page.get_by_test_id("message-list").get_by_test_id("message")

    def messages_from(self, sender: str) -> Locator:
        return self.page.get_by_test_id("message-list").locator(
            f'[data-testid="message"][data-sender="{sender}"]'
        )

    def texts_from(self, sender: str) -> Locator:
        """The text part of each bubble (without its time or author line)."""
        return self.messages_from(sender).locator(".msg-text")

    def open_conversation(self, item: Locator) -> None:
        item.get_by_role("button").click()
        expect(item).to_have_class(re.compile(r"\bis-active\b"))
        expect(self.page.get_by_test_id("message-list")).to_be_visible()

    def reply(self, text: str) -> Locator:
        """Send a reply; return its bubble once acked (pending ones have another testid)."""
        self.page.get_by_test_id("reply-input").fill(text)
        self.page.get_by_test_id("reply-send").click()
        acked = self.messages_from("agent").filter(has_text=text)
        expect(acked).to_have_count(1)
        return acked

    def transcript(self) -> list[list]:
        return self.messages.evaluate_all(CONSOLE_TRANSCRIPT_JS)
