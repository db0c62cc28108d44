"""Create the demo workspace and its users; running it again keeps what is there.

A new demo workspace also gets what shows off routing and the agent's day (docs/routing.md):
two teams offered as departments, a routing rule, shared canned replies, automatic replies,
labels, example business hours (switched off) and the least-busy strategy. All of it is
created with the workspace only: an operator's later changes or deletions are never undone.
"""

import os
import secrets
from datetime import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import (
    AgentProfile,
    BotMode,
    BusinessHours,
    RoutingRule,
    RoutingStrategy,
    Team,
    Workspace,
)

SALES, SUPPORT = "Sales", "Support"
DEMO_USERS = [
    # username, display name, superuser, team
    ("admin", "Admin", True, SUPPORT),
    ("agent1", "Alice (agent1)", False, SALES),
    ("agent2", "Bob (agent2)", False, SUPPORT),
]
# Shared canned replies: typed as /shortcut in the console's reply box.
DEMO_CANNED = [
    (
        "greet",
        "Hi {visitor_name}, I'm {agent_name} from {workspace_name}. How can I help you today?",
    ),
    ("thanks", "Thank you for chatting with us, {visitor_name}! Anything else I can do?"),
    (
        "refund",
        "I'm sorry about that. I have started your refund; it shows on your statement "
        "within 5 working days.",
    ),
]
# Automatic replies: (name, keywords, reply); keywords match whole words (any script with
# spaces) or anywhere (Chinese), see chat/autoreply.py.
DEMO_AUTO_REPLIES = [
    (
        "Opening hours",
        "opening hours, are you open, open today, 营业时间, 几点开门",
        "We are open Monday to Friday, 09:00-17:00. Outside those hours, leave a message "
        "and we will answer by email.",
    ),
    (
        "Shipping",
        "shipping, delivery, 运费, 发货",
        "Orders ship within 2 working days; shipping is free over €40. You get a tracking "
        "link by email as soon as your parcel leaves.",
    ),
]
DEMO_LABELS = [("VIP", "#b45309"), ("refund", "#dc2626"), ("bug", "#7c3aed")]


def _demo_password() -> tuple[str, str]:
    """The password from HELPDESK_DEMO_PASSWORD, or one generated once and kept in var/."""
    from_env = os.environ.get("HELPDESK_DEMO_PASSWORD")
    if from_env:
        return from_env, "HELPDESK_DEMO_PASSWORD"
    path = Path(settings.VAR_DIR) / "demo_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip(), str(path)


class Command(BaseCommand):
    help = "Seed the demo workspace (admin, agent1, agent2) and print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def handle(self, *args, base_url: str, **options):
        password, source = _demo_password()
        workspace, created = Workspace.objects.get_or_create(
            name="Demo workspace",
            defaults={
                "allowed_origins": "http://127.0.0.1:8000\nhttp://localhost:8000",
                # The bot answers from the seeded knowledge base (no AI provider needed).
                "bot_mode": BotMode.ANSWER_FIRST,
                "routing_strategy": RoutingStrategy.LEAST_BUSY,
                # On in the demo so the widget shows the choice; off by default elsewhere.
                "ask_department": True,
            },
        )
        if created:
            teams = _seed_routing_demo(workspace)
        else:
            teams = {team.name: team for team in Team.objects.filter(workspace=workspace)}
        User = get_user_model()
        for username, display, is_super, team_name in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": is_super, "is_superuser": is_super},
            )
            user.set_password(password)
            user.save()
            agent, agent_created = AgentProfile.objects.get_or_create(
                user=user,
                defaults={
                    "workspace": workspace,
                    "display_name": display,
                    "is_workspace_admin": is_super,
                },
            )
            if agent_created and team_name in teams:
                agent.teams.add(teams[team_name])
        from knowledge.services import kb_seed_demo

        kb_articles = kb_seed_demo(workspace=workspace)
        state = "created" if created else "kept"
        self.stdout.write(
            f"\nDemo workspace {state}: widget key {workspace.widget_key}\n"
            f"  demo page  {base_url}/\n"
            f"  console    {base_url}/console/   (agent1 / agent2)\n"
            f"  admin      {base_url}/admin/     (admin)\n"
            f"  help       {base_url}/help/{workspace.widget_key}/   ({kb_articles} articles)\n"
            f"  password   {password}   (from {source})\n"
            f"  routing    departments Sales (agent1) and Support (agent2); canned replies "
            f"/greet /thanks /refund; see docs/routing.md\n"
        )


def _seed_routing_demo(workspace: Workspace) -> dict[str, Team]:
    """The routing demo of a new workspace; returns its teams by name."""
    from chat.models import AutoReplyRule, CannedReply, Label

    teams = {
        name: Team.objects.create(
            workspace=workspace,
            name=name,
            is_department=True,
            routing_strategy=RoutingStrategy.LEAST_BUSY,
        )
        for name in (SALES, SUPPORT)
    }
    RoutingRule.objects.create(
        workspace=workspace, position=0, url_pattern="*/pricing*", team=teams[SALES]
    )
    CannedReply.objects.bulk_create(
        CannedReply(workspace=workspace, shortcut=shortcut, text=text)
        for shortcut, text in DEMO_CANNED
    )
    AutoReplyRule.objects.bulk_create(
        AutoReplyRule(workspace=workspace, name=name, position=i, pattern=pattern, reply=reply)
        for i, (name, pattern, reply) in enumerate(DEMO_AUTO_REPLIES)
    )
    Label.objects.bulk_create(
        Label(workspace=workspace, name=name, color=color) for name, color in DEMO_LABELS
    )
    # An example week for the admin; business_hours_enabled stays off, so the demo is
    # never closed when someone tries it in the evening.
    BusinessHours.objects.bulk_create(
        BusinessHours(workspace=workspace, weekday=day, opens_at=time(9), closes_at=time(17))
        for day in range(5)
    )
    return teams
