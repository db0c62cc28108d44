"""Group commit: the sends that arrive while one batch is being written form the next.

One :class:`MessageWriter` per event loop (per ASGI process) owns one database thread.
A consumer awaits :meth:`MessageWriter.store`; the writer hands everything pending to
:func:`chat.message_store.messages_store` in one transaction, resolves each sender's
future after the commit (so the ack still means "kept"), then fans the events out: one
channel-layer event per group per batch, in commit order, the PUBLISHes of every batch
committed meanwhile in one Redis round trip (:func:`chat.realtime.publish_batch`).

At low load a batch is one message and the latency is one transaction; under load the
cost per message falls because PostgreSQL commits (and fsyncs) once per batch.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    close_old_connections,
    transaction,
)

from .errors import ChatError
from .message_store import Event, NewMessage, Stored, messages_store
from .realtime import OUTBOX_BATCH, publish_batch

log = logging.getLogger(__name__)

MAX_BATCH = 256


def _write(items: list[NewMessage]) -> tuple[list[Stored], list[Event]]:
    """Runs in the writer's thread: the batch in one transaction, else one by one."""
    close_old_connections()
    try:
        try:
            with transaction.atomic():
                return messages_store(items)
        except (DatabaseError, ValueError) as exc:
            # A client id racing in from another process, a deadlock, or one item the
            # database refuses: the batch rolled back whole; store the items one by one
            # so one bad apple spoils nothing.
            log.info("batch of %d retried item by item: %s", len(items), exc.__class__.__name__)
        results: list[Stored] = []
        events: list[Event] = []
        for item in items:
            r, e = _write_one(item)
            results += r
            events += e
        return results, events
    finally:
        close_old_connections()


def _write_one(item: NewMessage) -> tuple[list[Stored], list[Event]]:
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return messages_store([item])
        except IntegrityError:
            if attempt == 2:
                raise
        except (DataError, ValueError):
            # This item's own data (a value the column or the UTF-8 encoding refuses):
            # only its sender hears of it, nothing of it was kept. An outage
            # (OperationalError) still fails the batch, and its senders resend.
            log.exception("a message the database refused (client id %r)", item.client_id)
            break
    return [Stored(error=ChatError("not_stored", "The message could not be stored."))], []


class MessageWriter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = self._loop = loop
        self._pending: list[tuple[NewMessage, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="message-writer")
        self._fanout: asyncio.Queue = asyncio.Queue()
        self._tasks = [loop.create_task(self._write_loop()), loop.create_task(self._fanout_loop())]

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    def submit(self, item: NewMessage) -> asyncio.Future:
        """Queue ``item`` for the next batch (in call order); the future gets its Stored."""
        future = self._loop.create_future()
        self._pending.append((item, future))
        self._wake.set()
        return future

    async def store(self, item: NewMessage) -> Stored:
        return await self.submit(item)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[: len(batch)]
                try:
                    results, events = await self._loop.run_in_executor(
                        self._executor, _write, [item for item, _ in batch]
                    )
                except Exception as exc:
                    log.exception("writing a batch of %d messages failed", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                # Fan-out is queued before the acks are released, so a sender never sees
                # its ack overtaken by a later batch's events.
                self._fanout.put_nowait(events)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _fanout_loop(self) -> None:
        layer = get_channel_layer()
        while True:
            sends = await self._fanout.get()
            # Every batch that committed meanwhile goes out together, in commit order.
            while not self._fanout.empty() and len(sends) < OUTBOX_BATCH:
                sends += self._fanout.get_nowait()
            try:
                await publish_batch(layer, sends)
            except Exception:
                # Stored and acked already; clients resync by seq. Never silent, and the
                # next batches still go out.
                log.exception("fan-out of %d events failed", len(sends))


_writers: dict[int, MessageWriter] = {}


def get_writer() -> MessageWriter:
    """The writer of the running event loop (one per ASGI process; tests make many loops)."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(id(loop))
    if writer is None or writer.loop is not loop:
        for key, old in list(_writers.items()):
            if old.loop.is_closed():
                old.close()
                del _writers[key]
        writer = _writers[id(loop)] = MessageWriter(loop)
    return writer
