"""Batched reads: many sockets asking the same question about different keys share a query.

Every widget's heartbeat asks "what is my conversation's newest seq?". Asked one socket at a
time that is one query per ping (20,000 widgets pinging every 25 s: 800 queries/s). A
:class:`BatchedLookup` gathers the keys asked while its previous query was running and
answers them all with one query, like the writer's group commit (chat.writer) does for
writes: at low load a batch is one key and costs what a single query costs; under load
the cost per key falls. The answer is read from the database as before, so it still
catches a broadcast the channel layer lost.

One batch is in flight per lookup and event loop (per ASGI process; tests make many
loops); it runs on the sockets' database threads (chat.db).
"""

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from .db import run_db

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _LoopState:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict = {}
        self.running = False


class BatchedLookup(Generic[K, V]):
    """``await lookup(key)`` is ``load([key, ...]).get(key, default)``, batched.

    ``load`` may map a key to an exception: that key's waiters get it raised.
    """

    def __init__(
        self, load: Callable[[list[K]], dict[K, V]], *, default: V, max_batch: int = 500
    ) -> None:
        self._load, self._default, self.max_batch = load, default, max_batch
        self._states: dict[int, _LoopState] = {}

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None or state.loop is not loop:
            for key, old in list(self._states.items()):
                if old.loop.is_closed():
                    del self._states[key]
            state = self._states[id(loop)] = _LoopState(loop)
        return state

    async def __call__(self, key: K) -> V:
        state = self._state()
        future = state.loop.create_future()
        state.pending.setdefault(key, []).append(future)
        if not state.running:
            state.running = True
            state.loop.create_task(self._drain(state))
        return await future

    async def _drain(self, state: _LoopState) -> None:
        try:
            while state.pending:
                keys = list(_first(state.pending, self.max_batch))
                waiting = {key: state.pending.pop(key) for key in keys}
                try:
                    found = await run_db(self._load, keys)
                except Exception as exc:  # every waiter hears of it; none hangs
                    log.warning("batched lookup of %d keys failed: %r", len(keys), exc)
                    for futures in waiting.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in waiting.items():
                    value = found.get(key, self._default)
                    for future in futures:
                        if future.done():
                            continue
                        if isinstance(value, BaseException):  # this key's own failure
                            future.set_exception(value)
                        else:
                            future.set_result(value)
        finally:
            state.running = False


def _first(keys: Iterable, n: int):
    for i, key in enumerate(keys):
        if i >= n:
            return
        yield key
