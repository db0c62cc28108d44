"""The circuit breaker (knowledge/breaker.py): Redis-shared in production, in memory embedded."""

import itertools
import os
import subprocess
import sys

import pytest

from knowledge import breaker
from knowledge.breaker import CLOSED, HALF_OPEN, OPEN, MemoryBackend, RedisBackend

_ids = itertools.count(10_000_000 + os.getpid() % 1000 * 1000)


class Clock:
    def __init__(self, monkeypatch):
        self.t = 1_000_000.0
        monkeypatch.setattr(breaker, "_now", lambda: self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture(params=["redis", "memory"])
def backend(request, settings):
    settings.HELPDESK_BREAKER_FAILURES = 3
    settings.HELPDESK_BREAKER_COOLDOWN_SECONDS = 30
    settings.HELPDESK_BREAKER_PROBE_LEASE_SECONDS = 60
    if request.param == "memory":
        return MemoryBackend()
    return RedisBackend(settings.REDIS_URL, settings.HELPDESK_KEY_PREFIX)


def test_opens_after_n_consecutive_failures_and_skips_while_open(backend, clock):
    pid = next(_ids)
    for _ in range(2):
        assert backend.allow(pid)
        backend.record(pid, False)
    assert backend.state(pid).state == CLOSED and backend.state(pid).failures == 2
    backend.record(pid, True)  # a success resets the count: failures must be consecutive
    assert backend.state(pid).failures == 0
    for _ in range(3):
        backend.record(pid, False)
    state = backend.state(pid)
    assert (state.state, state.failures, state.retry_at) == (OPEN, 3, clock.t + 30)
    assert not backend.allow(pid)
    clock.advance(29.9)
    assert not backend.allow(pid)


def test_half_open_lets_one_probe_through_and_success_closes(backend, clock):
    pid = next(_ids)
    for _ in range(3):
        backend.record(pid, False)
    clock.advance(30)
    assert backend.state(pid).label == "open (probe due)"
    assert backend.allow(pid)  # the probe
    assert backend.state(pid).state == HALF_OPEN
    assert not backend.allow(pid)  # everyone else keeps skipping while it is out
    backend.record(pid, True)
    assert backend.state(pid).state == CLOSED and backend.allow(pid)


def test_a_failed_probe_opens_again_for_another_cool_down(backend, clock):
    pid = next(_ids)
    for _ in range(3):
        backend.record(pid, False)
    clock.advance(31)
    assert backend.allow(pid)
    backend.record(pid, False)
    assert backend.state(pid).state == OPEN and not backend.allow(pid)
    clock.advance(30)
    assert backend.allow(pid)


def test_a_probe_that_never_reports_back_is_replaced_after_its_lease(backend, clock):
    pid = next(_ids)
    for _ in range(3):
        backend.record(pid, False)
    clock.advance(30)
    assert backend.allow(pid)  # this probe's process dies
    clock.advance(59)
    assert not backend.allow(pid)
    clock.advance(2)
    assert backend.allow(pid)


def test_reset(backend):
    pid = next(_ids)
    for _ in range(3):
        backend.record(pid, False)
    backend.reset(pid)
    assert backend.state(pid).state == CLOSED and backend.allow(pid)


def test_the_state_is_shared_with_another_process(settings):
    """What a worker process records, another process (here: a fresh interpreter) obeys."""
    pid = next(_ids)
    for _ in range(settings.HELPDESK_BREAKER_FAILURES):
        breaker.breaker_record(pid, ok=False)
    code = (
        "import django; django.setup(); from knowledge import breaker; "
        f"print(breaker.breaker_allow({pid}), breaker.breaker_state({pid}).state)"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="helpdesk.settings")
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=settings.BASE_DIR,
        check=True,
    )
    assert out.stdout.split() == ["False", "open"], out.stderr
    breaker.breaker_reset(pid)


def test_the_production_backend_is_redis_and_embedded_is_memory(settings, monkeypatch):
    assert isinstance(breaker.backend(), RedisBackend)
    monkeypatch.setattr(breaker, "_backend", None)
    settings.REDIS_URL = ""
    assert isinstance(breaker.backend(), MemoryBackend)


def test_redis_down_fails_open(monkeypatch, caplog):
    monkeypatch.setattr(breaker, "_backend", RedisBackend("redis://127.0.0.1:1/0", "x"))
    assert breaker.breaker_allow(1) is True
    breaker.breaker_record(1, ok=False)  # logged, not raised
    assert breaker.breaker_state(1) is None
    assert "circuit breaker unavailable" in caplog.text
