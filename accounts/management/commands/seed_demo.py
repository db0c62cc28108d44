"""Create the demo workspace and its users; running it again keeps what is there."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import AgentProfile, BotMode, Team, Workspace

DEMO_USERS = [
    # username, display name, superuser
    ("admin", "Admin", True),
    ("agent1", "Alice (agent1)", False),
    ("agent2", "Bob (agent2)", False),
]


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
            },
        )
        team, _ = Team.objects.get_or_create(workspace=workspace, name="Support")
        User = get_user_model()
        for username, display, is_super in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": is_super, "is_superuser": is_super},
            )
            user.set_password(password)
            user.save()
            agent, _ = AgentProfile.objects.get_or_create(
                user=user,
                defaults={
                    "workspace": workspace,
                    "display_name": display,
                    "is_workspace_admin": is_super,
                },
            )
            agent.teams.add(team)
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
        )
