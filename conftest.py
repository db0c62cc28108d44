"""Fixtures shared by every app's tests."""

import pytest

from accounts.tests.factories import AgentFactory, WorkspaceFactory

# asgi_server / asgi_server_factory: real daphne processes (see that module's docstring).
# fake_openai / celery_eager: the AI-reply tests' fixtures (knowledge/tests/ai_support.py).
pytest_plugins = ["helpdesk.tests.live_server", "knowledge.tests.ai_support"]


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(allowed_origins="https://shop.example.com")


@pytest.fixture
def agent(workspace):
    return AgentFactory(workspace=workspace)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Give every test its own channel-layer object.

    pytest-asyncio runs each test on a new event loop, but Channels caches one layer per
    process, and channels-redis keeps per-loop state on it: a per-channel cleanup lock
    whose waiter is cancelled when a test's sockets close is never deleted, stays bound to
    that dead loop, and the next test's consumers die with "Lock ... is bound to a
    different event loop". A server runs one loop for its lifetime, so this is a test-only
    concern.
    """
    yield
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_db_pools_before_teardown(django_db_setup, django_db_blocker):
    """Close psycopg pools before pytest-django drops the test database.

    Pooled connections opened by worker threads (database_sync_to_async, the message
    writer) stay open in the pool; dropping a database with open sessions fails.
    """
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for conn in connections.all():  # pools are per process, any thread's wrapper will do
            if hasattr(conn, "close_pool"):
                conn.close_pool()
        # Connections still held by worker threads of finished event loops would block
        # DROP DATABASE; this is the test database, so end them.
        conn = connections["default"]
        if conn.vendor == "postgresql":
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            conn.close()


@pytest.fixture(autouse=True)
def _fresh_widget_cache():
    """Each test starts without the previous test's cached workspaces: their rows were
    rolled back without a save signal (chat.widget_cache)."""
    from chat import widget_cache

    widget_cache.clear()
    yield
