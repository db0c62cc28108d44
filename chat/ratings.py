"""Satisfaction ratings: the visitor rates a resolved conversation 1-5, with a comment.

The widget asks when its conversation is resolved. A visitor may rate again while the
conversation is still resolved (a slip of the finger, a second thought): the new rating
replaces the old one, and each rating is recorded as a ``rating`` event in the timeline.
"""

import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import frames
from .errors import ChatError
from .models import Conversation, ConversationStatus, EventKind, Visitor
from .realtime import broadcast_on_commit, workspace_agents_group
from .timeline import event_record

COMMENT_MAX = 1000
# Control characters except tab and newlines.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def rating_clean(rating: Any) -> int:
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise ChatError("invalid_rating", "rating must be a whole number from 1 to 5.")
    return rating


def comment_clean(comment: Any) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise ChatError("invalid_comment", "comment must be a string.")
    comment = _CONTROL_RE.sub("", comment).replace("\r\n", "\n").strip()
    if len(comment) > COMMENT_MAX:
        raise ChatError("comment_too_long", f"comment is longer than {COMMENT_MAX} characters.")
    return comment


def conversation_rate(*, visitor: Visitor, rating: Any, comment: Any = None) -> Conversation:
    """Rate the visitor's current conversation, which must be resolved.

    Replaces an earlier rating; records a ``rating`` event; pushes the conversation to
    the agents after commit.
    """
    rating = rating_clean(rating)
    comment = comment_clean(comment)
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("visitor", "assignee", "team")
            .filter(visitor=visitor, workspace_id=visitor.workspace_id)
            .order_by("-created_at", "-pk")
            .first()
        )
        if conversation is None:
            raise ChatError("no_conversation", "There is no conversation yet.")
        if conversation.status != ConversationStatus.RESOLVED:
            raise ChatError("not_resolved", "Only a resolved conversation can be rated.")
        previous = conversation.rating
        conversation.rating = rating
        conversation.rating_comment = comment
        conversation.rated_at = timezone.now()
        conversation.save(update_fields=["rating", "rating_comment", "rated_at", "updated_at"])
        event_record(
            conversation=conversation,
            kind=EventKind.RATING,
            agent=conversation.assignee,
            text=comment,
            data={"rating": rating, "previous": previous},
        )
        frame = {
            "type": "chat.conversation",
            "conversation": frames.conversation_frame(frames.labels_prefetch([conversation])[0]),
        }
        # Every console of the workspace (as chat.routing.announce_conversation does).
        broadcast_on_commit(workspace_agents_group(conversation.workspace_id), frame)
    return conversation
