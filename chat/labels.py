"""Labels on conversations: workspace-scoped names that agents set (and create) freely."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.db.models import Q

from accounts.models import AgentProfile

from .errors import ChatError
from .models import Conversation, EventKind, Label
from .selectors import conversation_get_for_agent
from .services import _broadcast_agents_conversation
from .timeline import event_record

MAX_NAME_CHARS = 40
MAX_PER_CONVERSATION = 10
# Agents create labels by typing them; past this many the workspace needs an admin's tidy-up.
MAX_PER_WORKSPACE = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def label_list(*, workspace_id: int) -> list[Label]:
    return list(Label.objects.filter(workspace_id=workspace_id).order_by("name", "pk"))


def label_names_clean(names: Any) -> list[str]:
    """Trimmed, distinct (ignoring case) names; raises ``invalid_labels``/``too_many_labels``."""
    if not isinstance(names, list):
        raise ChatError("invalid_labels", "labels must be a list of label names.")
    if len(names) > MAX_PER_CONVERSATION:
        raise ChatError(
            "too_many_labels", f"A conversation has at most {MAX_PER_CONVERSATION} labels."
        )
    out: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str):
            raise ChatError("invalid_labels", "Each label is a string.")
        if _CONTROL.search(name):
            raise ChatError("invalid_labels", "Label names may not contain control characters.")
        name = " ".join(name.split())
        if not 1 <= len(name) <= MAX_NAME_CHARS:
            raise ChatError(
                "invalid_labels", f"Label names are 1-{MAX_NAME_CHARS} characters long."
            )
        out.setdefault(name.casefold(), name)
    return list(out.values())


def _labels_get_or_create(workspace_id: int, names: list[str]) -> list[Label]:
    """The workspace's labels of these names (matched ignoring case), created if missing."""
    if not names:
        return []
    query = Q()
    for name in names:
        query |= Q(name__iexact=name)

    def found() -> dict[str, Label]:
        rows = Label.objects.filter(query, workspace_id=workspace_id).order_by("pk")
        by_key: dict[str, Label] = {}
        for label in rows:
            by_key.setdefault(label.name.casefold(), label)
        return by_key

    existing = found()
    missing = [n for n in names if n.casefold() not in existing]
    if missing:
        count = Label.objects.filter(workspace_id=workspace_id).count()
        if count + len(missing) > MAX_PER_WORKSPACE:
            raise ChatError(
                "label_limit",
                f"This workspace has {MAX_PER_WORKSPACE} labels; ask an admin to remove some.",
            )
        # Another agent may create the same name meanwhile: the unique constraint settles it.
        Label.objects.bulk_create(
            [Label(workspace_id=workspace_id, name=n) for n in missing], ignore_conflicts=True
        )
        existing = found()
    return [existing[n.casefold()] for n in names if n.casefold() in existing]


def conversation_labels_set(
    *, agent: AgentProfile, conversation_id: Any, names: Any, ref: str | None = None
) -> Conversation:
    """Give the conversation exactly these labels (creating new names in the workspace).

    Records a ``labels`` timeline event and pushes the conversation row to the
    workspace's agents, only when something changed.
    """
    cleaned = label_names_clean(names)
    conversation = conversation_get_for_agent(agent=agent, conversation_id=conversation_id)
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("visitor", "assignee", "team")
            .get(pk=conversation.pk)
        )
        wanted = _labels_get_or_create(conversation.workspace_id, cleaned)
        current = list(conversation.labels.all())
        current_ids = {label.pk for label in current}
        wanted_ids = {label.pk for label in wanted}
        added = [label.name for label in wanted if label.pk not in current_ids]
        removed = [label.name for label in current if label.pk not in wanted_ids]
        if not added and not removed:
            return conversation
        conversation.labels.set(wanted)
        event_record(
            conversation=conversation,
            kind=EventKind.LABELS,
            actor=agent,
            data={"added": added, "removed": removed},
            ref=ref,
        )
        _broadcast_agents_conversation(conversation)
    return conversation
