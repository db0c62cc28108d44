"""A small per-process cache with a time limit, for rows read on every socket handshake.

Each ASGI process keeps its own copy; a change made in this process clears it at once (the
callers hook ``clear`` to the models' save/delete signals and to ``on_commit``), a change made
in another process shows after ``seconds`` at most.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class TimedCache(Generic[K, V]):
    """``get(key)`` returns ``load(key)``, computed at most once per ``seconds`` per key."""

    def __init__(self, load: Callable[[K], V], *, seconds: float, max_entries: int = 10_000):
        self._load, self.seconds, self.max_entries = load, seconds, max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        now = time.monotonic()
        entry = self._entries.get(key, _MISSING)
        if entry is not _MISSING and entry[0] > now:
            return entry[1]
        value = self._load(key)
        self.put(key, value, now=now)
        return value

    def put(self, key: K, value: V, *, now: float | None = None) -> None:
        """Store a value learnt elsewhere (an event), fresh for ``seconds``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._entries) >= self.max_entries:  # drop the expired ones first
                for stale in [k for k, (until, _) in self._entries.items() if until <= now]:
                    del self._entries[stale]
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now + self.seconds, value)

    def clear(self, key: K | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)
