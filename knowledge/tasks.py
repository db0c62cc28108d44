"""Celery tasks of the bot: they take ids, load rows and call :mod:`knowledge.pipeline`.

Both are idempotent (see the pipeline), so late acknowledgement and retries are safe: a
worker that dies mid-task leaves the task to be redelivered, and a database hiccup is
retried with backoff. Provider failures are not task failures: the pipeline turns them
into a hand-off.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import pipeline

_RETRY = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 3,
    # Every provider has its own timeout (at most 120 s); this is the backstop.
    "soft_time_limit": 240,
    "time_limit": 300,
}


@shared_task(name="knowledge.bot_reply", **_RETRY)
def bot_reply_task(message_id: int) -> str | None:
    """Answer visitor message ``message_id`` (enqueued when it commits)."""
    decision = pipeline.bot_reply(message_id=message_id)
    return decision.outcome if decision else None


@shared_task(name="knowledge.assist_suggest", **_RETRY)
def assist_suggest_task(agent_id: int, conversation_id: int, channel_name: str) -> str | None:
    """Compute a suggested reply and send it to the agent socket ``channel_name`` only."""
    decision = pipeline.assist_suggest(
        agent_id=agent_id, conversation_id=conversation_id, channel_name=channel_name
    )
    return decision.outcome if decision else None
