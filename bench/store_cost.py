"""What one batch of the message writer costs: CPU and wall time per batch and per message.

Runs the writer's own batch function (:func:`chat.writer._write`: one transaction per
batch, the connection handed back to the pool after it) in one thread, on its own
workspace in the bench database, for a few batch sizes, and prints the CPU milliseconds
of the thread and the wall milliseconds per batch and per message. It separates the fixed
cost of a batch (its queries, their compilation, the transaction) from the cost of each
message, without sockets or a load generator:

    .venv/bin/python bench/store_cost.py                 # sizes 1 10 100, 200 batches each
    .venv/bin/python bench/store_cost.py --profile 1     # + cProfile of batches of 1

Needs a migrated bench database (``make bench`` creates ``helpdesk_bench``); refuses any
database whose name does not start with ``helpdesk_bench``. What it creates (one
workspace, one agent and its user, the conversations and messages) is deleted at the end.
"""

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
os.environ.setdefault("DATABASE_URL", "postgis://postgres:postgres@127.0.0.1:5432/helpdesk_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")  # the bench's
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))  # production mode

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import AgentProfile, Presence, Workspace  # noqa: E402
from chat.message_store import NewMessage  # noqa: E402
from chat.models import Conversation, SenderKind, Visitor  # noqa: E402
from chat.writer import _write  # noqa: E402

WORKSPACE_NAME = "Bench store-cost workspace"
AGENT_USERNAME = "bench-store-cost-agent"


def _setup(conversations: int) -> tuple[Workspace, list[Conversation]]:
    Workspace.objects.filter(name=WORKSPACE_NAME).delete()
    workspace = Workspace.objects.create(name=WORKSPACE_NAME)
    user, _ = get_user_model().objects.get_or_create(username=AGENT_USERNAME)
    agent, _ = AgentProfile.objects.update_or_create(
        user=user,
        defaults={"workspace": workspace, "presence": Presence.ONLINE},
    )
    visitors = Visitor.objects.bulk_create(
        Visitor(workspace=workspace, last_seen_at=timezone.now()) for _ in range(conversations)
    )
    return workspace, Conversation.objects.bulk_create(
        Conversation(workspace=workspace, visitor=v, assignee=agent) for v in visitors
    )


def _items(conversations, size: int, batch: str) -> list[NewMessage]:
    return [
        NewMessage(
            conversation_id=c.pk,
            workspace_id=c.workspace_id,
            sender_kind=SenderKind.VISITOR,
            client_id=f"b{batch}-{n}",
            text="x" * 100,
            visitor_id=c.visitor_id,
        )
        for n, c in enumerate(conversations[i % len(conversations)] for i in range(size))
    ]


def _batch(items) -> None:
    results, _events = _write(items)
    assert all(r.created for r in results), results


_runs = iter(range(10**9))


def measure(conversations, size: int, batches: int) -> dict:
    run = next(_runs)
    for b in range(5):  # warm: caches, prepared plans
        _batch(_items(conversations, size, f"{run}w{b}"))
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for b in range(batches):
        _batch(_items(conversations, size, f"{run}-{b}"))
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return {
        "size": size,
        "batches": batches,
        "cpu_ms_per_batch": round(cpu * 1000 / batches, 3),
        "wall_ms_per_batch": round(wall * 1000 / batches, 3),
        "cpu_ms_per_msg": round(cpu * 1000 / batches / size, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--profile", type=int, metavar="SIZE", help="cProfile batches of SIZE")
    args = parser.parse_args()
    name = str(settings.DATABASES["default"]["NAME"])
    if not name.startswith("helpdesk_bench"):
        sys.exit(f"store_cost.py refuses database {name!r}: not a bench database")
    workspace, conversations = _setup(args.conversations)
    try:
        print("size  batches  cpu ms/batch  wall ms/batch  cpu ms/msg")
        for size in args.sizes:
            r = measure(conversations, size, args.batches)
            print(
                f"{r['size']:>4}  {r['batches']:>7}  {r['cpu_ms_per_batch']:>12}"
                f"  {r['wall_ms_per_batch']:>13}  {r['cpu_ms_per_msg']:>10}"
            )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            measure(conversations, args.profile, args.batches)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    finally:
        close_old_connections()
        workspace.delete()  # its agent, visitors, conversations and messages with it
        get_user_model().objects.filter(username=AGENT_USERNAME).delete()


if __name__ == "__main__":
    main()
