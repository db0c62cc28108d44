"""The one place that talks to the channel layer.

Services call :func:`broadcast_on_commit`; nothing is sent before the transaction that
wrote the data commits, so a client never hears of a row that could still roll back.
A lost broadcast only delays a client: every client resumes from its last sequence
number and heartbeats tell it when it is behind.
"""

import asyncio
import logging
from collections import deque
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def conversation_group(conversation_id: int) -> str:
    return f"conv.{conversation_id}"


def agent_group(agent_id: int) -> str:
    return f"agent.{agent_id}"


def visitor_group(visitor_id: int) -> str:
    return f"visitor.{visitor_id}"


def workspace_agents_group(workspace_id: int) -> str:
    return f"ws.{workspace_id}.agents"


def workspace_visitors_group(workspace_id: int) -> str:
    return f"ws.{workspace_id}.visitors"


_main_loop: asyncio.AbstractEventLoop | None = None


def remember_event_loop() -> None:
    """Called by consumers: the loop the channel layer (and its sockets) lives on."""
    global _main_loop
    _main_loop = asyncio.get_running_loop()


class _Outbox:
    """The worker threads' broadcasts, sent on the server's loop one after another in the
    order they were committed. A task runs only while there is something to send."""

    def __init__(self) -> None:
        self.pending: deque[tuple[str, dict]] = deque()
        self.sending = False

    def put(self, group: str, event: dict) -> None:  # on the loop
        self.pending.append((group, event))
        if not self.sending:
            self.sending = True
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        layer = get_channel_layer()
        try:
            while self.pending:
                group, event = self.pending.popleft()
                try:
                    await layer.group_send(group, event)
                except Exception:
                    log.exception(
                        "broadcast to %s failed (clients will resync): %s", group, event["type"]
                    )
        finally:
            self.sending = False


_outboxes: dict[int, tuple[asyncio.AbstractEventLoop, _Outbox]] = {}


def _outbox_put(group: str, event: dict) -> None:
    loop = asyncio.get_running_loop()
    entry = _outboxes.get(id(loop))
    if entry is None or entry[0] is not loop:
        for key, (old, _) in list(_outboxes.items()):
            if old.is_closed():
                del _outboxes[key]
        entry = _outboxes[id(loop)] = (loop, _Outbox())
    entry[1].put(group, event)


def _send(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _main_loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        # From a worker thread (database thread, message writer, eager task): hand the
        # send to the server's loop and go on. Waiting for it would hold the thread (the
        # writer: every batch behind it) for a loop turn and a Redis round trip per event.
        # The in-memory layer is not thread-safe, and a private loop per call would not
        # reach its sockets.
        try:
            loop.call_soon_threadsafe(_outbox_put, group, event)
            return
        except RuntimeError:  # the loop closed meanwhile
            pass
    try:  # no server loop in this process (Celery worker, management command)
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        # The data is committed; clients catch up by sequence number. Say so loudly.
        log.exception("broadcast to %s failed (clients will resync): %s", group, event["type"])


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` to ``group`` once the current transaction commits (at once if none)."""
    transaction.on_commit(lambda: _send(group, event))


async def broadcast_now(group: str, event: dict[str, Any]) -> None:
    """Send an event that touches no data (typing) straight from a consumer."""
    layer = get_channel_layer()
    try:
        await layer.group_send(group, event)
    except Exception:
        log.exception("broadcast to %s failed: %s", group, event["type"])
