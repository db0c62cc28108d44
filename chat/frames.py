"""Rows rendered as the JSON objects of the WebSocket protocol (docs/protocol.md)."""

from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from django.urls import reverse

from .models import Attachment, Conversation, ConversationEvent, Label, Message, Visitor


def _ts(value) -> str | None:
    return value.isoformat() if value else None


def attachment_frame(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": str(attachment.public_id),
        "name": attachment.original_name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "is_image": attachment.is_image,
        "url": reverse("attachment", args=[attachment.public_id]),
    }


def message_frame(message: Message) -> dict[str, Any]:
    """A message as both sides see it; requires ``sender_agent`` and ``attachment`` loaded."""
    agent = message.sender_agent
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender": message.sender_kind,
        "agent_name": agent.display_name if agent else None,
        "client_id": message.client_id,
        "text": message.text,
        "attachment": attachment_frame(message.attachment) if message.attachment_id else None,
        "created_at": _ts(message.created_at),
        "delivered_at": _ts(message.delivered_at),
        "read_at": _ts(message.read_at),
    }


def visitor_frame(visitor: Visitor) -> dict[str, Any]:
    """What an agent sees of a visitor."""
    loc = visitor.location
    return {
        "id": visitor.pk,
        "public_id": str(visitor.public_id),
        "name": visitor.label,
        "email": visitor.email,
        "ip": visitor.ip_address,
        "country": visitor.country_code,
        "city": visitor.city,
        "location": {"lat": loc.y, "lon": loc.x} if loc else None,
        "browser": visitor.browser,
        "os": visitor.os,
        "device": visitor.device,
        "language": visitor.language,
        "current_url": visitor.current_url,
        "current_title": visitor.current_title,
        "referrer": visitor.referrer,
        "first_seen_at": _ts(visitor.first_seen_at),
        "last_seen_at": _ts(visitor.last_seen_at),
    }


def conversation_frame(conversation: Conversation) -> dict[str, Any]:
    """A row of the console's list; requires ``visitor`` and ``assignee`` loaded."""
    assignee = conversation.assignee
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "visitor": {
            "id": conversation.visitor_id,
            "name": conversation.visitor.label,
            "country": conversation.visitor.country_code,
        },
        "assignee": {"id": assignee.pk, "name": assignee.display_name} if assignee else None,
        "last_seq": conversation.last_seq,
        "last_message_at": _ts(conversation.last_message_at),
        "last_message_preview": conversation.last_message_preview,
        "unread": conversation.unread_by_agent,
        "created_at": _ts(conversation.created_at),
        "first_response_at": _ts(conversation.first_response_at),
        "resolved_at": _ts(conversation.resolved_at),
        "team": {"id": conversation.team_id, "name": conversation.team.name}
        if conversation.team_id
        else None,
        "queued_at": _ts(conversation.queued_at),
        "snoozed_until": _ts(conversation.snoozed_until),
        "first_response_seconds": conversation.first_response_seconds,
        "resolution_seconds": conversation.resolution_seconds,
        "rating": conversation.rating,
        "rating_comment": conversation.rating_comment,
        "rated_at": _ts(conversation.rated_at),
        "labels": [label.name for label in _labels(conversation)],
    }


LABELS_ATTR = "label_list"


def labels_lookup() -> Prefetch:
    """What ``conversation_frame`` reads: a conversation's labels as a list in
    ``LABELS_ATTR`` (``prefetch_related(labels_lookup())``, or :func:`labels_prefetch`)."""
    return Prefetch("labels", to_attr=LABELS_ATTR)


def labels_prefetch(conversations: Iterable[Conversation]) -> list[Conversation]:
    """Load the labels of ``conversations`` in one query (for ``conversation_frame``)."""
    rows = list(conversations)
    prefetch_related_objects(rows, labels_lookup())
    return rows


def _labels(conversation: Conversation) -> list[Label]:
    labels = getattr(conversation, LABELS_ATTR, None)
    return list(conversation.labels.all()) if labels is None else labels


def label_frame(label: Label) -> dict[str, Any]:
    return {"id": label.pk, "name": label.name, "color": label.color}


def visitor_conversation(conversation: Conversation) -> dict[str, Any]:
    """What a visitor sees of their conversation: never internal fields (team, notes)."""
    assignee = conversation.assignee
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "agent_name": assignee.display_name if assignee else None,
    }


def ack_frame(message: Message) -> dict[str, Any]:
    """The answer to a client's send, once the message is committed."""
    return {
        "type": "ack",
        "client_id": message.client_id,
        "conversation_id": message.conversation_id,
        "message_id": message.pk,
        "seq": message.seq,
        "created_at": _ts(message.created_at),
    }


def _agent_ref(agent) -> dict[str, Any] | None:
    return {"id": agent.pk, "name": agent.display_name} if agent else None


def event_frame(event: ConversationEvent) -> dict[str, Any]:
    """A timeline entry (system event or private note); for agents only."""
    return {
        "id": event.pk,
        "conversation_id": event.conversation_id,
        "kind": event.kind,
        "actor": _agent_ref(event.actor),
        "agent": _agent_ref(event.agent),
        "team": {"id": event.team.pk, "name": event.team.name} if event.team else None,
        "text": event.text,
        "data": event.data,
        "created_at": _ts(event.created_at),
    }
