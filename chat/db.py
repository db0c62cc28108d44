"""The sockets' database threads.

Channels' ``database_sync_to_async`` runs every call of a process on one thread (it must
stay thread-sensitive: Django's connections would otherwise follow the async context into
other threads). One thread serialises every hello, ping and first message of thousands of
sockets behind each other's round trips. Instead, consumers call the database through a
small pool of threads of their own (``HELPDESK_DB_THREADS``, default 4; 1 with SQLite),
each with its own connection from the psycopg pool; ``run_in_executor`` does not carry the
async context across, so nothing is shared between threads. Messages in an existing
conversation take the group-commit writer instead (chat.writer).

Each socket still awaits its calls one at a time, so frames of one socket keep their order.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

T = TypeVar("T")
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.HELPDESK_DB_THREADS, thread_name_prefix="socket-db"
        )
    return _executor


def _call(fn: Callable[..., T], args, kwargs) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()  # back to the pool: CONN_MAX_AGE is 0


async def run_db(fn: Callable[..., T], *args, **kwargs) -> T:
    """Await ``fn(*args, **kwargs)`` run on one of the sockets' database threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), _call, fn, args, kwargs)


def db_call(fn: Callable[..., T]) -> Callable[..., Any]:
    """Decorate a sync function that uses the ORM; await it from a consumer."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs) -> T:
        return await run_db(fn, *args, **kwargs)

    return wrapper
