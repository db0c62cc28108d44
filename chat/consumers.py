"""WebSocket consumers for the widget (visitors) and the console (agents).

Thin by design: authenticate and join groups in ``connect``, validate the frame shape,
call one service through ``database_sync_to_async``, answer. The frames are documented
in docs/protocol.md; ``PROTOCOL_VERSION`` changes when a frame changes incompatibly.
"""

import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async as _database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts import selectors as account_selectors
from accounts import services as account_services
from knowledge import pipeline as bot_pipeline
from knowledge.tasks import assist_suggest_task

from . import frames, selectors, services
from .errors import ChatError
from .message_store import NewMessage
from .models import SenderKind
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

# Django's connections follow the async context into sync_to_async threads, so calls
# must stay thread-sensitive (one database thread per process). The hot path, storing
# messages, has its own thread and batches instead: see chat.writer.
database_sync_to_async = _database_sync_to_async

PROTOCOL_VERSION = 1
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

    async def connect(self) -> None:
        remember_event_loop()
        self.hello_done = False
        self._tokens = self.rate_burst
        self._tokens_at = time.monotonic()
        await self.accept()

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

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
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # deep nesting raises RecursionError
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


# --- visitor ----------------------------------------------------------------------------------


@database_sync_to_async
def _workspace_for_key(key: str):
    return account_selectors.workspace_get_by_key(widget_key=key)


@database_sync_to_async
def _visitor_hello(workspace, scope: dict, frame: dict) -> dict:
    visitor, token = services.visitor_identify(
        workspace=workspace,
        public_id=frame.get("visitor_id"),
        token=frame.get("visitor_token"),
        ip=client_ip(scope),
        user_agent=header(scope, b"user-agent"),
        language=frame.get("lang", ""),
        page=frame.get("page"),
    )
    conversation = selectors.conversation_current_for_visitor(visitor=visitor)
    return {
        "visitor": visitor,
        "token": token,
        "conversation": conversation,
        "agents_online": account_selectors.workspace_has_agents_online(workspace_id=workspace.pk),
    }


@database_sync_to_async
def _history(conversation_id: int, after_seq: int) -> tuple[list[dict], bool]:
    rows, more = selectors.messages_after(conversation_id=conversation_id, after_seq=after_seq)
    return [frames.message_frame(m) for m in rows], more


@database_sync_to_async
def _visitor_send(visitor, frame: dict):
    message, _ = services.visitor_message_send(
        visitor=visitor,
        client_id=frame.get("client_id"),
        text=frame.get("text"),
        attachment_id=frame.get("attachment_id"),
    )
    return message


@database_sync_to_async
def _visitor_leave(visitor, frame: dict):
    message, _ = services.visitor_leave_message(
        visitor=visitor,
        client_id=frame.get("client_id"),
        name=frame.get("name"),
        email=frame.get("email"),
        text=frame.get("text"),
    )
    return message


@database_sync_to_async
def _visitor_receipt(visitor, seq, read: bool) -> None:
    conversation = selectors.conversation_current_for_visitor(visitor=visitor)
    if conversation is None:
        raise ChatError("no_conversation", "There is no conversation yet.")
    services.receipt_record(
        conversation=conversation, reader=SenderKind.VISITOR, seq=seq, read=read
    )


@database_sync_to_async
def _visitor_last_seq(visitor) -> tuple[int | None, int]:
    conversation = selectors.conversation_current_for_visitor(visitor=visitor)
    return (conversation.pk, conversation.last_seq) if conversation else (None, 0)


@database_sync_to_async
def _visitor_page(visitor, page) -> None:
    services.visitor_page_view(visitor=visitor, page=page)


@database_sync_to_async
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
    }

    async def connect(self) -> None:
        self.visitor = None
        self.conversation_id = None
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
        self.visitor = info["visitor"]
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
                    {
                        "id": conversation.pk,
                        "status": conversation.status,
                        "last_seq": conversation.last_seq,
                    }
                    if conversation
                    else None
                ),
                "agents_online": info["agents_online"],
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
        return {"conversation_id": self.conversation_id, "last_seq": last_seq}

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
        _require(frame, "client_id", str)
        client_id, text = services.message_input_clean(
            client_id=frame["client_id"],
            text=frame.get("text"),
            attachment_id=frame.get("attachment_id"),
        )
        if self.conversation_id is None:  # the first message opens the conversation
            await self._ack(await _visitor_send(self.visitor, frame))
            return
        message = await self.store_message(
            NewMessage(
                conversation_id=self.conversation_id,
                workspace_id=self.workspace.pk,
                sender_kind=SenderKind.VISITOR,
                client_id=client_id,
                text=text,
                attachment_id=frame.get("attachment_id"),
                visitor_id=self.visitor.pk,
            )
        )
        await self._ack(message)

    async def frame_leave_message(self, frame: dict) -> None:
        _require(frame, "client_id", str)
        await self._ack(await _visitor_leave(self.visitor, frame))

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
                "conversation": {"id": conversation["id"], "status": conversation["status"]},
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
        await self.send_frame({"type": "availability", "agents_online": event["agents_online"]})


# --- agent ------------------------------------------------------------------------------------


@database_sync_to_async
def _agent_for_scope(scope: dict):
    return account_selectors.agent_for_user(user=scope.get("user"))


@database_sync_to_async
def _agent_connected(agent, channel_name: str) -> None:
    account_services.agent_connection_open(agent=agent, channel_name=channel_name)


@database_sync_to_async
def _agent_disconnected(agent, channel_name: str) -> None:
    account_services.agent_connection_close(agent=agent, channel_name=channel_name)


@database_sync_to_async
def _agent_welcome(agent) -> dict:
    return {
        "conversations": [
            frames.conversation_frame(c) for c in selectors.conversation_list_for_agent(agent=agent)
        ],
        "last_message_id": selectors.workspace_last_message_id(workspace_id=agent.workspace_id),
    }


@database_sync_to_async
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
    }


@database_sync_to_async
def _agent_receipt(agent, conversation_id, seq, read: bool) -> None:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    services.receipt_record(conversation=conversation, reader=SenderKind.AGENT, seq=seq, read=read)


@database_sync_to_async
def _agent_resolve(agent, conversation_id) -> None:
    services.conversation_resolve(agent=agent, conversation_id=conversation_id)


@database_sync_to_async
def _agent_typing_target(agent, conversation_id) -> int | None:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    return conversation.visitor_id if conversation else None


@database_sync_to_async
def _agent_suggest(agent, conversation_id, channel_name: str) -> None:
    conversation = selectors.conversation_get_for_agent(
        agent=agent, conversation_id=conversation_id
    )
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    # Computed by a worker and sent to this socket only (as "suggestion"), never to the visitor.
    assist_suggest_task.delay(agent.pk, conversation.pk, channel_name)


@database_sync_to_async
def _agent_heartbeat(agent, channel_name: str) -> int:
    account_services.agent_connection_touch(channel_name=channel_name)
    return selectors.workspace_last_message_id(workspace_id=agent.workspace_id)


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
    }

    async def connect(self) -> None:
        self.agent = await _agent_for_scope(self.scope)
        if self.agent is None:
            await self.close()  # HTTP 403: no agent session
            return
        await super().connect()
        self.group = workspace_agents_group(self.agent.workspace_id)
        self.watching: str | None = None  # the group of the conversation open on screen
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
        await self.send_frame(
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "agent": {
                    "id": self.agent.pk,
                    "name": self.agent.display_name,
                    "presence": self.agent.presence,
                },
                **data,
            }
        )

    async def frame_list(self, frame: dict) -> None:
        data = await _agent_welcome(self.agent)
        await self.send_frame({"type": "conversations", **data})

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
            self.watching = group
        await self.send_frame({"type": "history", "conversation_id": conversation_id, **data})

    async def frame_message(self, frame: dict) -> None:
        conversation_id = _require(frame, "conversation_id", int)
        _require(frame, "client_id", str)
        client_id, text = services.message_input_clean(
            client_id=frame["client_id"],
            text=frame.get("text"),
            attachment_id=frame.get("attachment_id"),
        )
        message = await self.store_message(
            NewMessage(
                conversation_id=conversation_id,
                workspace_id=self.agent.workspace_id,
                sender_kind=SenderKind.AGENT,
                client_id=client_id,
                text=text,
                attachment_id=frame.get("attachment_id"),
                agent_id=self.agent.pk,
            )
        )
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
        await self.send_frame(
            {"type": "message", "message": event["message"], "conversation": event["conversation"]}
        )

    async def chat_conversation(self, event: dict) -> None:
        await self.send_frame({"type": "conversation", "conversation": event["conversation"]})

    async def chat_event(self, event: dict) -> None:
        frame = {
            "type": "event",
            "conversation_id": event["conversation_id"],
            "event": event["event"],
        }
        if event.get("ref"):
            frame["ref"] = event["ref"]
        await self.send_frame(frame)

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
