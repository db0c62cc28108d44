"""Reset and seed the bench database; print what the load generator needs as JSON.

Run by bench/run.py with the production-mode environment of the bench stack
(DATABASE_URL pointing at ``helpdesk_bench``):

    python bench/seed.py --agents 20 --origin http://127.0.0.1:8200 ...

Refuses to touch any database whose name does not start with ``helpdesk_bench``. Chat
rows of earlier runs are truncated so every run starts from the same state; the
workspace, its agent users and fresh console sessions (one per agent, created directly
in the session store the way chat/tests/sockets.py does) are created or updated.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

import django  # noqa: E402
from django.apps import apps  # noqa: E402

if not apps.ready:  # already set up when bench/tests/ imports seed() under pytest
    django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from accounts.models import (  # noqa: E402
    AgentConnection,
    AgentProfile,
    BotMode,
    Presence,
    Workspace,
)
from chat.models import Attachment, Conversation, Message, PageView, Visitor  # noqa: E402
from knowledge.models import AIProvider, Article  # noqa: E402

WORKSPACE_NAME = "Bench workspace"
BOT_WORKSPACE_NAME = "Bench bot workspace"
AGENT_PREFIX = "bench-agent-"


def _truncate() -> None:
    tables = [
        m._meta.db_table
        for m in (Message, Attachment, PageView, Conversation, Visitor, AgentConnection, Session)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


@transaction.atomic
def seed(*, agents: int, origins: list[str]) -> dict:
    workspace, _ = Workspace.objects.get_or_create(name=WORKSPACE_NAME)
    workspace.allowed_origins = "\n".join(origins)
    workspace.upload_max_bytes = 10 * 1024 * 1024
    workspace.save()
    User = get_user_model()
    # Agents beyond this run's count go offline so routing only sees the connected ones.
    AgentProfile.objects.filter(workspace=workspace).update(presence=Presence.OFFLINE)
    out = []
    for i in range(agents):
        user, _ = User.objects.get_or_create(username=f"{AGENT_PREFIX}{i}")
        user.set_unusable_password()
        user.save()
        agent, _ = AgentProfile.objects.update_or_create(
            user=user,
            defaults={
                "workspace": workspace,
                "display_name": f"Bench agent {i}",
                "presence": Presence.ONLINE,
                # Robots: every conversation gets an assignee, whatever the load.
                "max_concurrent_chats": 30000,
            },
        )
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        out.append(
            {
                "index": i,
                "id": agent.pk,
                "cookie": f"{settings.SESSION_COOKIE_NAME}={store.session_key}",
            }
        )
    return {"widget_key": workspace.widget_key, "workspace_id": workspace.pk, "agents": out}


@transaction.atomic
def seed_bot(*, origins: list[str], provider_url: str, timeout: float) -> dict:
    """A workspace whose bot answers first, with no agents, no articles and one provider.

    With an empty knowledge base every question goes through Celery to the provider at
    ``provider_url`` (the fake OpenAI server the bench runs, with its fixed latency).
    """
    workspace, _ = Workspace.objects.get_or_create(name=BOT_WORKSPACE_NAME)
    workspace.allowed_origins = "\n".join(origins)
    workspace.bot_mode = BotMode.ANSWER_FIRST
    workspace.save()
    Article.objects.filter(workspace=workspace).delete()
    AIProvider.objects.filter(workspace=workspace).delete()
    AIProvider.objects.create(
        workspace=workspace,
        name="bench-fake",
        base_url=provider_url,
        model="bench-model",
        api_key="sk-bench-not-a-secret",
        timeout_seconds=timeout,
    )
    return {"widget_key": workspace.widget_key, "workspace_id": workspace.pk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--origin", action="append", default=[])
    parser.add_argument("--bot-provider-url", help="seed the bot workspace with this provider")
    parser.add_argument("--bot-provider-timeout", type=float, default=10.0)
    args = parser.parse_args()
    name = settings.DATABASES["default"]["NAME"]
    if not str(name).startswith("helpdesk_bench"):
        sys.exit(f"seed.py refuses to reset database {name!r}: not a bench database")
    _truncate()
    seeded = seed(agents=args.agents, origins=args.origin)
    if args.bot_provider_url:
        seeded["bot"] = seed_bot(
            origins=args.origin,
            provider_url=args.bot_provider_url,
            timeout=args.bot_provider_timeout,
        )
    print(json.dumps(seeded))


if __name__ == "__main__":
    main()
