"""Canned replies: the saved answers an agent inserts by typing ``/shortcut``.

An agent sees the workspace's shared replies (``agent`` empty) and their own; their own
wins over a shared one with the same shortcut. Nobody ever sees another agent's personal
replies or another workspace's. The console fills in the variables (``{visitor_name}``,
``{agent_name}``, ``{workspace_name}``) when the reply is inserted, because only it knows
which conversation is open; :func:`canned_render` is the same substitution for the server.
"""

import re
from typing import Any

from django.db.models import F, Q

from accounts.models import AgentProfile

from .models import CannedReply

# Sent in every console welcome: a generous bound, so a runaway import cannot bloat it.
CANNED_MAX = 500
VARIABLES = ("visitor_name", "agent_name", "workspace_name")
_VARIABLE_RE = re.compile(r"\{(" + "|".join(VARIABLES) + r")\}")


def canned_for_agent(*, agent: AgentProfile) -> list[CannedReply]:
    """The replies ``agent`` may use, by shortcut: their own plus the shared ones (one query)."""
    rows = (
        CannedReply.objects.filter(workspace_id=agent.workspace_id)
        .filter(Q(agent__isnull=True) | Q(agent_id=agent.pk))
        # The personal row first (NULLs last on every backend), so it wins its shortcut.
        .order_by("shortcut", F("agent_id").asc(nulls_last=True))
        .only("pk", "shortcut", "text", "agent_id")[: 2 * CANNED_MAX]  # <= 2 rows a shortcut
    )
    chosen: dict[str, CannedReply] = {}
    for row in rows:
        chosen.setdefault(row.shortcut, row)
        if len(chosen) >= CANNED_MAX:
            break
    return list(chosen.values())


def canned_frame(reply: CannedReply) -> dict[str, Any]:
    """One entry of the agent welcome's ``canned`` list."""
    return {
        "id": reply.pk,
        "shortcut": reply.shortcut,
        "text": reply.text,
        "shared": reply.agent_id is None,
    }


def canned_render(text: str, **values: str) -> str:
    """``text`` with the known variables replaced in one pass (unknown ones stay as typed).

    One pass, so a value that itself contains ``{agent_name}`` is not expanded again.
    """
    return _VARIABLE_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
