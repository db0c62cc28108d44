"""WebSocket consumers for the widget (visitors) and the console (agents).

Thin by design: authenticate and join groups in ``connect``, validate the frame shape,
call one service through ``chat.db.db_call`` (the sockets' database threads), answer.
The frames are documented in docs/protocol.md; ``PROTOCOL_VERSION`` changes when a frame
changes incompatibly.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import AgentConnection, Team
from knowledge import pipeline as bot_pipeline
from knowledge.tasks import assist_suggest_task

from . import (
    blocklist,
    frames,
    labels,
    ratings,
    routing,
    search,
    selectors,
    services,
    widget_cache,
)
from .batching import BatchedLookup
from .canned import canned_for_agent, canned_frame
from .db import db_call
from .errors import ChatError
from .message_store import NewMessage
from .models import ConversationStatus, SenderKind
from .realtime import (
    agent_group,
    broadcast_now,
    conversation_group,
    remember_event_loop,
    visitor_group,
    workspace_agents_group,
    workspace_visitors_group,
)
from .visitor_info import client_ip, header
from .widget_http import allowed_origin
from .widget_text import widget_strings
from .writer import get_writer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
# Messages of one socket waiting for their commit (FrameConsumer.store_then).
MAX_STORES_IN_FLIGHT = 64
CLOSE_INVALID_KEY = 4004
CLOSE_UNAUTHORIZED = 4401


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _require(frame: dict, name: str, kind: type | tuple[type, ...]) -> Any:
    value = frame.get(name)
    if value is None:
        raise FrameError("missing_field", f"'{name}' is required.")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError("invalid_field", f"'{name}' has the wrong type.")
    return value


def _optional_int(frame: dict, name: str, default: int = 0) -> int:
    value = frame.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FrameError("invalid_field", f"'{name}' must be a non-negative integer.")
    return value


class FrameConsumer(AsyncWebsocketConsumer):
    """JSON frames in and out, with size and rate limits and structured errors."""

    # frame type -> handler method name; subclasses fill it.
    handlers: dict[str, str] = {}
    # frames allowed before the hello handshake
    before_hello = frozenset({"hello", "ping"})
    rate_per_second = 20.0
    rate_burst = 40.0

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch without its ``aclose_old_connections()`` before every event.

        Since Channels 4.2 every event a consumer handles (each frame received, each group
        event) first awaits ``close_old_connections`` through ``sync_to_async``: a hop to
        the one thread-sensitive thread of the process, shared by every socket. Nothing
        here touches the database on that thread (socket calls run on ``chat.db``'s
        threads and the writer's, which close their connections themselves), so the hop
        only queued every event of the process behind one thread (docs/performance.md).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        remember_event_loop()
        self.hello_done = False
        self._tokens = self.rate_burst
        self._tokens_at = time.monotonic()
        self._gone = False
        self._stores: set[asyncio.Task] = set()
        self._stores_free = asyncio.Semaphore(MAX_STORES_IN_FLIGHT)
        await self.accept()

    async def websocket_disconnect(self, message: dict) -> None:
        self._gone = True  # stores still in flight are kept, but nobody hears the ack
        await super().websocket_disconnect(message)

    async def send_frame(self, frame: dict) -> None:
        # orjson: ~8x faster than the stdlib on these frames (bench/json_compare.py), the
        # same compact UTF-8 text.
        await self.send(text_data=orjson.dumps(frame, option=orjson.OPT_NON_STR_KEYS).decode())

    async def send_error(self, code: str, message: str, ref: Any = None) -> None:
        frame = {"type": "error", "code": code, "message": message}
        if ref is not None:
            frame["ref"] = ref
        await self.send_frame(frame)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(
            self.rate_burst, self._tokens + (now - self._tokens_at) * self.rate_per_second
        )
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if text_data is None:
            await self.send_error("binary_not_supported", "Frames are JSON text.")
            return
        limit = settings.HELPDESK_MAX_FRAME_BYTES
        if len(text_data) > limit or (
            not text_data.isascii() and len(text_data.encode("utf-8", "replace")) > limit
        ):
            log.info("oversize frame (%d bytes) from %s", len(text_data), self.channel_name)
            await self.send_error("frame_too_large", "The frame is too large.")
            return
        if not self._take_token():
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return
        try:
            # orjson refuses what the database could not store either (lone surrogates
            # such as "\ud800") and NaN/Infinity; integers past 64 bits become floats,
            # which every integer field refuses.
            frame = orjson.loads(text_data)
        except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
            await self.send_error("invalid_json", "The frame is not valid JSON.")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error("invalid_frame", "A frame is a JSON object with a 'type'.")
            return
        kind = frame["type"]
        handler = self.handlers.get(kind)
        ref = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
        if handler is None:
            await self.send_error("unknown_type", f"Unknown frame type '{kind[:40]}'.", ref)
            return
        if not self.hello_done and kind not in self.before_hello:
            await self.send_error("hello_required", "Send 'hello' first.", ref)
            return
        try:
            await getattr(self, handler)(frame)
        except (FrameError, ChatError) as exc:
            log.info("refused %s frame: %s", kind, exc.code)
            await self.send_error(exc.code, exc.message, ref)

    async def frame_ping(self, frame: dict) -> None:
        await self.send_frame({"type": "pong", **await self.pong_extra()})

    async def pong_extra(self) -> dict:
        return {}

    # Channel-layer events shared by both sides.
    async def chat_typing(self, event: dict) -> None:
        if event.get("skip") == self.channel_name:
            return
        await self.send_frame({k: v for k, v in event.items() if k != "skip"} | {"type": "typing"})

    async def chat_receipt(self, event: dict) -> None:
        await self.send_frame(event | {"type": "receipt"})

    async def chat_batch(self, event: dict) -> None:
        """Several events for this group from one committed batch, in order."""
        for item in event["events"]:
            await getattr(self, item["type"].replace(".", "_"))(item)

    async def store_message(self, item: NewMessage):
        """Store through this process's group-commit writer; returns the Message."""
        result = await get_writer().store(item)
        if result.error is not None:
            raise result.error
        return result.message

    async def store_then(
        self, item: NewMessage, ref: str, then: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Hand ``item`` to this process's group-commit writer now, in frame order, and call
        ``then(message)`` (the ack) once it is committed, or send the error (naming the
        frame's ``ref``).

        The wait runs in a task of its own: a consumer handles one frame or event at a
        time, and under load a commit takes a while. Awaited inline, every reply an agent
        sent stopped their console from receiving anything until it was stored
        (docs/performance.md). The console's socket uses it; the widget's awaits its
        (rare) messages, so that its ack precedes what is stored after it. At most
        MAX_STORES_IN_FLIGHT per socket; past that the socket waits, so a flood cannot
        grow memory.
        """
        await self._stores_free.acquire()
        future = get_writer().submit(item)
        task = asyncio.get_running_loop().create_task(self._when_stored(future, ref, then))
        self._stores.add(task)
        task.add_done_callback(self._stores.discard)

    async def _when_stored(self, future: asyncio.Future, ref: str, then) -> None:
        try:
            result = await future
            if self._gone:
                return
            if result.error is not None:
                log.info("refused message frame: %s", result.error.code)
                await self.send_error(result.error.code, result.error.message, ref)
            else:
                await then(result.message)
        except Exception:
            # The writer failed the batch (the database is down): nothing of it was kept
            # and no ack went out. Close, as an unhandled error in a handler would; the
            # client resends what was not acked when it reconnects.
            log.exception("storing message %r failed", ref)
            if not self._gone:
                await self.close(code=1011)
        finally:
            self._stores_free.release()


def _message_item(frame: dict, **sender: Any) -> NewMessage:
    """A ``message`` frame (its ``client_id`` already required by the handler) as the
    writer's item: client id and text cleaned, the sender's fields (conversation,
    workspace, kind, who) from the consumer."""
    client_id, text = services.message_input_clean(
        client_id=frame["client_id"],
        text=frame.get("text"),
        attachment_id=frame.get("attachment_id"),
    )
    return NewMessage(
        client_id=client_id, text=text, attachment_id=frame.get("attachment_id"), **sender
    )


# --- visitor ----------------------------------------------------------------------------------


@db_call
def _workspace_for_key(key: str):
    return widget_cache.workspace_for_key(key)


@dataclass(eq=False)  # one socket's hello; compared by identity
class _Hello:
    workspace: Any
    scope: dict
    frame: dict


def _visitor_hellos(hellos: list[_Hello]) -> dict[_Hello, dict | Exception]:
    """The hellos of many sockets in one go: blocklist (cached), the visitors found or made
    in one transaction (services.visitors_identify), the returning ones' conversations in
    one query, the workspace's settings from the per-process cache."""
    out: dict[_Hello, dict] = {}
    claims: dict[_Hello, services.VisitorClaim] = {}
    for hello in hellos:
        ip = client_ip(hello.scope)
        if blocklist.visitor_is_blocked(hello.workspace.pk, None, ip):  # before any write
            out[hello] = {"blocked": True}
            continue
        claims[hello] = services.VisitorClaim(
            workspace=hello.workspace,
            public_id=hello.frame.get("visitor_id"),
            token=hello.frame.get("visitor_token"),
            ip=ip,
            user_agent=header(hello.scope, b"user-agent"),
            language=hello.frame.get("lang", ""),
            page=hello.frame.get("page"),
        )
    if not claims:
        return out
    try:
        found = services.visitors_identify(list(claims.values()))
    except DatabaseError:
        if len(hellos) == 1:
            raise
        # One bad hello (its workspace deleted meanwhile...) fails the batch's transaction:
        # each on its own, so it fails alone.
        log.warning("a batch of %d hellos failed; retried one by one", len(hellos))
        for hello in claims:
            try:
                out.update(_visitor_hellos([hello]))
            except DatabaseError as exc:
                out[hello] = exc
        return out
    identified = dict(zip(claims, found, strict=True))
    # A visitor made just now has no conversation yet.
    conversations = selectors.conversations_current_for_visitors(
        [visitor.pk for visitor, _, created in identified.values() if not created]
    )
    for hello, (visitor, token, _) in identified.items():
        workspace = hello.workspace
        if blocklist.visitor_is_blocked(workspace.pk, visitor.pk, None):
            out[hello] = {"blocked": True}
            continue
        conversation = conversations.get(visitor.pk)
        schedule, departments = widget_cache.workspace_hours_and_departments(workspace)
        out[hello] = {
            "blocked": False,
            "schedule": schedule,
            "departments": departments,
            "visitor": visitor,
            "token": token,
            "conversation": conversation,
            "queue_position": routing.queue_position(conversation) if conversation else None,
            "agents_online": widget_cache.agents_online(workspace.pk),
        }
    return out


# Hellos arriving together (a page load's burst, a reconnect storm) share their queries.
_hello_batch = BatchedLookup(_visitor_hellos, default=None)


async def _visitor_hello(workspace, scope: dict, frame: dict) -> dict:
    return await _hello_batch(_Hello(workspace, scope, frame))


@db_call
def _history(conversation_id: int, after_seq: int) -> tuple[list[dict], bool]:
    rows, more = selectors.messages_after(conversation_id=conversation_id, after_seq=after_seq)
    return [frames.message_frame(m) for m in rows], more


@db_call
def _visitor_leave(visitor, frame: dict):
    message, _ = services.visitor_leave_message(
        visitor=visitor,
        client_id=frame.get("client_id"),
        name=frame.get("name"),
        email=frame.get("email"),
        text=frame.get("text"),
        department_id=frame.get("department"),
    )
    return message


@db_call
def _visitor_rate(visitor, frame: dict):
    return ratings.conversation_rate(
        visitor=visitor, rating=frame.get("rating"), comment=frame.get("comment")
    )


@db_call
def _visitor_receipt(visitor, seq, read: bool) -> None:
    conversation = selectors.conversation_current_for_visitor(visitor=visitor)
    if conversation is None:
        raise ChatError("no_conversation", "There is no conversation yet.")
    services.receipt_record(
        conversation=conversation, reader=SenderKind.VISITOR, seq=seq, read=read
    )


# Every widget's heartbeat asks this; the sockets of a process share one query per batch.
_conversation_seq = BatchedLookup(selectors.conversation_seqs_for_visitors, default=(None, 0))


async def _visitor_last_seq(visitor) -> tuple[int | None, int]:
    return await _conversation_seq(visitor.pk)


@db_call
def _visitor_page(visitor, page) -> None:
    services.visitor_page_view(visitor=visitor, page=page)


@db_call
def _visitor_handoff(visitor) -> None:
    bot_pipeline.human_requested(visitor=visitor)


def origin_allowed(scope: dict, workspace) -> bool:
    """The page's origin is this server's own or one the workspace lists."""
    return allowed_origin(workspace, header(scope, b"origin"), header(scope, b"host")) is not None


class VisitorConsumer(FrameConsumer):
    """The widget's socket: ``/ws/visitor/?key=<widget key>``."""

    handlers = {
        "hello": "frame_hello",
        "ping": "frame_ping",
        "message": "frame_message",
        "resume": "frame_resume",
        "typing": "frame_typing",
        "receipt": "frame_receipt",
        "leave_message": "frame_leave_message",
        "page": "frame_page",
        "handoff": "frame_handoff",
        "rate": "frame_rate",
    }

    async def connect(self) -> None:
        self.visitor = None
        self.conversation_id = None
        # Checked at hello; a later block arrives as a visitor.blocked event and sets it.
        self.blocked = False
        self.schedule = None  # business hours, loaded at hello (accounts.hours)
        self.agents_online = False  # as the agents' presence says, hours aside
        self.groups_joined: list[str] = []
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        key = (query.get("key") or [""])[0]
        self.workspace = await _workspace_for_key(key)
        if self.workspace is not None and not origin_allowed(self.scope, self.workspace):
            log.info("visitor socket refused: origin %r", header(self.scope, b"origin"))
            await self.close()  # before accept: the handshake gets HTTP 403
            return
        await super().connect()
        if self.workspace is None:
            await self.send_error("invalid_key", "Unknown widget key.")
            await self.close(code=CLOSE_INVALID_KEY)

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)

    async def frame_hello(self, frame: dict) -> None:
        if self.hello_done:
            raise FrameError("already_hello", "hello was already sent on this socket.")
        last_seq = _optional_int(frame, "last_seq")
        info = await _visitor_hello(self.workspace, self.scope, frame)
        if info["blocked"]:
            await self._refuse_blocked()
            return
        self.visitor = info["visitor"]
        self.schedule = info["schedule"]
        self.agents_online = info["agents_online"]
        # Join before reading history so nothing committed in between is missed.
        await self._join(visitor_group(self.visitor.pk))
        await self._join(workspace_visitors_group(self.workspace.pk))
        self.hello_done = True
        conversation = info["conversation"]
        self.conversation_id = conversation.pk if conversation else None
        lang = frame.get("lang") if isinstance(frame.get("lang"), str) else ""
        await self.send_frame(
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "visitor_id": str(self.visitor.public_id),
                "visitor_token": info["token"],
                "conversation": (
                    frames.visitor_conversation(conversation)
                    | {
                        "last_seq": conversation.last_seq,
                        "queue_position": info["queue_position"],
                        "rated": conversation.rating is not None,
                    }
                    if conversation
                    else None
                ),
                **self._availability(),
                "departments": info["departments"],
                "bot": self.workspace.bot_answers_visitors,
                "welcome_text": self.workspace.welcome_text,
                "offline_text": self.workspace.offline_text,
                "limits": {
                    "max_text": settings.HELPDESK_MAX_MESSAGE_CHARS,
                    "max_upload_bytes": self.workspace.upload_max_bytes,
                    "upload_types": self.workspace.upload_type_list(),
                },
                "strings": widget_strings(lang[:35]),
            }
        )
        if conversation:
            await self._send_history(last_seq)

    async def _send_history(self, after_seq: int) -> None:
        messages, more = await _history(self.conversation_id, after_seq)
        await self.send_frame(
            {
                "type": "history",
                "conversation_id": self.conversation_id,
                "messages": messages,
                "has_more": more,
            }
        )

    async def pong_extra(self) -> dict:
        if self.visitor is None:
            return {}
        self.conversation_id, last_seq = await _visitor_last_seq(self.visitor)
        return {
            "conversation_id": self.conversation_id,
            "last_seq": last_seq,
            **self._availability(),
        }

    def _availability(self) -> dict:
        """Agents online (and within business hours), and when the hours next change.

        The widget pings at ``hours_change_at``, so the pong switches it live.
        """
        open_now, change = True, None
        if self.schedule is not None and self.schedule.enabled:
            now = timezone.now()
            open_now = self.schedule.is_open(now)
            # Computed at hello, then again only once it has passed (or hourly, when none
            # was found), not on every pong.
            until, change = getattr(self, "_hours_cache", (None, None))
            if until is None or until <= now:
                change = self.schedule.next_change(now)
                self._hours_cache = (change or now + timedelta(hours=1), change)
        return {
            "agents_online": self.agents_online and open_now,
            "open_now": open_now,
            "hours_change_at": change.isoformat() if change else None,
        }

    async def _refuse_blocked(self) -> None:
        self.blocked = True
        await self.send_error("blocked", "You cannot use this chat.")
        await self.close(code=blocklist.CLOSE_BLOCKED)

    async def frame_resume(self, frame: dict) -> None:
        after = _optional_int(frame, "last_seq")
        if self.conversation_id is None:
            self.conversation_id, _ = await _visitor_last_seq(self.visitor)
        if self.conversation_id is None:
            await self.send_frame(
                {"type": "history", "conversation_id": None, "messages": [], "has_more": False}
            )
            return
        await self._send_history(after)

    async def _ack(self, message) -> None:
        self.conversation_id = message.conversation_id
        await self.send_frame(frames.ack_frame(message))

    async def frame_message(self, frame: dict) -> None:
        if self.blocked:  # frames already in flight when the block arrived
            raise ChatError("blocked", "You cannot use this chat.")
        # Through the writer, the first message too: without a conversation id the batch
        # finds or opens the visitor's conversation (chat.message_store). Awaited here:
        # a visitor sends little, and its ack then comes before anything stored after it
        # (an automatic reply, the bot's answer).
        _require(frame, "client_id", str)
        item = _message_item(
            frame,
            conversation_id=self.conversation_id,
            workspace_id=self.workspace.pk,
            sender_kind=SenderKind.VISITOR,
            visitor_id=self.visitor.pk,
            department_id=frame.get("department") if self.conversation_id is None else None,
        )
        await self._ack(await self.store_message(item))

    async def frame_leave_message(self, frame: dict) -> None:
        if self.blocked:
            raise ChatError("blocked", "You cannot use this chat.")
        _require(frame, "client_id", str)
        await self._ack(await _visitor_leave(self.visitor, frame))

    async def frame_rate(self, frame: dict) -> None:
        conversation = await _visitor_rate(self.visitor, frame)
        await self.send_frame(
            {"type": "rated", "conversation_id": conversation.pk, "rating": conversation.rating}
        )

    async def frame_typing(self, frame: dict) -> None:
        active = _require(frame, "active", bool)
        if self.conversation_id is None:
            return  # nobody to tell yet
        await broadcast_now(
            conversation_group(self.conversation_id),  # the agents who have it open
            {
                "type": "chat.typing",
                "conversation_id": self.conversation_id,
                "visitor_id": self.visitor.pk,
                "sender": "visitor",
                "agent_name": None,
                "active": active,
            },
        )

    async def frame_receipt(self, frame: dict) -> None:
        seq = _require(frame, "seq", int)
        status = frame.get("status", "read")
        if status not in ("delivered", "read"):
            raise FrameError("invalid_field", "'status' is 'delivered' or 'read'.")
        await _visitor_receipt(self.visitor, seq, status == "read")

    async def frame_page(self, frame: dict) -> None:
        await _visitor_page(self.visitor, frame.get("page"))

    async def frame_handoff(self, frame: dict) -> None:
        # The bot's "a human will take over" message arrives as a normal message frame.
        await _visitor_handoff(self.visitor)

    # Events from the channel layer.
    async def chat_message(self, event: dict) -> None:
        self.conversation_id = event["message"]["conversation_id"]
        await self.send_frame({"type": "message", "message": event["message"]})

    async def chat_conversation(self, event: dict) -> None:
        conversation = event["conversation"]
        await self.send_frame(
            {
                "type": "conversation",
                "conversation": {
                    "id": conversation["id"],
                    "status": conversation["status"],
                    "agent_name": conversation.get("agent_name"),
                },
            }
        )

    async def chat_queue(self, event: dict) -> None:
        await self.send_frame(
            {
                "type": "queue",
                "conversation_id": event["conversation_id"],
                "position": event["position"],
            }
        )

    async def chat_typing(self, event: dict) -> None:
        if event.get("sender") == "agent" and event.get("visitor_id") == self.visitor.pk:
            await self.send_frame(
                {
                    "type": "typing",
                    "conversation_id": event["conversation_id"],
                    "sender": "agent",
                    "agent_name": event.get("agent_name"),
                    "active": event["active"],
                }
            )

    async def workspace_availability(self, event: dict) -> None:
        self.agents_online = event["agents_online"]
        widget_cache.agents_online_heard(self.workspace.pk, self.agents_online)
        if not self.hello_done:
            return  # welcome carries it
        availability = self._availability()
        await self.send_frame(
            {
                "type": "availability",
                "agents_online": availability["agents_online"],
                "open_now": availability["open_now"],
            }
        )

    async def visitor_blocked(self, event: dict) -> None:
        """chat.blocklist: this visitor, or an address range, was blocked."""
        network = event.get("network")
        if network is not None:
            parsed = blocklist.parse_network(network)
            if parsed is None or not blocklist.ip_in_networks(client_ip(self.scope), [parsed]):
                return
        await self._refuse_blocked()


# --- agent ------------------------------------------------------------------------------------


@db_call
def _agent_for_scope(scope: dict):
    return account_selectors.agent_for_user(user=scope.get("user"))


@db_call
def _agent_connected(agent, channel_name: str) -> None:
    account_services.agent_connection_open(agent=agent, channel_name=channel_name)


@db_call
def _agent_disconnected(agent, channel_name: str) -> None:
    account_services.agent_connection_close(agent=agent, channel_name=channel_name)


def _view_check(agent, view: Any, status: Any) -> tuple[str, str | None]:
    if view not in selectors.LIST_VIEWS:
        raise FrameError("invalid_field", "'view' is inbox, mine, unassigned, team or all.")
    if view == "all" and not agent.is_workspace_admin:
        raise ChatError("forbidden", "Only workspace admins can list all conversations.")
    if status is not None and status not in ConversationStatus.values:
        raise FrameError("invalid_field", "'status' is open, pending, resolved or snoozed.")
    return view, status


@db_call
def _agent_list(agent, view: str, status: str | None) -> dict:
    return {
        "view": view,
        "status": status,
        "conversations": [
            frames.conversation_frame(c)
            for c in selectors.conversation_list_for_agent(agent=agent, view=view, status=status)
        ],
        "last_message_id": selectors.workspace_last_message_id(workspace_id=agent.workspace_id),
    }


@db_call
def _agent_welcome(agent) -> dict:
    agent.refresh_from_db(fields=["presence", "is_workspace_admin", "display_name"])
    connected = set(
        AgentConnection.objects.filter(
            workspace_id=agent.workspace_id, last_seen_at__gte=account_selectors.fresh_since()
        ).values_list("agent_id", flat=True)
    )
    view = "all" if agent.is_workspace_admin else "inbox"
    return {
        "agent": {
            "id": agent.pk,
            "name": agent.display_name,
            "presence": agent.presence,
            "is_admin": agent.is_workspace_admin,
            "teams": list(agent.teams.values_list("pk", flat=True)),
        },
        "agents": [
            account_services.agent_presence_frame(a, connected=a.pk in connected)
            for a in selectors.workspace_agents(workspace_id=agent.workspace_id)
        ],
        "teams": [
            {"id": t.pk, "name": t.name}
            for t in Team.objects.filter(workspace_id=agent.workspace_id).order_by("name")
        ],
        "queue": routing.queue_summary(workspace_id=agent.workspace_id),
        "labels": [
            frames.label_frame(label)
            for label in labels.label_list(workspace_id=agent.workspace_id)
        ],
        "canned": [canned_frame(r) for r in canned_for_agent(agent=agent)],
        "view": view,
        "conversations": [
            frames.conversation_frame(c)
            for c in selectors.conversation_list_for_agent(agent=agent, view="all", status=None)
        ]
        if agent.is_workspace_admin
        else [
            frames.conversation_frame(c)
            for c in selectors.conversation_list_for_agent(agent=agent, view="inbox")
        ],
        "last_message_id": selectors.workspace_last_message_id(workspace_id=agent.workspace_id),
    }


@db_call
def _agent_open(agent, conversation_id, after_seq: int) -> dict:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    rows, more = selectors.messages_after(conversation_id=conversation.pk, after_seq=after_seq)
    return {
        "conversation": frames.conversation_frame(conversation),
        "visitor": frames.visitor_frame(conversation.visitor),
        "messages": [frames.message_frame(m) for m in rows],
        "has_more": more,
        "events": [
            frames.event_frame(e)
            for e in selectors.conversation_events(conversation_id=conversation.pk)
        ],
    }


@db_call
def _agent_receipt(agent, conversation_id, seq, read: bool) -> None:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    services.receipt_record(conversation=conversation, reader=SenderKind.AGENT, seq=seq, read=read)


@db_call
def _agent_resolve(agent, conversation_id) -> None:
    services.conversation_resolve(agent=agent, conversation_id=conversation_id)


@db_call
def _agent_typing_target(agent, conversation_id) -> int | None:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    return conversation.visitor_id if conversation else None


@db_call
def _agent_suggest(agent, conversation_id, channel_name: str) -> None:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    # Computed by a worker and sent to this socket only (as "suggestion"), never to the visitor.
    assist_suggest_task.delay(agent.pk, conversation.pk, channel_name)


@db_call
def _agent_heartbeat(agent, channel_name: str) -> int:
    account_services.agent_connection_touch(channel_name=channel_name)
    services.workspace_housekeeping(workspace_id=agent.workspace_id)
    return selectors.workspace_last_message_id(workspace_id=agent.workspace_id)


@db_call
def _agent_presence(agent, presence) -> None:
    account_services.agent_presence_set(agent=agent, presence=presence)


@db_call
def _agent_transfer(agent, frame: dict) -> None:
    services.conversation_transfer(
        agent=agent,
        conversation_id=frame["conversation_id"],
        to_agent_id=frame.get("agent_id"),
        to_team_id=frame.get("team_id"),
        note=frame.get("note") or "",
    )


@db_call
def _agent_note(agent, frame: dict) -> None:
    services.note_add(
        agent=agent,
        conversation_id=frame["conversation_id"],
        text=frame.get("text"),
        ref=frame.get("client_id"),
    )


@db_call
def _agent_status(agent, frame: dict) -> None:
    services.conversation_status_set(
        agent=agent,
        conversation_id=frame["conversation_id"],
        status=frame.get("status"),
        snooze_until=frame.get("snooze_until"),
    )


@db_call
def _agent_search(agent, q) -> list[dict]:
    return search.conversation_search(agent=agent, q=q)


@db_call
def _agent_block(agent, frame: dict) -> dict:
    entry, created = blocklist.visitor_block(
        agent=agent,
        conversation_id=frame["conversation_id"],
        scope=frame.get("scope", "visitor"),
        reason=frame.get("reason", ""),
    )
    return {
        "type": "blocked",
        "conversation_id": frame["conversation_id"],
        "scope": "visitor" if entry.visitor_id else "ip",
        "ip_network": entry.ip_network or None,
        "created": created,
    }


@db_call
def _agent_labels(agent, frame: dict) -> None:
    labels.conversation_labels_set(
        agent=agent,
        conversation_id=frame["conversation_id"],
        names=frame["labels"],
        ref=frame.get("client_id"),
    )


class AgentConsumer(FrameConsumer):
    """The console's socket: ``/ws/agent/``, for a logged-in agent (session cookie)."""

    handlers = {
        "hello": "frame_hello",
        "ping": "frame_ping",
        "open": "frame_open",
        "message": "frame_message",
        "typing": "frame_typing",
        "receipt": "frame_receipt",
        "resolve": "frame_resolve",
        "list": "frame_list",
        "suggest": "frame_suggest",
        "presence": "frame_presence",
        "transfer": "frame_transfer",
        "note": "frame_note",
        "status": "frame_status",
        "search": "frame_search",
        "labels": "frame_labels",
        "block": "frame_block",
    }

    async def connect(self) -> None:
        self.agent = await _agent_for_scope(self.scope)
        if self.agent is None:
            await self.close()  # HTTP 403: no agent session
            return
        await super().connect()
        self.group = workspace_agents_group(self.agent.workspace_id)
        self.watching: str | None = None  # the group of the conversation open on screen
        self.watching_id: int | None = None
        # The console's list (docs/protocol.md, conversation): the view and status it
        # asked for, and the conversations it was shown that may still be on it. A
        # conversation frame goes only where it changes what the list shows.
        self.list_filter: tuple[str, str | None] = ("all", None)
        self.team_ids: frozenset[int] = frozenset()
        self.shown: set[int] = set()
        # An agent can hear of one message twice (as assignee and as watcher).
        self._seen: deque = deque(maxlen=512)
        for group in (self.group, agent_group(self.agent.pk)):
            await self.channel_layer.group_add(group, self.channel_name)
        await _agent_connected(self.agent, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "agent", None) is None:
            return
        for group in (self.group, agent_group(self.agent.pk), self.watching):
            if group:
                await self.channel_layer.group_discard(group, self.channel_name)
        await _agent_disconnected(self.agent, self.channel_name)

    async def frame_hello(self, frame: dict) -> None:
        self.hello_done = True
        data = await _agent_welcome(self.agent)
        self.team_ids = frozenset(data["agent"]["teams"])
        self._listed(data["view"], None, data["conversations"])
        await self.send_frame({"type": "welcome", "protocol": PROTOCOL_VERSION, **data})

    async def frame_list(self, frame: dict) -> None:
        default = "all" if self.agent.is_workspace_admin else "inbox"
        view, status = _view_check(self.agent, frame.get("view", default), frame.get("status"))
        data = await _agent_list(self.agent, view, status)
        self._listed(view, status, data["conversations"])
        await self.send_frame({"type": "conversations", **data})

    def _listed(self, view: str, status: str | None, rows: list[dict]) -> None:
        self.list_filter = (view, status)
        self.shown = {row["id"] for row in rows}

    def _wants(self, row: dict) -> bool:
        """Whether the console needs this row: it is in the list's view, or the list (or
        the screen) shows it and must learn that it changed. Keeps ``shown`` current."""
        view, status = self.list_filter
        in_view = selectors.conversation_in_view(
            row, agent_id=self.agent.pk, team_ids=self.team_ids, view=view, status=status
        )
        if in_view:
            self.shown.add(row["id"])
            return True
        if row["id"] in self.shown:
            self.shown.discard(row["id"])  # the console drops it from its list
            return True
        return row["id"] == self.watching_id

    async def frame_presence(self, frame: dict) -> None:
        await _agent_presence(self.agent, _require(frame, "presence", str))

    async def frame_transfer(self, frame: dict) -> None:
        _require(frame, "conversation_id", int)
        await _agent_transfer(self.agent, frame)

    async def frame_note(self, frame: dict) -> None:
        _require(frame, "conversation_id", int)
        _require(frame, "text", str)
        await _agent_note(self.agent, frame)

    async def frame_status(self, frame: dict) -> None:
        _require(frame, "conversation_id", int)
        _require(frame, "status", str)
        await _agent_status(self.agent, frame)

    async def frame_search(self, frame: dict) -> None:
        q = _require(frame, "q", str)
        results = await _agent_search(self.agent, q)
        await self.send_frame({"type": "search_results", "q": q, "results": results})

    async def frame_labels(self, frame: dict) -> None:
        _require(frame, "conversation_id", int)
        _require(frame, "labels", list)
        await _agent_labels(self.agent, frame)

    async def frame_block(self, frame: dict) -> None:
        _require(frame, "conversation_id", int)
        await self.send_frame(await _agent_block(self.agent, frame))

    async def pong_extra(self) -> dict:
        return {"last_message_id": await _agent_heartbeat(self.agent, self.channel_name)}

    async def frame_open(self, frame: dict) -> None:
        conversation_id = _require(frame, "conversation_id", int)
        after = _optional_int(frame, "last_seq")
        data = await _agent_open(self.agent, conversation_id, after)
        group = conversation_group(conversation_id)
        if group != self.watching:
            # Join before answering so nothing committed after the history read is missed.
            await self.channel_layer.group_add(group, self.channel_name)
            if self.watching:
                await self.channel_layer.group_discard(self.watching, self.channel_name)
            self.watching, self.watching_id = group, conversation_id
        if data.get("conversation"):
            self._wants(data["conversation"])  # the list may gain it
        await self.send_frame({"type": "history", "conversation_id": conversation_id, **data})

    async def frame_message(self, frame: dict) -> None:
        conversation_id = _require(frame, "conversation_id", int)
        _require(frame, "client_id", str)
        item = _message_item(
            frame,
            conversation_id=conversation_id,
            workspace_id=self.agent.workspace_id,
            sender_kind=SenderKind.AGENT,
            agent_id=self.agent.pk,
        )
        await self.store_then(item, frame["client_id"], self._ack)

    async def _ack(self, message) -> None:
        await self.send_frame(frames.ack_frame(message))

    async def frame_typing(self, frame: dict) -> None:
        conversation_id = _require(frame, "conversation_id", int)
        active = _require(frame, "active", bool)
        visitor_id = await _agent_typing_target(self.agent, conversation_id)
        if visitor_id is None:
            raise ChatError("not_found", "No such conversation in your workspace.")
        event = {
            "type": "chat.typing",
            "conversation_id": conversation_id,
            "visitor_id": visitor_id,
            "sender": "agent",
            "agent_name": self.agent.display_name,
            "active": active,
        }
        await broadcast_now(visitor_group(visitor_id), event)
        await broadcast_now(
            conversation_group(conversation_id), event | {"skip": self.channel_name}
        )

    async def frame_receipt(self, frame: dict) -> None:
        conversation_id = _require(frame, "conversation_id", int)
        seq = _require(frame, "seq", int)
        status = frame.get("status", "read")
        if status not in ("delivered", "read"):
            raise FrameError("invalid_field", "'status' is 'delivered' or 'read'.")
        await _agent_receipt(self.agent, conversation_id, seq, status == "read")

    async def frame_resolve(self, frame: dict) -> None:
        await _agent_resolve(self.agent, _require(frame, "conversation_id", int))

    async def frame_suggest(self, frame: dict) -> None:
        conversation_id = _require(frame, "conversation_id", int)
        await _agent_suggest(self.agent, conversation_id, self.channel_name)

    # Events from the channel layer.
    async def chat_message(self, event: dict) -> None:
        key = (event["message"]["conversation_id"], event["message"]["seq"])
        if key in self._seen:
            return
        self._seen.append(key)
        self._wants(event["conversation"])  # the list may gain it
        await self.send_frame(
            {"type": "message", "message": event["message"], "conversation": event["conversation"]}
        )

    async def chat_conversation(self, event: dict) -> None:
        if self._wants(event["conversation"]):
            await self.send_frame({"type": "conversation", "conversation": event["conversation"]})

    async def chat_event(self, event: dict) -> None:
        key = ("event", event["event"]["id"])
        if key in self._seen:  # as assignee and as watcher
            return
        self._seen.append(key)
        frame = {
            "type": "event",
            "conversation_id": event["conversation_id"],
            "event": event["event"],
        }
        if event.get("ref"):
            frame["ref"] = event["ref"]
        await self.send_frame(frame)

    async def agent_presence(self, event: dict) -> None:
        if not self.hello_done:
            return  # the welcome frame carries everyone's presence
        if event["agent"]["id"] == self.agent.pk:
            self.agent.presence = event["agent"]["presence"]
        await self.send_frame({"type": "presence", "agent": event["agent"]})

    async def chat_queue_count(self, event: dict) -> None:
        if not self.hello_done:
            return
        await self.send_frame({"type": "queue", "queue": event["queue"]})

    async def assist_suggestion(self, event: dict) -> None:
        await self.send_frame(
            {
                "type": "suggestion",
                "conversation_id": event["conversation_id"],
                "text": event["text"],
                "source": event["source"],
                "confidence": event["confidence"],
                "reason": event["reason"],
            }
        )
