"""What the production settings ask of PostgreSQL sessions."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_sessions_run_without_jit():
    """JIT compiled the writer's locking read of a batch for 34 ms (docs/performance.md)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)


def test_a_database_url_may_set_its_own_options(monkeypatch):
    import importlib

    import helpdesk.settings as project_settings

    monkeypatch.setenv(
        "DATABASE_URL", "postgis://u:p@127.0.0.1:5432/d?options=-c%20statement_timeout%3D5000"
    )
    try:
        options = importlib.reload(project_settings).DATABASES["default"]["OPTIONS"]
    finally:
        monkeypatch.undo()
        importlib.reload(project_settings)
    assert options["options"] == "-c statement_timeout=5000"
    assert options["pool"]["max_size"] >= 1
