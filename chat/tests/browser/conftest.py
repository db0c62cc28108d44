"""Fixtures for browser tests: headless Chromium (Playwright, sync API) against real daphne.

One Chromium per test module (starting it is the slow part); a fresh browser context per
actor and test, so the visitor's localStorage and the agent's session never leak between
tests. Each page fails its test on an uncaught script error or on any dialog (an
``alert()`` would mean chat text ran as code).

Why DJANGO_ALLOW_ASYNC_UNSAFE: the sync Playwright API keeps an asyncio loop marked as
running on this thread for as long as Playwright is started, and Django then refuses ORM
calls from it (the test's own queries and pytest-django's table flush). Nothing here runs
ORM code on an event loop; the flag is set only while the browser fixture lives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from .support import Actor, PageProblems

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
# How long an expectation may take to come true. Generous for a loaded CI machine; when all
# is well each one is met within milliseconds, so it is never waited out.
EXPECT_TIMEOUT_MS = 10_000
DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """A headless Chromium shared by one module's tests."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs it (scripts/bootstrap.sh)")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    try:
        expect.set_options(timeout=EXPECT_TIMEOUT_MS)
        browser = manager.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_actor(chromium, tmp_path) -> Iterator[Callable[..., Actor]]:
    """``open_actor(name, viewport=None) -> Actor``; every actor is checked and closed."""
    actors: list[Actor] = []

    def open_(name: str, *, viewport: dict | None = None, **context_args) -> Actor:
        context = chromium.new_context(viewport=viewport or DESKTOP, locale="en-US", **context_args)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        page = context.new_page()
        problems = PageProblems()

        def on_dialog(dialog) -> None:
            problems.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: problems.errors.append(exc.stack or str(exc)))
        actor = Actor(name=name, context=context, page=page, problems=problems)
        actors.append(actor)
        return actor

    yield open_
    try:
        for actor in actors:
            actor.problems.assert_clean(actor.name)
    finally:
        for actor in actors:
            actor.context.close()


@pytest.fixture
def shot(tmp_path) -> Callable[[Actor, str], Path]:
    """``shot(actor, "step")``: a screenshot in the test's tmp dir (kept for debugging)."""
    counter = iter(range(1, 1000))

    def take(actor: Actor, step: str) -> Path:
        path = tmp_path / f"{next(counter):02d}-{actor.name}-{step}.png"
        actor.page.screenshot(path=str(path))
        return path

    return take
