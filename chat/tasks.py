"""Celery tasks of chat: they take ids, load rows and call a service."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import autoreply


@shared_task(
    name="chat.auto_reply",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=3,
    soft_time_limit=30,
    time_limit=60,
)
def auto_reply_task(message_id: int) -> int | None:
    """Send the automatic reply to visitor message ``message_id``; the reply's id, or None.

    Idempotent (the reply's client id is ``auto-<message_id>``), so redelivery is safe.
    """
    reply = autoreply.auto_reply_send(message_id=message_id)
    return reply.pk if reply else None
