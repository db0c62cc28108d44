"""A circuit breaker per AI provider, shared by every process through Redis.

States (per provider):

* **closed**: calls go through. Each failure or timeout adds one to a counter of
  consecutive failures; a success resets it. At ``HELPDESK_BREAKER_FAILURES`` (3) the
  breaker **opens**.
* **open**: the provider is skipped, without a network call, for
  ``HELPDESK_BREAKER_COOLDOWN_SECONDS`` (30 s).
* **half-open**: after the cool-down, exactly one caller (across all processes) is let
  through as a probe, holding a lease of ``HELPDESK_BREAKER_PROBE_LEASE_SECONDS`` (60 s,
  longer than any provider timeout) so that a probe that dies with its process cannot
  wedge the breaker. The probe's success closes the breaker; its failure opens it again for
  another cool-down. Other callers keep skipping while the probe is out.

In production the state is a Redis hash per provider, changed only by Lua scripts so
concurrent workers never lose an update. With no ``REDIS_URL`` (the embedded default,
one process) the same rules run in process memory. If Redis cannot be reached the
breaker lets calls through (it fails open) and says so in the log: a provider's own
timeout still bounds every call.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# Keys vanish when a provider has not been used for this long (and tests leave no litter).
KEY_TTL_SECONDS = 7 * 24 * 3600


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed / open / half_open
    failures: int = 0
    opened_at: float | None = None
    retry_at: float | None = None  # open: end of cool-down; half-open: end of probe lease

    @property
    def label(self) -> str:
        if self.state == OPEN and self.retry_at is not None and _now() >= self.retry_at:
            return "open (probe due)"
        return {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half-open (probing)"}[self.state]


def _params() -> tuple[int, float, float]:
    return (
        int(getattr(settings, "HELPDESK_BREAKER_FAILURES", 3)),
        float(getattr(settings, "HELPDESK_BREAKER_COOLDOWN_SECONDS", 30.0)),
        float(getattr(settings, "HELPDESK_BREAKER_PROBE_LEASE_SECONDS", 60.0)),
    )


class Backend(Protocol):
    def allow(self, provider_id: int) -> bool: ...
    def record(self, provider_id: int, ok: bool) -> None: ...
    def state(self, provider_id: int) -> BreakerState: ...
    def reset(self, provider_id: int) -> None: ...


# --- in process (embedded default) -------------------------------------------------------------


class MemoryBackend:
    """The same rules as the Redis backend, for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[int, dict] = {}

    def allow(self, provider_id: int) -> bool:
        _, _, lease = _params()
        with self._lock:
            s = self._states.get(provider_id)
            if s is None or s["state"] == CLOSED:
                return True
            now = _now()
            if now < s["retry_at"]:
                return False
            s.update(state=HALF_OPEN, retry_at=now + lease)
            return True

    def record(self, provider_id: int, ok: bool) -> None:
        threshold, cooldown, _ = _params()
        with self._lock:
            if ok:
                self._states.pop(provider_id, None)
                return
            s = self._states.setdefault(
                provider_id, {"state": CLOSED, "failures": 0, "opened_at": None, "retry_at": 0.0}
            )
            s["failures"] += 1
            if s["state"] == HALF_OPEN or s["failures"] >= threshold:
                now = _now()
                s.update(state=OPEN, opened_at=now, retry_at=now + cooldown)

    def state(self, provider_id: int) -> BreakerState:
        with self._lock:
            s = self._states.get(provider_id)
            if s is None:
                return BreakerState(CLOSED)
            return BreakerState(
                s["state"],
                s["failures"],
                s["opened_at"],
                s["retry_at"] if s["state"] != CLOSED else None,
            )

    def reset(self, provider_id: int) -> None:
        with self._lock:
            self._states.pop(provider_id, None)


# --- Redis (production: shared by every process) -----------------------------------------------

# KEYS[1]: the provider's hash. ARGV: now, probe lease. Returns 1 (call), 0 (skip).
_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or state == 'closed' then return 1 end
local now = tonumber(ARGV[1])
local retry_at = tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0')
if now < retry_at then return 0 end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'retry_at', tostring(now + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS[1]: the provider's hash. ARGV: now, threshold, cool-down, ttl. Returns the new state.
_FAIL = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local now = tonumber(ARGV[1])
if state == 'half_open' or failures >= tonumber(ARGV[2]) then
  state = 'open'
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1],
             'retry_at', tostring(now + tonumber(ARGV[3])))
elseif state ~= 'open' then
  redis.call('HSET', KEYS[1], 'state', 'closed')
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return state
"""


class RedisBackend:
    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self.prefix = prefix
        self._allow = self.client.register_script(_ALLOW)
        self._fail = self.client.register_script(_FAIL)

    def key(self, provider_id: int) -> str:
        return f"{self.prefix}:ai-breaker:{provider_id}"

    def allow(self, provider_id: int) -> bool:
        _, _, lease = _params()
        return bool(
            self._allow(keys=[self.key(provider_id)], args=[_now(), lease, KEY_TTL_SECONDS])
        )

    def record(self, provider_id: int, ok: bool) -> None:
        if ok:
            self.client.delete(self.key(provider_id))
            return
        threshold, cooldown, _ = _params()
        self._fail(
            keys=[self.key(provider_id)], args=[_now(), threshold, cooldown, KEY_TTL_SECONDS]
        )

    def state(self, provider_id: int) -> BreakerState:
        raw = self.client.hgetall(self.key(provider_id))
        if not raw:
            return BreakerState(CLOSED)
        state = raw.get("state", CLOSED)
        return BreakerState(
            state,
            int(raw.get("failures", 0)),
            float(raw["opened_at"]) if raw.get("opened_at") else None,
            float(raw["retry_at"]) if raw.get("retry_at") and state != CLOSED else None,
        )

    def reset(self, provider_id: int) -> None:
        self.client.delete(self.key(provider_id))


# --- the module's interface ---------------------------------------------------------------------

_backend: Backend | None = None
_backend_lock = threading.Lock()


def backend() -> Backend:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                url = getattr(settings, "REDIS_URL", "")
                prefix = getattr(settings, "HELPDESK_KEY_PREFIX", "helpdesk")
                _backend = RedisBackend(url, prefix) if url else MemoryBackend()
    return _backend


def breaker_allow(provider_id: int) -> bool:
    """May this provider be called now? In half-open state, True for one probe only."""
    try:
        return backend().allow(provider_id)
    except Exception as exc:  # Redis down: degrade to "always call", loudly
        log.warning("circuit breaker unavailable (%s); calling provider %s", exc, provider_id)
        return True


def breaker_record(provider_id: int, *, ok: bool) -> None:
    """Count a call's outcome: success closes the breaker, failures open it."""
    try:
        backend().record(provider_id, ok)
    except Exception as exc:
        log.warning("circuit breaker unavailable (%s); outcome not recorded", exc)


def breaker_state(provider_id: int) -> BreakerState | None:
    """The provider's breaker as stored, or None if the store cannot be read."""
    try:
        return backend().state(provider_id)
    except Exception as exc:
        log.warning("circuit breaker unavailable (%s)", exc)
        return None


def breaker_reset(provider_id: int) -> None:
    backend().reset(provider_id)
