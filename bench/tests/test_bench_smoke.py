"""The benchmark's chat scenario, small, inside ``make test`` (issue 5).

``make bench`` is too long for the test suite, and code that only runs in a benchmark
rots. This runs the same chat scenario ``bench/run.py`` runs (``scenarios.chat`` with
the load generator's worker processes, the bench's seeding and its stored-message
count), shrunk to a few hundred sockets for a few seconds, against real daphne servers
of the test suite (``asgi_server_factory``: the test database, Redis, production mode).
Two servers, as the bench runs one per core, so deliveries cross processes through the
channel layer.

It asserts what must hold at any speed: every socket connected, and every message
sent was acked, stored and delivered, agents' replies included, with nothing refused
and no error frame. It never asserts a timing: the machine may be loaded.
"""

import importlib.util
import json
import os
import secrets
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parent.parent

VISITORS = 250
AGENTS = 5
RATE = 50  # messages per second, all visitors together
DURATION = 4  # seconds of sending
SERVERS = 2
LOADGEN_WORKERS = 2


pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]


def _bench_modules():
    missing = [m for m in ("orjson", "psutil", "websockets") if not importlib.util.find_spec(m)]
    if missing:
        why = (
            f"bench requirements missing ({', '.join(missing)}): `make test` installs them "
            "(.venv/bin/python bench/run.py --requirements-only)"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    # The bench's modules import each other by bare name (scenarios.py: ``from loadgen
    # import ...``); the path entry is removed again so it shadows nothing later.
    sys.path.insert(0, str(BENCH))
    try:
        import loadgen
        import run
        import scenarios
        import seed
    finally:
        sys.path.remove(str(BENCH))
    return run, scenarios, seed, loadgen


def test_chat_scenario_small_loses_nothing(asgi_server_factory):
    from django.conf import settings

    run, scenarios, seed, loadgen = _bench_modules()
    loadgen.raise_nofile()  # as run.py does; the servers inherit it
    servers = [asgi_server_factory() for _ in range(SERVERS)]
    ports = [s.port for s in servers]
    seeded = seed.seed(agents=AGENTS, origins=[f"http://127.0.0.1:{p}" for p in ports])

    db = settings.DATABASES["default"]
    pg = SimpleNamespace(
        pg_host=db.get("HOST") or "127.0.0.1",
        pg_port=db.get("PORT") or 5432,
        pg_user=db.get("USER") or "postgres",
        pg_password=db.get("PASSWORD") or "",
    )
    target = scenarios.Target(
        "ours",
        run.ours_spec(ports, seeded),
        scenarios.Probe([s.proc.pid for s in servers]),
        LOADGEN_WORKERS,
        run.stored_counter(pg, db["NAME"], "chat_message"),
    )
    # The quick profile's chat scenario, smaller, with deadlines generous enough for a
    # loaded machine (each visitor sends about one message, so nearly every message opens
    # a conversation, the server's costliest send: delivery can lag seconds behind on a
    # busy 2-core machine). The drain ends as soon as every message is accounted for; the
    # worst case (30 s agents + 60 s ramp + 5 s sending + 120 s drain) fits the timeout.
    profile = dict(
        run.PROFILES["quick"]["chat"],
        visitors=VISITORS,
        agents=AGENTS,
        rate=RATE,
        duration=DURATION,
        drain=120,
        ramp_deadline=60,
        connect_timeout=30,
        settle=1,
    )
    result = scenarios.chat(target, profile, f"smoke{secrets.token_hex(3)}c-")
    shown = json.dumps(result, indent=1, default=str)
    print(shown)  # pytest shows it when the test fails

    assert result["connections"] == VISITORS + AGENTS, shown
    assert result["connect_failed"] == 0, shown
    assert result["rate_target"] == RATE, shown
    # How many the send schedule produces (about RATE * DURATION); a count, not a timing.
    assert result["sent"] >= RATE * DURATION // 2, shown
    n = result["sent"]
    counts = {k: result[k] for k in ("sent", "acked", "stored", "delivered", "lost")}
    assert counts == {"sent": n, "acked": n, "stored": n, "delivered": n, "lost": 0}, shown
    assert result["refused"] == 0 and result["unacked"] == 0, shown
    # Agents answered a share; each reply was acked, stored and reached its visitor.
    r = result["replies_sent"]
    assert r > 0, shown
    replies = {k: result[k] for k in ("replies_acked", "replies_stored", "replies_delivered")}
    assert replies == {"replies_acked": r, "replies_stored": r, "replies_delivered": r}, shown
    assert result["replies_lost"] == 0, shown
    assert result["errors"] == {}, shown
    # The figures issue 5 requires of the chat scenario, all numbers.
    assert set(scenarios.CHAT_KEYS) <= result.keys(), shown
    for key in scenarios.CHAT_KEYS:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, shown)
