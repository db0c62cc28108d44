"""Writes for chat: one function per business action.

Invariants kept here:

* A message gets its per-conversation ``seq`` while the conversation row is locked, and a
  ``client_id`` is stored at most once per conversation, so a retried send is idempotent.
* Functions return only after their transaction commits; callers ack after that.
* Real-time events leave through :mod:`chat.realtime` after commit.
"""

import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from accounts.models import AgentProfile, Team, Workspace
from accounts.selectors import agents_available

from . import frames, routing
from .blocklist import visitor_is_blocked
from .errors import ChatError
from .message_store import NewMessage, agent_side_groups, messages_store
from .models import (
    ACTIVE_STATUSES,
    Attachment,
    Conversation,
    ConversationStatus,
    EventKind,
    Message,
    PageView,
    SenderKind,
    Visitor,
)
from .realtime import (
    agent_group,
    broadcast_on_commit,
    visitor_group,
    workspace_agents_group,
)
from .selectors import conversation_get_for_agent
from .timeline import event_record
from .uploads import read_head, safe_filename, sniff_content_type
from .visitor_info import describe_user_agent, locate
from .visitor_tokens import visitor_token_for, visitor_token_valid

_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_url_validator = URLValidator(schemes=["http", "https"])
log = logging.getLogger(__name__)


# --- visitors ---------------------------------------------------------------------------------


def visitor_token(*, visitor: Visitor) -> str:
    """The secret the widget keeps beside the visitor id; proves it is that visitor."""
    return visitor_token_for(workspace_id=visitor.workspace_id, public_id=str(visitor.public_id))


def _clean_url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 2000 or _CONTROL_RE.search(value):
        return ""
    try:
        _url_validator(value)
    except ValidationError:
        return ""
    return value


def _clean_line(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    return _CONTROL_RE.sub("", value).replace("\n", " ").strip()[:limit]


@dataclass(eq=False)  # compared by identity: each is one socket's hello
class VisitorClaim:
    """Who a widget says it is (``public_id`` + ``token``, both optional) and where it is."""

    workspace: Workspace
    public_id: Any
    token: Any
    ip: str | None
    user_agent: str
    language: Any = ""
    page: dict | None = None


# What a hello refreshes on a known visitor (never name or email: those are the visitor's).
_HELLO_FIELDS = [
    "ip_address",
    "country_code",
    "city",
    "location",
    "user_agent",
    "browser",
    "os",
    "device",
    "language",
    "last_seen_at",
    "current_url",
    "current_title",
    "referrer",
]


def visitor_identify(
    *,
    workspace: Workspace,
    public_id: Any,
    token: Any,
    ip: str | None,
    user_agent: str,
    language: Any = "",
    page: dict | None = None,
) -> tuple[Visitor, str, bool]:
    """Find the visitor the browser claims to be (if the token proves it) or make a new one.

    Records the connection's address, browser and place, and the page being viewed.
    Returns the visitor, its token, and whether it was made now.
    """
    claim = VisitorClaim(workspace, public_id, token, ip, user_agent, language, page)
    return visitors_identify([claim])[0]


def visitors_identify(claims: list[VisitorClaim]) -> list[tuple[Visitor, str, bool]]:
    """:func:`visitor_identify` for many sockets' hellos at once: one lookup of the claimed
    visitors, then one insert of the new ones, one update of the known ones and one insert
    of the page views, in one transaction. Results are in the order of ``claims``."""
    now = timezone.now()
    proven = [(claim.workspace.pk, _proven_public_id(claim)) for claim in claims]
    wanted = {key for key in proven if key[1]}
    known = {}
    if wanted:
        for v in Visitor.objects.filter(public_id__in=[pid for _, pid in wanted]):
            key = (v.workspace_id, str(v.public_id))
            if key in wanted:  # another workspace's visitor is no match
                known[key] = v

    results, new, updated, views = [], [], {}, []
    for claim, key in zip(claims, proven, strict=True):
        visitor = known.get(key)
        created = visitor is None
        if created:
            visitor = Visitor(workspace=claim.workspace, first_seen_at=now)
            new.append(visitor)
        else:
            updated[visitor.pk] = visitor  # two tabs of one visitor: one row update
        view = _visitor_fill(visitor, claim, now)
        if view is not None:
            views.append(view)
        results.append((visitor, created))
    with transaction.atomic():
        Visitor.objects.bulk_create(new)
        if updated:
            Visitor.objects.bulk_update(list(updated.values()), _HELLO_FIELDS)
        PageView.objects.bulk_create(views)  # takes the new visitors' ids
    return [(v, visitor_token(visitor=v), created) for v, created in results]


def _proven_public_id(claim: VisitorClaim) -> str | None:
    """The claimed public id, normalised, if its token proves it; else None."""
    try:
        public_id = str(uuid.UUID(str(claim.public_id)))
    except ValueError:
        return None
    if not visitor_token_valid(
        workspace_id=claim.workspace.pk, public_id=public_id, token=claim.token
    ):
        return None
    return public_id


def _visitor_fill(visitor: Visitor, claim: VisitorClaim, now) -> PageView | None:
    """Write what the connection tells about the visitor; the page view to record, if any."""
    page = claim.page if isinstance(claim.page, dict) else {}
    url = _clean_url(page.get("url"))
    title = _clean_line(page.get("title"), 300)
    referrer = _clean_url(page.get("referrer"))
    ua = describe_user_agent(claim.user_agent)
    if visitor.pk is None or visitor.ip_address != claim.ip:
        place = locate(claim.ip)
        visitor.country_code, visitor.city, visitor.location = (
            place.country_code,
            place.city,
            place.point,
        )
    visitor.ip_address = claim.ip
    visitor.user_agent = claim.user_agent[:512]
    visitor.browser, visitor.os, visitor.device = ua.browser, ua.os, ua.device
    if _clean_line(claim.language, 35):  # a hello without lang keeps what we knew
        visitor.language = _clean_line(claim.language, 35)
    visitor.last_seen_at = now
    if not url:
        return None
    visitor.current_url, visitor.current_title = url, title
    visitor.referrer = referrer
    return PageView(
        workspace_id=claim.workspace.pk, visitor=visitor, url=url, title=title, referrer=referrer
    )


def visitor_page_view(*, visitor: Visitor, page: Any) -> None:
    """The widget moved to another page of the site."""
    page = page if isinstance(page, dict) else {}
    url = _clean_url(page.get("url"))
    if not url:
        raise ChatError("invalid_page", "page.url must be an http(s) URL.")
    title = _clean_line(page.get("title"), 300)
    referrer = _clean_url(page.get("referrer"))
    with transaction.atomic():
        Visitor.objects.filter(pk=visitor.pk).update(
            current_url=url, current_title=title, last_seen_at=timezone.now()
        )
        PageView.objects.create(
            workspace_id=visitor.workspace_id,
            visitor=visitor,
            url=url,
            title=title,
            referrer=referrer,
        )


# --- messages ---------------------------------------------------------------------------------


def message_input_clean(*, client_id: Any, text: Any, attachment_id: Any) -> tuple[str, str]:
    """Check a send's client id and text (no database); returns them cleaned."""
    return _clean_client_id(client_id), _clean_text(text, required=not attachment_id)


def _clean_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not _CLIENT_ID_RE.match(client_id):
        raise ChatError(
            "invalid_client_id", "client_id must be 1-64 characters of A-Z a-z 0-9 _ . : -"
        )
    return client_id


def _clean_text(text: Any, *, required: bool) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ChatError("invalid_text", "text must be a string.")
    text = _CONTROL_RE.sub("", text).strip()
    if len(text) > settings.HELPDESK_MAX_MESSAGE_CHARS:
        raise ChatError(
            "text_too_long",
            f"text is longer than {settings.HELPDESK_MAX_MESSAGE_CHARS} characters.",
        )
    if required and not text:
        raise ChatError("empty_message", "A message needs text or an attachment.")
    return text


def _message_store(
    *,
    conversation_id: int | None,
    sender_kind: str,
    client_id: str,
    text: str,
    attachment_id: Any = None,
    visitor: Visitor | None = None,
    agent: AgentProfile | None = None,
    department_id: Any = None,
) -> tuple[Message, bool]:
    """Store one message (a batch of one) and broadcast it on commit.

    Must run inside ``transaction.atomic``. Returns ``(message, created)``; a client_id
    seen before returns the stored message and changes nothing.
    """
    sender = visitor or agent
    results, events = messages_store(
        [
            NewMessage(
                conversation_id=conversation_id,
                workspace_id=sender.workspace_id if sender else None,
                sender_kind=sender_kind,
                client_id=client_id,
                text=text,
                attachment_id=attachment_id,
                visitor_id=visitor.pk if visitor else None,
                agent_id=agent.pk if agent else None,
                department_id=department_id,
            )
        ]
    )
    if results[0].error:
        raise results[0].error
    for group, event in events:
        broadcast_on_commit(group, event)
    return results[0].message, results[0].created


def _store_retrying_once(**kwargs) -> tuple[Message, bool]:
    # Two sends of one client_id racing past the existence check: the unique constraint
    # stops the second, which then finds the first.
    try:
        with transaction.atomic():
            return _message_store(**kwargs)
    except IntegrityError:
        with transaction.atomic():
            return _message_store(**kwargs)


def visitor_message_send(
    *,
    visitor: Visitor,
    client_id: Any,
    text: Any,
    attachment_id: Any = None,
    department_id: Any = None,
) -> tuple[Message, bool]:
    """A visitor's message: into their current conversation, opening one if needed.

    ``department_id`` (the widget's department choice, chat.departments) is checked
    whenever given, and sets the team of a conversation this message opens.
    """
    client_id = _clean_client_id(client_id)
    text = _clean_text(text, required=not attachment_id)
    if visitor_is_blocked(visitor.workspace_id, visitor.pk, visitor.ip_address):
        raise ChatError("blocked", "You cannot use this chat.")
    # conversation_id None: chat.message_store finds (or opens) the visitor's conversation
    # under the visitor's row lock, the same way the socket's batched path does.
    return _store_retrying_once(
        conversation_id=None,
        sender_kind=SenderKind.VISITOR,
        client_id=client_id,
        text=text,
        attachment_id=attachment_id,
        visitor=visitor,
        department_id=department_id,
    )


def agent_message_send(
    *,
    agent: AgentProfile,
    conversation_id: Any,
    client_id: Any,
    text: Any,
    attachment_id: Any = None,
) -> tuple[Message, bool]:
    """An agent's reply in a conversation of their workspace."""
    client_id = _clean_client_id(client_id)
    text = _clean_text(text, required=not attachment_id)
    conversation = conversation_get_for_agent(agent=agent, conversation_id=conversation_id)
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    with transaction.atomic():
        return _store_retrying_once(
            conversation_id=conversation.pk,
            sender_kind=SenderKind.AGENT,
            client_id=client_id,
            text=text,
            attachment_id=attachment_id,
            agent=agent,
        )


def bot_message_send(*, conversation_id: int, text: str, client_id: str) -> Message:
    """The bot's message in a conversation; a client_id seen before returns the stored one."""
    client_id = _clean_client_id(client_id)
    text = _clean_text(text[: settings.HELPDESK_MAX_MESSAGE_CHARS], required=True)
    with transaction.atomic():
        message, _created = _store_retrying_once(
            conversation_id=conversation_id,
            sender_kind=SenderKind.BOT,
            client_id=client_id,
            text=text,
        )
    return message


def conversation_handoff(
    *, conversation_id: int, reason: str, client_id: str | None = None
) -> Message:
    """Give the conversation to a human and tell the visitor so, in their language.

    Assigns it to the next available agent when it has no assignee (nobody available:
    it stays unassigned, in every agent's list). Returns the bot's message to the visitor;
    with a ``client_id`` seen before, the stored one (nothing else changes).
    """
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("visitor", "assignee", "team")
            .get(pk=conversation_id)
        )
        assignee = conversation.assignee
        if assignee is None:
            # Out of the queue if it was there (the bot had it); back in at the end.
            conversation.queued_at = None
            assignee = routing.conversation_route(conversation)
            available = assignee is not None
        else:
            available = (
                agents_available(workspace_id=conversation.workspace_id)
                .filter(pk=assignee.pk)
                .exists()
            )
        language = "zh-hans" if conversation.visitor.language.lower().startswith("zh") else "en"
        with translation.override(language):
            text = (
                _("A human agent will take over from here and reply shortly.")
                if available
                else _(
                    "No agent is available right now. Your conversation is in the queue: an "
                    "agent will reply here as soon as possible."
                )
            )
        message, _created = _store_retrying_once(
            conversation_id=conversation.pk,
            sender_kind=SenderKind.BOT,
            client_id=client_id or f"handoff-{uuid.uuid4().hex[:16]}",
            text=str(text),
        )
    log.info(
        "conversation %s handed to %s: %s",
        conversation.pk,
        f"agent {assignee.pk}" if assignee else "the queue",
        reason,
    )
    return message


def visitor_leave_message(
    *,
    visitor: Visitor,
    client_id: Any,
    name: Any,
    email: Any,
    text: Any,
    department_id: Any = None,
) -> tuple[Message, bool]:
    """The offline form: keep the visitor's contact details and their message."""
    name = _clean_line(name, 120)
    if not name:
        raise ChatError("invalid_name", "Please give your name.")
    if not isinstance(email, str):
        raise ChatError("invalid_email", "Please give a valid email address.")
    email = email.strip()
    try:
        if len(email) > 254:  # the column's limit; never store a truncated address
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise ChatError("invalid_email", "Please give a valid email address.") from None
    client_id = _clean_client_id(client_id)
    text = _clean_text(text, required=True)
    with transaction.atomic():
        visitor.name, visitor.email = name, email
        visitor.save(update_fields=["name", "email"])
        return visitor_message_send(
            visitor=visitor, client_id=client_id, text=text, department_id=department_id
        )


_SNOOZE_MAX = timedelta(days=366)


def _locked_conversation(*, agent: AgentProfile, conversation_id: Any) -> Conversation:
    """The agent's workspace's conversation, row-locked (call inside transaction.atomic)."""
    conversation = conversation_get_for_agent(agent=agent, conversation_id=conversation_id)
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("visitor", "assignee", "team", "workspace")
        .get(pk=conversation.pk)
    )


def _snooze_until(value: Any):
    if not isinstance(value, str) or len(value) > 40:
        raise ChatError("invalid_snooze", "snooze_until must be an ISO 8601 date and time.")
    when = parse_datetime(value)
    if when is None or timezone.is_naive(when):
        raise ChatError(
            "invalid_snooze", "snooze_until must be an ISO 8601 date and time with a time zone."
        )
    now = timezone.now()
    if not now < when <= now + _SNOOZE_MAX:
        raise ChatError("invalid_snooze", "snooze_until must be in the future, within a year.")
    return when


def conversation_status_set(
    *,
    agent: AgentProfile | None,
    conversation_id: Any,
    status: Any,
    snooze_until: Any = None,
    conversation: Conversation | None = None,
) -> Conversation:
    """Move a conversation to open / pending / resolved / snoozed (until a time).

    Resolving or snoozing frees the assignee's slot, so the queue moves on. The visitor's
    next message reopens (or wakes) it. ``agent`` None means the system (snooze timer),
    and then ``conversation`` is the locked row.
    """
    if status not in ConversationStatus.values:
        raise ChatError("invalid_status", "status is open, pending, resolved or snoozed.")
    until = _snooze_until(snooze_until) if status == ConversationStatus.SNOOZED else None
    with transaction.atomic():
        if conversation is None:
            conversation = _locked_conversation(agent=agent, conversation_id=conversation_id)
        before = conversation.status
        if before == status and conversation.snoozed_until == until:
            return conversation
        now = timezone.now()
        conversation.status = status
        conversation.snoozed_until = until
        if status == ConversationStatus.RESOLVED:
            conversation.resolved_at = now
            conversation.resolution_seconds = max(
                0, int((now - conversation.created_at).total_seconds())
            )
        elif before == ConversationStatus.RESOLVED:
            conversation.resolved_at = conversation.resolution_seconds = None
        left_queue = conversation.queued_at is not None and status not in ACTIVE_STATUSES
        if left_queue:
            conversation.queued_at = None
        conversation.save(
            update_fields=[
                "status",
                "snoozed_until",
                "resolved_at",
                "resolution_seconds",
                "queued_at",
                "updated_at",
            ]
        )
        event_record(
            conversation=conversation,
            kind=EventKind.STATUS,
            actor=agent,
            data={
                "from": before,
                "to": status,
                "until": until.isoformat() if until else None,
                "by": "agent" if agent else "timer",
            },
        )
        routing.announce_conversation(conversation)
        if left_queue:
            routing.queue_broadcast_on_commit(conversation.workspace_id)
        if status not in ACTIVE_STATUSES and before in ACTIVE_STATUSES:
            routing.queue_drain_on_commit(conversation.workspace_id)  # a slot came free
        elif (
            status in ACTIVE_STATUSES
            and conversation.assignee_id is None
            and conversation.queued_at is None
        ):
            routing.conversation_route(conversation)
    return conversation


def conversation_resolve(*, agent: AgentProfile, conversation_id: Any) -> Conversation:
    """Mark resolved; the visitor's next message reopens it."""
    return conversation_status_set(
        agent=agent, conversation_id=conversation_id, status=ConversationStatus.RESOLVED
    )


def conversations_wake_due(*, workspace_id: int) -> int:
    """Snoozed conversations whose time has come go back to open."""
    woken = 0
    with transaction.atomic():
        due = (
            Conversation.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("visitor", "assignee", "team", "workspace")
            .filter(
                workspace_id=workspace_id,
                status=ConversationStatus.SNOOZED,
                snoozed_until__lte=timezone.now(),
            )[:100]
        )
        for conversation in due:
            conversation_status_set(
                agent=None,
                conversation_id=conversation.pk,
                status=ConversationStatus.OPEN,
                conversation=conversation,
            )
            woken += 1
    return woken


_HOUSEKEEPING_EVERY = 10.0  # seconds, per workspace and process
_housekeeping_at: dict[int, float] = {}


def workspace_housekeeping(*, workspace_id: int) -> None:
    """Run on agents' heartbeats: wake snoozed conversations that are due and drain the
    queue (a safety net for slots freed where no drain ran, e.g. a crashed process)."""
    now = time.monotonic()
    if now - _housekeeping_at.get(workspace_id, 0.0) < _HOUSEKEEPING_EVERY:
        return
    _housekeeping_at[workspace_id] = now
    conversations_wake_due(workspace_id=workspace_id)
    if routing.queue_entries(workspace_id=workspace_id):
        routing.queue_drain(workspace_id=workspace_id)


def _agent_in_workspace(agent: AgentProfile, agent_id: Any) -> AgentProfile:
    if not isinstance(agent_id, int) or isinstance(agent_id, bool):
        raise ChatError("invalid_target", "agent_id must be an agent's id.")
    target = (
        AgentProfile.objects.filter(
            pk=agent_id, workspace_id=agent.workspace_id, user__is_active=True
        )
        .select_related("user")
        .first()
    )
    if target is None:
        raise ChatError("invalid_target", "No such agent in your workspace.")
    return target


def _team_in_workspace(agent: AgentProfile, team_id: Any) -> Team:
    if not isinstance(team_id, int) or isinstance(team_id, bool):
        raise ChatError("invalid_target", "team_id must be a team's id.")
    team = Team.objects.filter(pk=team_id, workspace_id=agent.workspace_id).first()
    if team is None:
        raise ChatError("invalid_target", "No such team in your workspace.")
    return team


def conversation_transfer(
    *,
    agent: AgentProfile,
    conversation_id: Any,
    to_agent_id: Any = None,
    to_team_id: Any = None,
    note: Any = "",
) -> Conversation:
    """Hand a conversation to another agent, or to a team (routed inside the team, or
    queued there). The note is private: agents see it in the timeline, the visitor only
    learns who answers now. An explicit transfer to an agent may exceed their capacity;
    automatic routing never does."""
    if (to_agent_id is None) == (to_team_id is None):
        raise ChatError("invalid_target", "Give either agent_id or team_id.")
    note = _clean_text(note, required=False)
    with transaction.atomic():
        target = _agent_in_workspace(agent, to_agent_id) if to_agent_id is not None else None
        team = _team_in_workspace(agent, to_team_id) if to_team_id is not None else None
        conversation = _locked_conversation(agent=agent, conversation_id=conversation_id)
        previous = conversation.assignee
        if target is not None and previous is not None and target.pk == previous.pk:
            raise ChatError("same_assignee", "The conversation is already theirs.")
        conversation.queued_at = None
        conversation.assignee = None
        if team is not None:
            conversation.team = team
            Conversation.objects.filter(pk=conversation.pk).update(
                assignee=None, team=team, queued_at=None
            )
            if conversation.status in ACTIVE_STATUSES:
                routing.conversation_route(conversation)
            if conversation.assignee_id is None:  # queued, or resolved/snoozed
                routing.announce_conversation(conversation)
        else:
            routing.conversation_assign(conversation, target, actor=agent, how="transfer")
        # After the change, so the new assignee hears of it; the previous one too.
        event_record(
            conversation=conversation,
            kind=EventKind.TRANSFERRED,
            actor=agent,
            agent=target,
            team=team,
            text=note,
            data={"from": previous.pk if previous else None},
            also_agent_id=previous.pk if previous else None,
        )
        routing.queue_broadcast_on_commit(conversation.workspace_id)
        if previous is not None:
            # The agent who had it sees it leave their list even if not watching it.
            broadcast_on_commit(
                agent_group(previous.pk),
                {
                    "type": "chat.conversation",
                    "conversation": frames.conversation_frame(conversation),
                },
            )
            routing.queue_drain_on_commit(conversation.workspace_id)  # a slot came free
    return conversation


def note_add(*, agent: AgentProfile, conversation_id: Any, text: Any, ref: Any = None):
    """A private note in the conversation's timeline: agents only, never the visitor."""
    text = _clean_text(text, required=True)
    ref = ref if isinstance(ref, str) and _CLIENT_ID_RE.match(ref) else None
    conversation = conversation_get_for_agent(agent=agent, conversation_id=conversation_id)
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    with transaction.atomic():
        return event_record(
            conversation=conversation, kind=EventKind.NOTE, actor=agent, text=text, ref=ref
        )


def _broadcast_agents_conversation(conversation: Conversation) -> None:
    broadcast_on_commit(
        workspace_agents_group(conversation.workspace_id),
        {"type": "chat.conversation", "conversation": frames.conversation_frame(conversation)},
    )


def receipt_record(*, conversation: Conversation, reader: str, seq: Any, read: bool) -> None:
    """Mark the other side's messages up to ``seq`` delivered (and read when ``read``).

    ``conversation`` must already be scoped to the caller (the visitor's own, or one of
    the agent's workspace).
    """
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ChatError("invalid_seq", "seq must be a non-negative integer.")
    seq = min(seq, conversation.last_seq)
    if reader == SenderKind.VISITOR:
        others = [SenderKind.AGENT, SenderKind.BOT, SenderKind.SYSTEM]
    else:
        others = [SenderKind.VISITOR]
    now = timezone.now()
    with transaction.atomic():
        if read and reader == SenderKind.AGENT:
            # The unread count is recomputed below; hold the row as _message_store does
            # (conversation first, then messages) so a visitor message can't slip between.
            conversation = (
                Conversation.objects.select_for_update(of=("self",))
                .select_related("visitor", "assignee", "team")
                .get(pk=conversation.pk)
            )
        qs = Message.objects.filter(conversation=conversation, seq__lte=seq, sender_kind__in=others)
        changed = qs.filter(delivered_at__isnull=True).update(delivered_at=now)
        if read:
            changed += qs.filter(read_at__isnull=True).update(read_at=now)
        if changed:
            event = {
                "type": "chat.receipt",
                "conversation_id": conversation.pk,
                "reader": reader,
                "seq": seq,
                "status": "read" if read else "delivered",
            }
            broadcast_on_commit(visitor_group(conversation.visitor_id), event)
            for group in agent_side_groups(conversation):
                broadcast_on_commit(group, event)
        if read and reader == SenderKind.AGENT:
            unread = Message.objects.filter(
                conversation=conversation, sender_kind=SenderKind.VISITOR, read_at__isnull=True
            ).count()
            drifted = unread != conversation.unread_by_agent
            if drifted:
                conversation.unread_by_agent = unread
                conversation.save(update_fields=["unread_by_agent"])
            if changed or drifted:
                _broadcast_agents_conversation(conversation)


# --- attachments ------------------------------------------------------------------------------


def attachment_create(
    *,
    workspace: Workspace,
    upload: UploadedFile,
    visitor: Visitor | None = None,
    agent: AgentProfile | None = None,
) -> Attachment:
    """Check an upload against the workspace's limits and store it under a random name."""
    if (visitor is None) == (agent is None):
        raise ValueError("exactly one of visitor and agent uploads a file")
    if upload.size is None or upload.size == 0:
        raise ChatError("empty_file", "The file is empty.")
    if upload.size > workspace.upload_max_bytes:
        raise ChatError(
            "file_too_large",
            f"Files may be at most {workspace.upload_max_bytes // 1024} KB.",
        )
    content_type = sniff_content_type(read_head(upload))
    if content_type is None or content_type not in workspace.upload_type_list():
        raise ChatError("file_type_not_allowed", "This type of file is not accepted.")
    attachment = Attachment(
        workspace=workspace,
        visitor=visitor,
        agent=agent,
        original_name=safe_filename(upload.name or ""),
        content_type=content_type,
        size=upload.size,
    )
    attachment.file.save("upload", upload, save=False)
    try:
        attachment.save()
    except Exception:
        attachment.file.delete(save=False)
        raise
    return attachment
