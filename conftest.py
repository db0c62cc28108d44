"""Fixtures shared by every app's tests."""

import pytest

from accounts.tests.factories import AgentFactory, WorkspaceFactory


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
