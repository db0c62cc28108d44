"""``manage.py seed_demo``: the demo workspace and its users, safe to run again."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from guardian.conf import settings as guardian_settings

from accounts.models import AgentProfile, Team, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # Seeding sets three passwords per run; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_twice_is_idempotent(monkeypatch, settings, tmp_path):
    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "demo-pass-from-env")
    settings.VAR_DIR = tmp_path
    first = seed()
    workspace = Workspace.objects.get()
    key = workspace.widget_key
    second = seed()

    assert Workspace.objects.count() == 1
    assert Workspace.objects.get().widget_key == key
    assert "created" in first and "kept" in second
    assert key in second
    assert Team.objects.filter(workspace=workspace).count() == 1
    User = get_user_model()
    humans = User.objects.exclude(username=guardian_settings.ANONYMOUS_USER_NAME)  # guardian's row
    assert sorted(humans.values_list("username", flat=True)) == ["admin", "agent1", "agent2"]
    agents = AgentProfile.objects.select_related("user").order_by("user__username")
    assert [a.user.username for a in agents] == ["admin", "agent1", "agent2"]
    assert all(a.workspace == workspace for a in agents)
    assert all(a.teams.count() == 1 for a in agents)
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert AgentProfile.objects.get(user=admin).is_workspace_admin
    agent1 = User.objects.get(username="agent1")
    assert not agent1.is_superuser and not agent1.is_staff
    assert not (tmp_path / "demo_password").exists()  # the environment was used


def test_the_password_comes_from_the_environment(monkeypatch, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "first-pass-9")
    out = seed()
    assert "first-pass-9" in out and "HELPDESK_DEMO_PASSWORD" in out
    for username in ("admin", "agent1", "agent2"):
        assert authenticate(username=username, password="first-pass-9") is not None

    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "second-pass-9")
    seed()
    assert authenticate(username="agent1", password="second-pass-9") is not None
    assert authenticate(username="agent1", password="first-pass-9") is None


def test_without_the_environment_a_password_is_generated_once_and_kept(
    monkeypatch, settings, tmp_path
):
    monkeypatch.delenv("HELPDESK_DEMO_PASSWORD", raising=False)
    settings.VAR_DIR = tmp_path / "var"
    seed()
    password_file = tmp_path / "var" / "demo_password"
    password = password_file.read_text().strip()
    assert len(password) >= 12
    assert password_file.stat().st_mode & 0o077 == 0  # private to the owner
    seed()
    assert password_file.read_text().strip() == password
    assert authenticate(username="agent2", password=password) is not None


def test_seed_keeps_a_changed_workspace(monkeypatch, settings, tmp_path):
    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "demo-pass-from-env")
    settings.VAR_DIR = tmp_path
    seed()
    Workspace.objects.update(welcome_text="Hej!", allowed_origins="https://shop.example.com")
    seed()
    workspace = Workspace.objects.get()
    assert workspace.welcome_text == "Hej!"
    assert workspace.allowed_origins == "https://shop.example.com"
