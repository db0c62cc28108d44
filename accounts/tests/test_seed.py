"""``manage.py seed_demo``: the demo workspace and its users, safe to run again."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from guardian.conf import settings as guardian_settings

from accounts.models import (
    AgentProfile,
    BusinessHours,
    RoutingRule,
    RoutingStrategy,
    Team,
    Workspace,
)
from chat.models import AutoReplyRule, CannedReply, Label

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
    assert sorted(Team.objects.filter(workspace=workspace).values_list("name", flat=True)) == [
        "Sales",
        "Support",
    ]
    User = get_user_model()
    humans = User.objects.exclude(username=guardian_settings.ANONYMOUS_USER_NAME)  # guardian's row
    assert sorted(humans.values_list("username", flat=True)) == ["admin", "agent1", "agent2"]
    agents = AgentProfile.objects.select_related("user").order_by("user__username")
    assert [a.user.username for a in agents] == ["admin", "agent1", "agent2"]
    assert all(a.workspace == workspace for a in agents)
    assert [list(a.teams.values_list("name", flat=True)) for a in agents] == [
        ["Support"],  # admin
        ["Sales"],  # agent1
        ["Support"],  # agent2
    ]
    # The routing demo was made once, with the workspace, not again.
    assert CannedReply.objects.filter(workspace=workspace).count() == 3
    assert AutoReplyRule.objects.filter(workspace=workspace).count() == 2
    assert Label.objects.filter(workspace=workspace).count() == 3
    assert RoutingRule.objects.filter(workspace=workspace).count() == 1
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


def test_new_workspace_shows_routing_and_the_agents_day(monkeypatch, settings, tmp_path):
    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "demo-pass-from-env")
    settings.VAR_DIR = tmp_path
    seed()
    workspace = Workspace.objects.get()
    assert workspace.routing_strategy == RoutingStrategy.LEAST_BUSY
    assert workspace.ask_department  # the demo shows the widget's department choice
    assert not workspace.business_hours_enabled  # example hours only: never closed
    assert BusinessHours.objects.filter(workspace=workspace).count() == 5
    sales, support = Team.objects.filter(workspace=workspace).order_by("name")
    assert sales.is_department and support.is_department
    rule = RoutingRule.objects.get(workspace=workspace)
    assert (rule.url_pattern, rule.team, rule.enabled) == ("*/pricing*", sales, True)
    canned = dict(CannedReply.objects.filter(workspace=workspace).values_list("shortcut", "text"))
    assert sorted(canned) == ["greet", "refund", "thanks"]
    assert "{visitor_name}" in canned["greet"] and "{agent_name}" in canned["greet"]
    assert not CannedReply.objects.filter(agent__isnull=False).exists()  # all shared
    assert sorted(Label.objects.values_list("name", flat=True)) == ["VIP", "bug", "refund"]

    from chat.autoreply import auto_reply_cache_clear, auto_reply_match

    auto_reply_cache_clear()  # bulk_create sends no post_save

    def answer(text: str) -> str | None:
        rule = auto_reply_match(workspace.pk, text)
        return rule.reply if rule else None

    assert "09:00" in answer("What are your opening hours?")
    assert "09:00" in answer("请问营业时间是？")
    assert "€40" in answer("How much is shipping?")
    assert answer("I can't open the bag") is None


def test_seed_keeps_an_operators_routing_changes(monkeypatch, settings, tmp_path):
    monkeypatch.setenv("HELPDESK_DEMO_PASSWORD", "demo-pass-from-env")
    settings.VAR_DIR = tmp_path
    seed()
    workspace = Workspace.objects.get()
    Workspace.objects.update(routing_strategy=RoutingStrategy.ROUND_ROBIN, ask_department=False)
    CannedReply.objects.filter(shortcut="refund").delete()
    CannedReply.objects.filter(shortcut="greet").update(text="Hello!")
    AutoReplyRule.objects.filter(name="Shipping").delete()
    Label.objects.filter(name="bug").delete()
    RoutingRule.objects.all().delete()
    Team.objects.filter(name="Sales").update(is_department=False)
    agent1 = AgentProfile.objects.get(user__username="agent1")
    agent1.teams.set([Team.objects.get(name="Support")])

    seed()
    workspace.refresh_from_db()
    assert workspace.routing_strategy == RoutingStrategy.ROUND_ROBIN
    assert not workspace.ask_department
    assert dict(CannedReply.objects.values_list("shortcut", "text")) == {
        "greet": "Hello!",
        "thanks": CannedReply.objects.get(shortcut="thanks").text,
    }
    assert list(AutoReplyRule.objects.values_list("name", flat=True)) == ["Opening hours"]
    assert sorted(Label.objects.values_list("name", flat=True)) == ["VIP", "refund"]
    assert not RoutingRule.objects.exists()
    assert not Team.objects.get(name="Sales").is_department
    assert list(agent1.teams.values_list("name", flat=True)) == ["Support"]
