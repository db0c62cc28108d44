"""Storing messages: the one code path that gives a message its seq.

:func:`messages_store` stores a batch of messages in the caller's transaction with a fixed
number of queries, whatever the batch size: lock the conversations (in pk order, so two
batches never deadlock), look up client ids already stored, insert the new messages in one
statement, update the conversations in one statement. A single send is a batch of one;
under load, :mod:`chat.writer` gathers the sends that arrive while a batch is being written
into the next one (group commit), so PostgreSQL commits once per batch, not per message.

Invariants:

* ``seq`` is assigned while the conversation row is locked: no gaps, no duplicates.
* A ``client_id`` is stored at most once per conversation (also within one batch); a retry
  gets the stored message back with ``created=False``.
* An item that is refused (unknown conversation, attachment not yours, empty) gets its
  ``ChatError`` and writes nothing; the other items of the batch are unaffected.
* Events are returned, not sent: the caller sends them after commit.
"""

import json
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, router, transaction
from django.utils import timezone

from accounts.models import AgentProfile, Team
from helpdesk.bulk import ModelColumns, bulk_update_rows

from . import frames, routing
from .autoreply import auto_reply_enqueue_on_commit
from .errors import ChatError
from .models import (
    Attachment,
    Conversation,
    ConversationStatus,
    EventKind,
    Label,
    Message,
    SenderKind,
    Visitor,
)
from .realtime import (
    agent_group,
    conversation_group,
    visitor_group,
    workspace_agents_group,
)
from .search import message_search_terms
from .selectors import messages_qs

Event = tuple[str, dict[str, Any]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewMessage:
    """One send, already validated for shape (client id, text length)."""

    # None: a visitor's message into their current conversation, opening one if they have
    # none (see _conversations_open).
    conversation_id: int | None
    workspace_id: int | None  # the sender's; a conversation elsewhere is "not found".
    # None only for the server's own messages (bot, system).
    sender_kind: str
    client_id: str
    text: str
    attachment_id: Any = None
    visitor_id: int | None = None  # who sends, for visitor messages
    agent_id: int | None = None  # who sends, for agent messages
    department_id: Any = None  # the widget's department choice (chat.departments)


@dataclass
class Stored:
    message: Message | None = None
    created: bool = False
    error: ChatError | None = None


@dataclass
class _Touched:
    fields: set[str] = field(default_factory=set)
    assigned: bool = False


def _preview(text: str, attachment: Attachment | None) -> str:
    if text:
        return text[:140]
    return f"[{attachment.original_name}]"[:140] if attachment else ""


def _attachment_claim(item: NewMessage, workspace_id: int, claimed: set) -> Attachment:
    try:
        public_id = uuid.UUID(str(item.attachment_id))
    except ValueError:
        raise ChatError("invalid_attachment", "attachment_id is not an upload id.") from None
    qs = Attachment.objects.filter(
        public_id=public_id, workspace_id=workspace_id, message__isnull=True
    )
    if item.sender_kind == SenderKind.VISITOR:
        qs = qs.filter(visitor_id=item.visitor_id)
    else:
        qs = qs.filter(agent_id=item.agent_id)
    attachment = qs.first()
    if attachment is None or attachment.pk in claimed:
        raise ChatError("invalid_attachment", "No unused upload of yours has that id.")
    claimed.add(attachment.pk)
    return attachment


def _apply(
    conversation: Conversation,
    item: NewMessage,
    agent: AgentProfile | None,
    attachment: Attachment | None,
    now,
    touched: _Touched,
    routing_round: routing.RoutingRound,
) -> None:
    """The conversation-side effects of one new message (in memory, under the row lock).

    ``routing_round`` is the batch's: its routing reads rules and candidates once.
    """
    conversation.last_seq += 1
    touched.fields |= {"last_seq", "last_message_at", "last_message_preview", "updated_at"}
    if item.sender_kind == SenderKind.VISITOR:
        conversation.unread_by_agent += 1
        touched.fields.add("unread_by_agent")
        _visitor_wakes(conversation, touched)
        if conversation.assignee_id is None and conversation.queued_at is None:
            # Opened, reopened, or never routed: find an agent or join the queue. A
            # queued conversation waits for the drain (chat.routing.queue_drain).
            if routing.conversation_route(
                conversation, announce=False, routing_round=routing_round
            ):
                touched.assigned = True
            touched.fields.update(routing.ROUTING_FIELDS)  # written with the batch
    elif item.sender_kind == SenderKind.AGENT:
        if conversation.first_response_at is None:
            conversation.first_response_at = now
            conversation.first_response_seconds = _seconds_since(conversation.created_at, now)
            touched.fields |= {"first_response_at", "first_response_seconds"}
        if conversation.assignee_id is None:
            # Replying takes an unassigned conversation (out of the queue, if waiting).
            routing.conversation_assign(
                conversation,
                agent,
                actor=agent,
                how="reply",
                announce=False,
                routing_round=routing_round,
            )
            touched.assigned = True
            touched.fields.update(routing.ROUTING_FIELDS)
    conversation.last_message_at = now
    conversation.updated_at = now
    conversation.last_message_preview = _preview(item.text, attachment)


def _seconds_since(start, now) -> int:
    return max(0, int((now - start).total_seconds())) if start else 0


def _visitor_wakes(conversation: Conversation, touched: _Touched) -> None:
    """A visitor writing reopens a resolved conversation and wakes a snoozed or pending
    one. A reopened conversation is routed again (sticky routing prefers its agent)."""
    if conversation.status == ConversationStatus.OPEN:
        return
    from .timeline import event_record  # timeline imports this module

    before = conversation.status
    conversation.status = ConversationStatus.OPEN
    conversation.snoozed_until = None
    touched.fields |= {"status", "snoozed_until"}
    if before == ConversationStatus.RESOLVED:
        conversation.resolved_at = None
        conversation.resolution_seconds = None
        touched.fields |= {"resolved_at", "resolution_seconds"}
        if conversation.assignee_id is not None:
            conversation.assignee = None
            touched.fields.add("assignee")
    event_record(
        conversation=conversation,
        kind=EventKind.STATUS,
        data={"from": before, "to": ConversationStatus.OPEN, "by": "visitor"},
    )


def agent_side_groups(conversation: Conversation) -> list[str]:
    """Where agents hear about a conversation's messages.

    The assignee (or, while nobody has it, every agent of the workspace), and the agents
    who have it open. Not every agent: with a hundred agents online that would be a
    hundred frames per message.
    """
    first = (
        agent_group(conversation.assignee_id)
        if conversation.assignee_id
        else workspace_agents_group(conversation.workspace_id)
    )
    return [first, conversation_group(conversation.pk)]


def _conversations_open(
    items: list[NewMessage],
) -> tuple[list[NewMessage], dict[int, ChatError], set[int]]:
    """Give visitor items without a conversation their current one, opening one for each
    visitor who has none. A fixed number of queries per batch: lock the visitors (so two
    tabs, or two processes, never open two conversations), read their latest
    conversations, check the departments, insert the new conversations.

    Returns the items with conversation ids, errors by item index, and the ids of the
    conversations opened here.
    """
    errors: dict[int, ChatError] = {}
    opening = [(n, i) for n, i in enumerate(items) if i.conversation_id is None]
    if not opening:
        return items, errors, set()
    visitor_ids = sorted({i.visitor_id for _n, i in opening})
    visitors = {
        v.pk: v
        for v in Visitor.objects.select_for_update()
        .filter(pk__in=visitor_ids)
        .order_by("pk")
        .only("pk", "workspace_id")
    }
    current: dict[int, int] = {}
    for visitor_id, pk in (
        Conversation.objects.filter(visitor_id__in=visitor_ids)
        .order_by("visitor_id", "created_at", "pk")
        .values_list("visitor_id", "pk")
    ):
        current[visitor_id] = pk  # the latest wins
    wanted = {i.department_id for _n, i in opening if i.department_id is not None}
    departments = dict(
        Team.objects.filter(
            pk__in=[d for d in wanted if isinstance(d, int) and not isinstance(d, bool)],
            is_department=True,
        ).values_list("pk", "workspace_id")
    )
    new: dict[int, Conversation] = {}
    for n, item in opening:
        visitor = visitors.get(item.visitor_id)
        if visitor is None or visitor.workspace_id != item.workspace_id:
            errors[n] = ChatError("not_found", "No such visitor.")
            continue
        department = item.department_id
        if department is not None and departments.get(department) != visitor.workspace_id:
            errors[n] = ChatError("invalid_department", "No such department.")
            continue
        if visitor.pk not in current and visitor.pk not in new:
            new[visitor.pk] = Conversation(
                workspace_id=visitor.workspace_id, visitor_id=visitor.pk, team_id=department
            )
    opened = set()
    if new:
        for conversation in Conversation.objects.bulk_create(new.values()):
            current[conversation.visitor_id] = conversation.pk
            opened.add(conversation.pk)
    out = list(items)
    for n, item in opening:
        if n not in errors:
            out[n] = replace(item, conversation_id=current[item.visitor_id])
    return out, errors, opened


_LOCK_RELATED = ("visitor", "assignee", "team", "workspace")


def _conversations_lock(
    sent: set[tuple[int, str]], *, plain_sql: bool | None = None
) -> tuple[dict[int, Conversation], dict[tuple[int, str], Message]]:
    """Lock the conversations of the batch's ``(conversation id, client id)`` pairs (in pk
    order, so two batches never deadlock) with what the frames need (visitor, assignee,
    team, workspace, labels), and return the messages already stored under those pairs.

    On PostgreSQL one statement written once (:func:`_lock_statement`) does all of it;
    the stored messages are then read only for the pairs it found (a resend). The ORM
    path (SpatiaLite, and ``plain_sql=False``) gives the same result in three queries.
    """
    if not sent:
        return {}, {}
    conversation_ids = sorted({pk for pk, _ in sent})
    client_ids = {client_id for _, client_id in sent}
    using = router.db_for_write(Conversation)
    if plain_sql is None:
        plain_sql = connections[using].vendor == "postgresql"
    if plain_sql:
        conversations, found = _conversations_lock_sql(using, conversation_ids, sent)
    else:
        conversations = {
            c.pk: c
            for c in Conversation.objects.select_for_update(of=("self",))
            .select_related(*_LOCK_RELATED)
            .filter(pk__in=conversation_ids)
            .order_by("pk")
        }
        frames.labels_prefetch(conversations.values())
        found = None  # not known: look them all up
    if found is not None and not found:
        return conversations, {}
    lookup = messages_qs().filter(
        conversation_id__in=conversation_ids if found is None else {pk for pk, _ in found},
        client_id__in=client_ids if found is None else {cid for _, cid in found},
    )
    return conversations, {(m.conversation_id, m.client_id): m for m in lookup}


_lock_statements: dict[str, tuple[str, list[ModelColumns], list[str]]] = {}


def _lock_statement(using: str) -> tuple[str, list[ModelColumns], list[str]]:
    """The locking read of :func:`_conversations_lock` as SQL, built once per database
    from the models' meta: the conversation's columns, its related rows' (joined), its
    labels as a JSON array of rows, the batch's client ids already stored in it.

    Those client ids are read in the statement's snapshot, taken before the lock is
    granted: a message another process commits meanwhile under the same pair is not
    seen, and the insert then fails on the unique constraint (the writer retries the
    batch item by item, in a new transaction that sees it)."""
    if using in _lock_statements:
        return _lock_statements[using]
    qn = connections[using].ops.quote_name
    meta = Conversation._meta
    columns = [ModelColumns(Conversation, "c", using)]
    joins = []
    for n, name in enumerate(_LOCK_RELATED):
        field = meta.get_field(name)
        columns.append(ModelColumns(field.related_model, f"r{n}", using))
        joins.append(
            f"{'LEFT JOIN' if field.null else 'JOIN'} {qn(field.related_model._meta.db_table)} "
            f"r{n} ON r{n}.{qn(field.target_field.column)} = c.{qn(field.column)}"
        )
    labels = meta.get_field("labels")
    label_fields = [f.attname for f in Label._meta.concrete_fields]
    message = Message._meta
    conversation_pk = qn(meta.pk.column)
    client_id = qn(message.get_field("client_id").column)
    message_conversation = qn(message.get_field("conversation").column)
    # Names come from the models' meta; the values are the statement's two parameters.
    sql = (
        f"WITH found AS (SELECT m.{message_conversation} AS conversation_id, "  # noqa: S608
        f"m.{client_id} AS client_id FROM {qn(message.db_table)} m "
        f"JOIN unnest(%s::bigint[], %s::text[]) AS sent(conversation_id, client_id) "
        f"ON m.{message_conversation} = sent.conversation_id "
        f"AND m.{client_id} = sent.client_id) "
        f"SELECT {', '.join(c.sql for c in columns)}, "
        f"(SELECT json_agg(json_build_array("
        f"{', '.join('l.' + qn(Label._meta.get_field(a).column) for a in label_fields)}) "
        f"ORDER BY l.{qn(Label._meta.get_field('name').column)}) "
        f"FROM {qn(Label._meta.db_table)} l JOIN {qn(labels.m2m_db_table())} x "
        f"ON x.{qn(labels.m2m_reverse_name())} = l.{qn(Label._meta.pk.column)} "
        f"WHERE x.{qn(labels.m2m_column_name())} = c.{conversation_pk}), "
        f"ARRAY(SELECT f.client_id FROM found f WHERE f.conversation_id = c.{conversation_pk}) "
        f"FROM {qn(meta.db_table)} c {' '.join(joins)} "
        f"WHERE c.{conversation_pk} = ANY(%s) ORDER BY c.{conversation_pk} FOR UPDATE OF c"
    )
    _lock_statements[using] = (sql, columns, label_fields)
    return _lock_statements[using]


def _conversations_lock_sql(using: str, conversation_ids: list[int], sent: set[tuple[int, str]]):
    sql, columns, label_fields = _lock_statement(using)
    pairs = sorted(sent)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [[pk for pk, _ in pairs], [cid for _, cid in pairs], conversation_ids])
        rows = cursor.fetchall()
    conversations: dict[int, Conversation] = {}
    found: set[tuple[int, str]] = set()
    main, related = columns[0], columns[1:]
    seen: dict[str, dict] = {name: {} for name in _LOCK_RELATED}  # one instance per row
    for row in rows:
        conversation = main.load(row)
        start = main.width
        for name, cols in zip(_LOCK_RELATED, related, strict=True):
            Conversation._meta.get_field(name).set_cached_value(
                conversation, cols.load(row, start, seen[name])
            )
            start += cols.width
        labels = row[start]
        if isinstance(labels, str):
            labels = json.loads(labels)
        # As frames.labels_prefetch would leave it.
        setattr(
            conversation,
            frames.LABELS_ATTR,
            [Label.from_db(using, label_fields, values) for values in labels or ()],
        )
        found.update((conversation.pk, client_id) for client_id in row[start + 1])
        conversations[conversation.pk] = conversation
    return conversations, found


def messages_store(items: list[NewMessage]) -> tuple[list[Stored], list[Event]]:
    """Store ``items`` (in order); return a result per item and the events to send.

    Must run inside ``transaction.atomic``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("messages_store must run inside transaction.atomic")
    items, open_errors, opened = _conversations_open(items)
    conversations, stored = _conversations_lock(
        {(i.conversation_id, i.client_id) for i in items if i.conversation_id}
    )
    agent_ids = {i.agent_id for i in items if i.sender_kind == SenderKind.AGENT and i.agent_id}
    # Agents mostly write in conversations they have: their rows came with the lock.
    agents = {
        c.assignee_id: c.assignee for c in conversations.values() if c.assignee_id in agent_ids
    }
    if agent_ids - agents.keys():
        agents |= AgentProfile.objects.in_bulk(agent_ids - agents.keys())

    now = timezone.now()
    results: list[Stored] = []
    new: list[Message] = []
    touched: dict[int, _Touched] = {}
    claimed: set[int] = set()
    routing_round = routing.RoutingRound(defer_writes=True)
    # Sticky routing asks who served a visitor last: nobody, for a conversation opened
    # here (only a visitor who has none gets one; their row is locked); for the batch's
    # other unassigned conversations, one query when the first of them is routed.
    routing_round.never_served(conversations[pk].visitor_id for pk in opened)
    routing_round.expect(
        c.visitor_id for pk, c in conversations.items() if pk not in opened and not c.assignee_id
    )
    for n, item in enumerate(items):
        if n in open_errors:
            results.append(Stored(error=open_errors[n]))
            continue
        conversation = conversations.get(item.conversation_id)
        if conversation is None or item.workspace_id not in (None, conversation.workspace_id):
            results.append(
                Stored(error=ChatError("not_found", "No such conversation in your workspace."))
            )
            continue
        if item.sender_kind == SenderKind.VISITOR and conversation.visitor_id != item.visitor_id:
            results.append(Stored(error=ChatError("not_found", "No such conversation.")))
            continue
        previous = stored.get((conversation.pk, item.client_id))
        if previous is not None:
            results.append(Stored(message=previous, created=False))
            continue
        try:
            attachment = (
                _attachment_claim(item, conversation.workspace_id, claimed)
                if item.attachment_id
                else None
            )
        except ChatError as exc:
            results.append(Stored(error=exc))
            continue
        if not item.text and attachment is None:
            results.append(
                Stored(error=ChatError("empty_message", "A message needs text or an attachment."))
            )
            continue
        agent = agents.get(item.agent_id) if item.sender_kind == SenderKind.AGENT else None
        _apply(
            conversation,
            item,
            agent,
            attachment,
            now,
            touched.setdefault(conversation.pk, _Touched()),
            routing_round,
        )
        message = Message(
            workspace_id=conversation.workspace_id,
            conversation=conversation,
            seq=conversation.last_seq,
            sender_kind=item.sender_kind,
            sender_agent=agent,
            client_id=item.client_id,
            text=item.text,
            attachment=attachment,
            search_terms=message_search_terms(item.text),
        )
        new.append(message)
        stored[(conversation.pk, item.client_id)] = message
        results.append(Stored(message=message, created=True))

    unused = opened - {m.conversation_id for m in new}
    if unused:  # its first message was refused: as if nothing had been sent
        Conversation.objects.filter(pk__in=unused).delete()
    if not new:
        return results, []
    Message.objects.bulk_create(new)
    routing_round.flush()
    _bot_enqueue_on_commit(new, conversations)
    changed = [conversations[pk] for pk in touched]
    bulk_update_rows(changed, sorted(set().union(*(t.fields for t in touched.values()))))
    return results, _events(new, conversations, touched)


def _bot_enqueue_on_commit(new: list[Message], conversations) -> None:
    """Visitor questions go to the bot pipeline when the workspace's bot mode says so."""
    # An operator's automatic-reply rule answers first (rules cached in memory: no query
    # here); the bot gets only the messages no rule answered.
    answered = auto_reply_enqueue_on_commit(new)
    ids = [
        m.pk
        for m in new
        if m.sender_kind == SenderKind.VISITOR
        and m.text
        and m.pk not in answered
        and conversations[m.conversation_id].workspace.bot_answers_visitors
    ]
    if not ids:
        return
    from knowledge.tasks import bot_reply_task  # knowledge imports chat

    for pk in ids:
        # robust: a broker outage must not turn a kept (and acked) message into an error
        transaction.on_commit(lambda pk=pk: _bot_enqueue(bot_reply_task, pk), robust=True)


_eager_bot = None


def _bot_enqueue(task, pk: int) -> None:
    """Celery in production; in the embedded default (eager tasks) a thread of its own,
    so a slow AI provider never holds up the thread that stores messages."""
    global _eager_bot
    if not (settings.EMBEDDED and settings.CELERY_TASK_ALWAYS_EAGER):
        task.delay(pk)  # Celery, or inline where eager tasks are asked for (tests)
        return
    if _eager_bot is None:
        from concurrent.futures import ThreadPoolExecutor

        _eager_bot = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eager-bot")

    def run() -> None:
        try:
            task.apply(args=(pk,), throw=True)
        except Exception:
            log.exception("bot reply for message %s failed", pk)
        finally:
            close_old_connections()

    _eager_bot.submit(run)


def _events(new: list[Message], conversations, touched) -> list[Event]:
    # The conversations' labels for their frames came with the lock (_conversations_lock).
    summaries = {pk: frames.conversation_frame(conversations[pk]) for pk in touched}
    events: list[Event] = []
    for message in new:
        conversation = conversations[message.conversation_id]
        data = frames.message_frame(message)
        events.append(
            (visitor_group(conversation.visitor_id), {"type": "chat.message", "message": data})
        )
        agent_event = {
            "type": "chat.message",
            "message": data,
            "conversation": summaries[conversation.pk],
        }
        events += [(group, agent_event) for group in agent_side_groups(conversation)]
    for pk, t in touched.items():
        if t.assigned:
            # A conversation changed hands: every console's list shows it, and the
            # visitor learns who answers.
            conversation = conversations[pk]
            events.append(
                (
                    workspace_agents_group(conversation.workspace_id),
                    {"type": "chat.conversation", "conversation": summaries[pk]},
                )
            )
            events.append(
                (
                    visitor_group(conversation.visitor_id),
                    {
                        "type": "chat.conversation",
                        "conversation": frames.visitor_conversation(conversation),
                    },
                )
            )
    return events
