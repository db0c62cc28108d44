"""A real Celery worker process answers a visitor: Redis broker, Redis channel layer, test DB.

The worker runs the same code as production (``celery -A helpdesk worker``), with this
run's own queue (CELERY_TASK_DEFAULT_QUEUE, set by helpdesk.testenv) so that parallel
test runs never take each other's tasks. The visitor's socket lives in this process; the
bot's answer reaches it through Redis.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.models import BotMode
from accounts.tests.factories import WorkspaceFactory
from chat.tests.sockets import receive_message, receive_until, visitor_socket
from helpdesk.tests.live_server import server_env
from knowledge.models import BotDecision, DecisionOutcome

from .ai_support import make_provider, seed_kb

READY_TIMEOUT = 60.0
STOP_GRACE = 10.0


def _wait_for_db_sessions_to_end(app_name: str, timeout: float = 10.0) -> None:
    """The table flush after the test blocks while the worker's sessions linger."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app_name]
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.05)


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """Start ``celery -A helpdesk worker --pool=solo``; stop it with SIGTERM, then SIGKILL."""
    app_name = f"helpdesk-celery-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = server_env(
        {
            "PGAPPNAME": app_name,
            "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            "HELPDESK_LOG_LEVEL": "INFO",
        }
    )
    log_path = tmp_path / "celery.log"
    celery = Path(sys.executable).with_name("celery")
    command = [
        str(celery),
        "-A",
        "helpdesk",
        "worker",
        "--pool=solo",
        "-l",
        "info",
        "-n",
        f"test-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed command line
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while " ready." not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{tail()}")
            time.sleep(0.1)
        assert f".> {settings.CELERY_TASK_DEFAULT_QUEUE} " in log_path.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        _wait_for_db_sessions_to_end(app_name)
        print(f"--- celery worker exit {proc.returncode}; log tail ---\n{tail()}")


@sync_to_async
def _setup(fake):
    workspace = WorkspaceFactory(
        allowed_origins="https://shop.example.com", bot_mode=BotMode.ANSWER_FIRST
    )
    seed_kb(workspace)
    fake.set("a", "answer", "Unused gift cards can be returned within 30 days.")
    fake.set("b", "http500")
    make_provider(workspace, fake, "a", timeout_seconds=5)
    make_provider(workspace, fake, "b", timeout_seconds=5)
    return workspace


@pytest.mark.django_db(transaction=True)
async def test_a_real_worker_answers_on_the_visitors_socket(celery_worker, fake_openai, settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER is False  # production mode: the broker is Redis
    workspace = await _setup(fake_openai)
    visitor, _ = await visitor_socket(workspace)

    await visitor.send_json_to(
        {"type": "message", "client_id": "q1", "text": "How do I get a refund for a return?"}
    )
    ack = await receive_until(visitor, "ack")
    kb = (await receive_message(visitor, sender="bot", timeout=30))["message"]
    assert "30 days of delivery" in kb["text"]

    # Not in the knowledge base: the worker asks the providers over HTTP, one of them fails.
    await visitor.send_json_to(
        {"type": "message", "client_id": "q2", "text": "Can I return a gift card I bought?"}
    )
    await receive_until(visitor, "ack")
    ai = (await receive_message(visitor, sender="bot", timeout=30))["message"]
    assert ai["text"] == "Unused gift cards can be returned within 30 days."
    assert {c["slug"] for c in fake_openai.calls()} == {"a", "b"}

    outcomes = [
        d.outcome
        async for d in BotDecision.objects.filter(conversation_id=ack["conversation_id"]).order_by(
            "pk"
        )
    ]
    assert outcomes == [DecisionOutcome.KB_ANSWER, DecisionOutcome.AI_ANSWER]
    await visitor.disconnect()
