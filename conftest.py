"""Fixtures shared by every app's tests."""

import pytest

from accounts.tests.factories import AgentFactory, WorkspaceFactory


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(allowed_origins="https://shop.example.com")


@pytest.fixture
def agent(workspace):
    return AgentFactory(workspace=workspace)
