"""The one place that talks to the channel layer.

Services call :func:`broadcast_on_commit`; nothing is sent before the transaction that
wrote the data commits, so a client never hears of a row that could still roll back.
A lost broadcast only delays a client: every client resumes from its last sequence
number and heartbeats tell it when it is behind.
"""

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Coroutine
from typing import Any

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


async def _layer_call(layer, to: str, event: dict) -> None:
    """``to`` is a group, or one socket's channel name when it starts with ``channel:``."""
    if to.startswith("channel:"):
        await layer.send(to.removeprefix("channel:"), event)
    else:
        await layer.group_send(to, event)


class _Outbox:
    """The worker threads' broadcasts, sent on the server's loop one after another in the
    order they were committed. A task runs only while there is something to send."""

    def __init__(self) -> None:
        self.pending: deque[tuple[str, dict]] = deque()
        self.sending = False

    def put(self, to: str, event: dict) -> None:  # on the loop
        self.pending.append((to, event))
        if not self.sending:
            self.sending = True
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        layer = get_channel_layer()
        try:
            while self.pending:
                count = min(len(self.pending), OUTBOX_BATCH)
                await publish_batch(layer, [self.pending.popleft() for _ in range(count)])
        finally:
            self.sending = False


# Events per pipeline: one Redis round trip for this many PUBLISHes.
OUTBOX_BATCH = 500


def coalesce(items: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """One channel-layer event per group (or channel), keeping each group's events in order.

    Every event a consumer receives costs it a few turns of the event loop (Channels
    dispatches one at a time), so a console that hears of 200 assignments in one batch
    must get them as one ``chat.batch``, not 200 events.
    """
    by_group: dict[str, list[dict]] = {}
    for to, event in items:
        events = event["events"] if event["type"] == "chat.batch" else [event]
        by_group.setdefault(to, []).extend(events)
    return [
        (to, events[0] if len(events) == 1 else {"type": "chat.batch", "events": events})
        for to, events in by_group.items()
    ]


async def publish_batch(layer, items: list[tuple[str, dict]]) -> int:
    """Send ``items`` ((to, event) pairs, see :func:`_layer_call`), coalesced per group,
    each group's events in order.

    With the pub/sub layer the PUBLISHes go out in one pipeline per Redis shard: one round
    trip for the lot. Sent one by one, each waits for its reply, and the reply for the
    event loop's next turn: under load a few hundred events a second per process, far
    fewer than a busy writer commits (docs/performance.md). The layer's own shard lock is
    held, as its ``group_send`` does. Returns how many were pipelined (0 for other layers,
    which get one call per event).
    """
    items = coalesce(items)
    try:
        loop_layer = layer._get_layer()
        loop_layer._get_shard, loop_layer._get_group_channel_name  # noqa: B018
    except AttributeError:  # the core layer, the in-memory layer
        for to, event in items:
            try:
                await _layer_call(layer, to, event)
            except Exception:
                log.exception("broadcast to %s failed (clients will resync): %s", to, event["type"])
        return 0
    shards: dict[int, tuple[Any, list[tuple[str, bytes]]]] = {}
    for to, event in items:
        if to.startswith("channel:"):
            name = to.removeprefix("channel:")
        else:
            name = loop_layer._get_group_channel_name(to)
        try:
            payload = layer.serialize(event)
        except Exception:  # one bad event must not stop the others (nor the sender's loop)
            log.exception("broadcast to %s not sent: %s", to, event.get("type"))
            continue
        shard = loop_layer._get_shard(name)
        shards.setdefault(id(shard), (shard, []))[1].append((name, payload))
    for shard, messages in shards.values():
        try:
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for name, payload in messages:
                    pipe.publish(name, payload)
                await pipe.execute()
        except Exception:
            log.exception("a broadcast of %d events failed (clients will resync)", len(messages))
    return len(items)


_outboxes: dict[int, tuple[asyncio.AbstractEventLoop, _Outbox]] = {}


def _outbox_put(to: str, event: dict) -> None:
    loop = asyncio.get_running_loop()
    entry = _outboxes.get(id(loop))
    if entry is None or entry[0] is not loop:
        for key, (old, _) in list(_outboxes.items()):
            if old.is_closed():
                del _outboxes[key]
        entry = _outboxes[id(loop)] = (loop, _Outbox())
    entry[1].put(to, event)


def _send(to: str, event: dict[str, Any]) -> None:
    """Send ``event`` to ``to`` (see :func:`_layer_call`) from synchronous code."""
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
            loop.call_soon_threadsafe(_outbox_put, to, event)
            return
        except RuntimeError:  # the loop closed meanwhile
            pass
    try:  # no server loop in this process (Celery worker, management command)
        run_on_layer_loop(_layer_call(layer, to, event))
    except Exception:
        # The data is committed; clients catch up by sequence number. Say so loudly.
        log.exception("broadcast to %s failed (clients will resync): %s", to, event["type"])


def send_to_socket(channel_name: str, event: dict[str, Any]) -> None:
    """Send ``event`` to one consumer (an agent's socket) from synchronous code."""
    _send(f"channel:{channel_name}", event)


_layer_loop: tuple[int, asyncio.AbstractEventLoop] | None = None
_layer_loop_lock = threading.Lock()


def run_on_layer_loop(coro: Coroutine, timeout: float = 10.0) -> Any:
    """Run a channel-layer call from a process with no server loop; wait for its result.

    One event loop, on a thread of its own, serves the whole process (per pid: a forked
    Celery child starts its own). ``async_to_sync`` would run each call on a new loop, and
    the Redis layers keep their connections per loop: a new Redis connection per event.
    """
    global _layer_loop
    with _layer_loop_lock:
        if _layer_loop is None or _layer_loop[0] != os.getpid() or _layer_loop[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer", daemon=True).start()
            _layer_loop = (os.getpid(), loop)
        loop = _layer_loop[1]
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


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
