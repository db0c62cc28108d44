"""The widget's socket (VisitorConsumer) against the real ASGI app, PostgreSQL and Redis."""

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.consumers import CLOSE_INVALID_KEY, VisitorConsumer
from chat.models import Attachment, Conversation, Message, PageView, SenderKind, Visitor
from chat.tests.factories import VisitorFactory
from chat.tests.sockets import (
    agent_socket,
    assert_no_message,
    assert_silent,
    receive_error,
    receive_message,
    receive_until,
    row_counts,
    same_visitor,
    send_all,
    visitor_communicator,
    visitor_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)

IPHONE_UA = (
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    b"(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


async def send_text(comm, client_id: str, text: str = "hello", *, echo: bool = True) -> dict:
    """Send a message; return its ack once the ack and (when ``echo``) the echo arrived.

    The sender's socket is in the visitor's group, so it also gets the message itself,
    before or after the ack. A retry of a stored client_id is acked but not echoed again.
    """
    return await send_acked(
        comm, {"type": "message", "client_id": client_id, "text": text}, echo=echo
    )


async def send_acked(comm, frame: dict, *, echo: bool = True) -> dict:
    """Send a frame that stores a message; return the ack once it and the echo arrived."""
    client_id = frame["client_id"]
    await comm.send_json_to(frame)
    ack, echoed = None, not echo
    while ack is None or not echoed:
        frame = await comm.receive_json_from(timeout=5)
        assert frame["type"] != "error", frame
        if frame["type"] == "ack" and frame["client_id"] == client_id:
            ack = frame
        elif frame["type"] == "message" and frame["message"]["client_id"] == client_id:
            echoed = True
    return ack


async def agent_reply(comm, conversation_id: int, client_id: str, text: str) -> dict:
    await comm.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "client_id": client_id,
            "text": text,
        }
    )
    return await receive_until(comm, "ack")


async def ping(comm) -> dict:
    """Round-trip a ping: frames are handled in order, so earlier ones are done after it."""
    await comm.send_json_to({"type": "ping"})
    return await receive_until(comm, "pong")


# --- hello / welcome ---------------------------------------------------------------------------


async def test_new_visitor_gets_id_and_token(workspace):
    comm, welcome = await visitor_socket(workspace)

    assert welcome["protocol"] == 2
    visitor_id = uuid.UUID(welcome["visitor_id"])
    assert isinstance(welcome["visitor_token"], str) and welcome["visitor_token"]
    assert welcome["conversation"] is None
    assert welcome["agents_online"] is False
    assert welcome["welcome_text"] == workspace.welcome_text
    assert welcome["limits"]["max_text"] == settings.HELPDESK_MAX_MESSAGE_CHARS
    assert await Visitor.objects.filter(workspace=workspace, public_id=visitor_id).aexists()
    # No conversation, so no history frame follows the welcome.
    await assert_silent(comm, 0.2)
    await comm.disconnect()


async def test_reconnect_with_id_and_token_is_the_same_visitor(workspace):
    first, welcome = await visitor_socket(workspace)
    ack = await send_text(first, "m1", "first visit")
    await first.disconnect()

    again, welcome2 = await visitor_socket(workspace, hello=same_visitor(welcome))
    assert welcome2["visitor_id"] == welcome["visitor_id"]
    assert welcome2["visitor_token"] == welcome["visitor_token"]
    assert welcome2["conversation"] == {
        "id": ack["conversation_id"],
        "status": "open",
        "last_seq": 1,
        "agent_name": None,
        "queue_position": 1,  # nobody is online: first in the queue
        "rated": False,
    }
    history = await receive_until(again, "history")
    assert [m["text"] for m in history["messages"]] == ["first visit"]
    assert await Visitor.objects.acount() == 1
    await again.disconnect()


@pytest.mark.parametrize("token", ["forged", "", None, 12345])
async def test_wrong_token_gets_a_new_visitor_without_history(workspace, token):
    first, welcome = await visitor_socket(workspace)
    await send_text(first, "m1", "secret of the first visitor")
    await first.disconnect()

    other, welcome2 = await visitor_socket(
        workspace, hello={"visitor_id": welcome["visitor_id"], "visitor_token": token}
    )
    assert welcome2["visitor_id"] != welcome["visitor_id"]
    assert welcome2["conversation"] is None
    await assert_silent(other, 0.3)  # no history frame
    assert await Visitor.objects.acount() == 2
    await other.disconnect()


async def test_second_hello_on_a_socket_is_refused(workspace):
    comm, welcome = await visitor_socket(workspace)
    await comm.send_json_to({"type": "hello"})
    assert (await receive_error(comm))["code"] == "already_hello"
    assert await Visitor.objects.acount() == 1
    await comm.disconnect()


# --- what is learnt about the visitor ------------------------------------------------------------


async def test_visitor_details_are_recorded(workspace):
    page = {
        "url": "https://shop.example.com/pricing?plan=pro",
        "title": "Pricing\n<Shop>",
        "referrer": "https://www.google.com/",
    }
    comm, welcome = await visitor_socket(workspace, hello={"page": page, "lang": "en-GB"})

    visitor = await Visitor.objects.aget(public_id=welcome["visitor_id"])
    assert visitor.ip_address == "81.2.69.160"
    assert (visitor.country_code, visitor.city) == ("GB", "London")
    assert visitor.location is not None
    assert visitor.location.y == pytest.approx(51.51, abs=0.1)
    assert visitor.location.x == pytest.approx(-0.09, abs=0.1)
    assert visitor.browser.startswith("Chrome 120")
    assert visitor.os == "Windows 10"
    assert visitor.device == "desktop"
    assert visitor.language == "en-GB"
    assert visitor.current_url == page["url"]
    assert visitor.current_title == "Pricing <Shop>"  # one line, text kept as text
    assert visitor.referrer == page["referrer"]
    views = [v async for v in PageView.objects.filter(visitor=visitor).values("url", "title")]
    assert views == [{"url": page["url"], "title": "Pricing <Shop>"}]

    # Moving to another page records it (no reply frame: the pong shows it was handled).
    await comm.send_json_to(
        {"type": "page", "page": {"url": "https://shop.example.com/cart", "title": "Cart"}}
    )
    await ping(comm)
    await visitor.arefresh_from_db()
    assert (visitor.current_url, visitor.current_title) == ("https://shop.example.com/cart", "Cart")
    assert await PageView.objects.filter(visitor=visitor).acount() == 2
    await comm.disconnect()


async def test_agent_sees_the_visitor_details(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    page = {"url": "https://shop.example.com/", "title": "Home"}
    comm, welcome = await visitor_socket(workspace, hello={"page": page})
    ack = await send_text(comm, "m1")
    await agent_comm.send_json_to({"type": "open", "conversation_id": ack["conversation_id"]})
    history = await receive_until(agent_comm, "history")
    seen = history["visitor"]
    assert seen["public_id"] == welcome["visitor_id"]
    assert (seen["ip"], seen["country"], seen["city"]) == ("81.2.69.160", "GB", "London")
    assert seen["location"]["lat"] == pytest.approx(51.51, abs=0.1)
    assert seen["browser"].startswith("Chrome") and seen["os"] == "Windows 10"
    assert (seen["current_url"], seen["current_title"]) == (page["url"], "Home")
    await comm.disconnect()
    await agent_comm.disconnect()


async def test_reconnect_from_another_place_and_device_updates_the_details(workspace):
    first, welcome = await visitor_socket(workspace)
    await first.disconnect()
    again, _ = await visitor_socket(
        workspace,
        hello=same_visitor(welcome),
        client=("175.16.199.1", 40000),
        user_agent=IPHONE_UA,
    )
    visitor = await Visitor.objects.aget(public_id=welcome["visitor_id"])
    assert visitor.ip_address == "175.16.199.1"
    assert (visitor.country_code, visitor.city) == ("CN", "Changchun")
    assert visitor.browser.startswith("Mobile Safari")
    assert visitor.os.startswith("iOS")
    assert visitor.device == "mobile"
    await again.disconnect()


async def test_page_frame_with_a_bad_url_is_refused(workspace):
    comm, _ = await visitor_socket(workspace)
    before = await row_counts()
    await comm.send_json_to({"type": "page", "page": {"url": "javascript:alert(1)"}})
    assert (await receive_error(comm))["code"] == "invalid_page"
    assert await row_counts() == before
    await comm.disconnect()


# --- send, ack, fan-out ------------------------------------------------------------------------


@sync_to_async(thread_sensitive=False)
def _committed(message_id: int) -> dict | None:
    """The message as a fresh connection in another thread sees it (committed data only)."""
    try:
        return (
            Message.objects.filter(pk=message_id)
            .values("seq", "client_id", "text", "sender_kind", "conversation_id")
            .first()
        )
    finally:
        connection.close()


async def test_message_is_acked_after_commit_and_fanned_out(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    tab1, welcome = await visitor_socket(workspace)
    tab2, _ = await visitor_socket(workspace, hello=same_visitor(welcome))

    text = "Where is my <b>order</b>?"  # text stays text: stored and sent as typed
    ack = await send_text(tab1, "c-1", text)
    assert ack["client_id"] == "c-1" and ack["seq"] == 1
    # The ack promises the row is committed: another connection sees it now.
    assert await _committed(ack["message_id"]) == {
        "seq": 1,
        "client_id": "c-1",
        "text": text,
        "sender_kind": SenderKind.VISITOR,
        "conversation_id": ack["conversation_id"],
    }

    other_tab = await receive_message(tab2)
    assert other_tab["message"]["seq"] == 1
    assert other_tab["message"]["text"] == text
    at_agent = await receive_message(agent_comm)
    assert at_agent["message"]["id"] == ack["message_id"]
    assert at_agent["message"]["text"] == text
    assert at_agent["conversation"]["id"] == ack["conversation_id"]
    assert at_agent["conversation"]["unread"] == 1

    ack2 = await send_text(tab2, "c-2", "Order 42")
    assert (ack2["seq"], ack2["conversation_id"]) == (2, ack["conversation_id"])
    assert (await receive_message(tab1))["message"]["text"] == "Order 42"
    assert (await receive_message(agent_comm))["message"]["seq"] == 2
    for comm in (tab1, tab2, agent_comm):
        await comm.disconnect()


async def test_leave_message_keeps_contact_and_message(workspace):
    comm, welcome = await visitor_socket(workspace)
    ack = await send_acked(
        comm,
        {
            "type": "leave_message",
            "client_id": "lm-1",
            "name": "Ada",
            "email": "ada@example.com",
            "text": "Call me back",
        },
    )
    assert ack["seq"] == 1
    visitor = await Visitor.objects.aget(public_id=welcome["visitor_id"])
    assert (visitor.name, visitor.email) == ("Ada", "ada@example.com")
    assert await Message.objects.filter(pk=ack["message_id"], text="Call me back").aexists()

    before = await row_counts()
    await comm.send_json_to(
        {"type": "leave_message", "client_id": "lm-2", "name": "Eve", "email": "no", "text": "x"}
    )
    assert (await receive_error(comm))["code"] == "invalid_email"
    assert await row_counts() == before
    await visitor.arefresh_from_db()
    assert visitor.name == "Ada"
    await comm.disconnect()


# --- resume after a gap ------------------------------------------------------------------------


async def test_reconnect_with_last_seq_gets_exactly_the_missing_messages(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    comm, welcome = await visitor_socket(workspace)
    acks = [await send_text(comm, f"v{i}", f"visitor {i}") for i in (1, 2, 3)]
    assert [a["seq"] for a in acks] == [1, 2, 3]
    conversation_id = acks[0]["conversation_id"]
    await comm.disconnect()

    replies = [
        await agent_reply(agent_comm, conversation_id, f"a{i}", f"agent {i}") for i in (1, 2)
    ]
    assert [r["seq"] for r in replies] == [4, 5]

    comm, welcome2 = await visitor_socket(workspace, hello={**same_visitor(welcome), "last_seq": 3})
    assert welcome2["conversation"]["last_seq"] == 5
    history = await receive_until(comm, "history")
    assert history["conversation_id"] == conversation_id
    assert [(m["seq"], m["sender"], m["text"]) for m in history["messages"]] == [
        (4, "agent", "agent 1"),
        (5, "agent", "agent 2"),
    ]
    assert history["has_more"] is False
    await assert_silent(comm)  # nothing doubled as live frames

    # A fresh page (last_seq 0) gets the whole conversation, in order.
    fresh, _ = await visitor_socket(workspace, hello=same_visitor(welcome))
    history = await receive_until(fresh, "history")
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3, 4, 5]
    for c in (comm, fresh, agent_comm):
        await c.disconnect()


async def test_resume_frame_sends_what_came_after_last_seq(workspace):
    comm, welcome = await visitor_socket(workspace)
    await comm.send_json_to({"type": "resume", "last_seq": 0})
    empty = await receive_until(comm, "history")
    assert empty == {"type": "history", "conversation_id": None, "messages": [], "has_more": False}

    for i in (1, 2, 3):
        await send_text(comm, f"m{i}", f"text {i}")
    await comm.send_json_to({"type": "resume", "last_seq": 1})
    history = await receive_until(comm, "history")
    assert [(m["seq"], m["text"]) for m in history["messages"]] == [(2, "text 2"), (3, "text 3")]

    await comm.send_json_to({"type": "resume", "last_seq": 3})
    assert (await receive_until(comm, "history"))["messages"] == []

    for bad in ("2", -1, True, 1.5):
        await comm.send_json_to({"type": "resume", "last_seq": bad})
        assert (await receive_error(comm))["code"] == "invalid_field", bad
    await comm.disconnect()


async def test_history_pages_with_has_more(workspace, settings):
    settings.HELPDESK_HISTORY_LIMIT = 2
    comm, welcome = await visitor_socket(workspace)
    for i in range(1, 6):
        await send_text(comm, f"m{i}", f"text {i}")
    await comm.disconnect()

    comm, _ = await visitor_socket(workspace, hello=same_visitor(welcome))
    pages = []
    history = await receive_until(comm, "history")
    while True:
        pages.append(([m["seq"] for m in history["messages"]], history["has_more"]))
        if not history["has_more"]:
            break
        await comm.send_json_to({"type": "resume", "last_seq": history["messages"][-1]["seq"]})
        history = await receive_until(comm, "history")
    assert pages == [([1, 2], True), ([3, 4], True), ([5], False)]
    await comm.disconnect()


# --- idempotent sends --------------------------------------------------------------------------


async def test_duplicate_client_id_is_stored_once(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    comm, _ = await visitor_socket(workspace)
    first = await send_text(comm, "retry-me", "original")
    second = await send_text(comm, "retry-me", "changed on retry", echo=False)
    assert second["seq"] == first["seq"] == 1
    assert second["message_id"] == first["message_id"]
    texts = [m.text async for m in Message.objects.all()]
    assert texts == ["original"]
    conversation = await Conversation.objects.aget(pk=first["conversation_id"])
    assert (conversation.last_seq, conversation.unread_by_agent) == (1, 1)
    # Fanned out once, not once per retry.
    assert (await receive_message(agent_comm))["message"]["client_id"] == "retry-me"
    await assert_no_message(agent_comm)  # (the assignment's conversation frame may come)
    await comm.disconnect()
    await agent_comm.disconnect()


@pytest.mark.parametrize("existing_conversation", [False, True])
async def test_concurrent_sends_of_one_client_id_store_one_row(workspace, existing_conversation):
    # In one process database_sync_to_async serialises these on one thread; the
    # two-server test races them for real.
    tab1, welcome = await visitor_socket(workspace)
    tab2, _ = await visitor_socket(workspace, hello=same_visitor(welcome))
    if existing_conversation:
        await send_text(tab1, "earlier")
    frame = {"type": "message", "client_id": "same-id", "text": "sent from two tabs"}
    await send_all([(tab1, frame), (tab2, frame)])
    ack1 = await receive_until(tab1, "ack")
    ack2 = await receive_until(tab2, "ack")
    assert ack1["message_id"] == ack2["message_id"]
    assert ack1["seq"] == ack2["seq"] == (2 if existing_conversation else 1)
    assert await Message.objects.filter(client_id="same-id").acount() == 1
    assert await Conversation.objects.acount() == 1
    await tab1.disconnect()
    await tab2.disconnect()


# --- bad input gets an error and changes nothing -----------------------------------------------

MAX_CHARS = settings.HELPDESK_MAX_MESSAGE_CHARS
MAX_FRAME = settings.HELPDESK_MAX_FRAME_BYTES


def _msg(**fields) -> dict:
    return {"type": "message", "client_id": "bad-1", "text": "hi", **fields}


# (case id, frame: dict -> JSON text, str -> raw text, bytes -> binary, callable(ctx) -> dict,
#  expected error code)
BAD_FRAMES = [
    ("invalid-json", '{"type": "message", ', "invalid_json"),
    ("deeply-nested-json", "[" * (MAX_FRAME - 100), "invalid_json"),
    # A lone UTF-16 surrogate cannot be stored (PostgreSQL text is UTF-8): refused at the
    # door, never handed to the writer, where it would fail the whole batch.
    (
        "lone-surrogate",
        '{"type": "message", "client_id": "bad-1", "text": "a\\ud800b"}',
        "invalid_json",
    ),
    ("nan", '{"type": "receipt", "seq": NaN}', "invalid_json"),
    ("huge-integer", {"type": "receipt", "seq": 10**30}, "invalid_field"),
    ("json-array", '[{"type": "message"}]', "invalid_frame"),
    ("json-string", '"message"', "invalid_frame"),
    ("json-null", "null", "invalid_frame"),
    ("unknown-type", {"type": "delete_everything"}, "unknown_type"),
    ("type-not-string", {"type": 7, "client_id": "x"}, "invalid_frame"),
    ("missing-type", {"client_id": "bad-1", "text": "hi"}, "invalid_frame"),
    ("oversize-frame", _msg(text="x" * (MAX_FRAME + 1)), "frame_too_large"),
    # The limit is in bytes: 3-byte characters overflow it with fewer characters.
    ("oversize-frame-multibyte", _msg(pad="中" * (MAX_FRAME // 3 + 10)), "frame_too_large"),
    ("text-too-long", _msg(text="x" * (MAX_CHARS + 1)), "text_too_long"),
    ("missing-client-id", {"type": "message", "text": "hi"}, "missing_field"),
    ("client-id-null", _msg(client_id=None), "missing_field"),
    ("client-id-spaces", _msg(client_id="has spaces"), "invalid_client_id"),
    ("client-id-too-long", _msg(client_id="x" * 65), "invalid_client_id"),
    ("client-id-empty", _msg(client_id=""), "invalid_client_id"),
    ("client-id-int", _msg(client_id=5), "invalid_field"),
    ("text-int", _msg(text=5), "invalid_text"),
    ("text-list", _msg(text=["hi"]), "invalid_text"),
    ("receipt-seq-string", {"type": "receipt", "seq": "3"}, "invalid_field"),
    ("receipt-seq-bool", {"type": "receipt", "seq": True}, "invalid_field"),
    ("receipt-bad-status", {"type": "receipt", "seq": 1, "status": "seen"}, "invalid_field"),
    ("typing-active-string", {"type": "typing", "active": "yes"}, "invalid_field"),
    ("binary-frame", b'{"type": "ping"}', "binary_not_supported"),
    ("empty-text", _msg(text=""), "empty_message"),
    ("blank-text", _msg(text=" \n\t\x00 "), "empty_message"),
    ("no-text", {"type": "message", "client_id": "bad-1"}, "empty_message"),
    ("attachment-not-uuid", _msg(text="", attachment_id="../../etc/passwd"), "invalid_attachment"),
    ("attachment-unknown", lambda ctx: _msg(attachment_id=str(uuid.uuid4())), "invalid_attachment"),
    (
        "attachment-of-other-visitor",
        lambda ctx: _msg(attachment_id=ctx["other_visitor_upload"]),
        "invalid_attachment",
    ),
    (
        "attachment-of-agent",
        lambda ctx: _msg(attachment_id=ctx["agent_upload"]),
        "invalid_attachment",
    ),
    (
        "attachment-of-other-workspace",
        lambda ctx: _msg(attachment_id=ctx["other_workspace_upload"]),
        "invalid_attachment",
    ),
]


# Refused before the frame is read as an object, so the error carries no ``ref``.
UNPARSED = {"invalid_json", "invalid_frame", "frame_too_large", "binary_not_supported"}


@sync_to_async
def _foreign_uploads(workspace) -> dict:
    """Unused uploads the visitor under test does not own."""

    def upload(**owner) -> str:
        return str(
            Attachment.objects.create(
                file="attachments/none",
                original_name="a.png",
                content_type="image/png",
                size=10,
                **owner,
            ).public_id
        )

    other_workspace = WorkspaceFactory()
    return {
        "other_visitor_upload": upload(
            workspace=workspace, visitor=VisitorFactory(workspace=workspace)
        ),
        "agent_upload": upload(workspace=workspace, agent=AgentFactory(workspace=workspace)),
        "other_workspace_upload": upload(
            workspace=other_workspace, visitor=VisitorFactory(workspace=other_workspace)
        ),
    }


async def _send_raw(comm, frame) -> None:
    if isinstance(frame, bytes):
        await comm.send_to(bytes_data=frame)
    elif isinstance(frame, str):
        await comm.send_to(text_data=frame)
    else:
        await comm.send_to(text_data=json.dumps(frame, ensure_ascii=False))


async def _expect_refused(comm, frame, code: str) -> dict:
    """Send a bad frame; it gets ``code``, nothing is written, and nothing else is sent."""
    before = await row_counts()
    last_seqs = [c.last_seq async for c in Conversation.objects.order_by("pk")]
    await _send_raw(comm, frame)
    error = await receive_error(comm)
    assert error["code"] == code
    assert error["message"]
    if code not in UNPARSED and isinstance(frame.get("client_id"), str):
        assert error["ref"] == frame["client_id"]  # the widget can match it to its message
    # The socket still works, and nothing else was sent (no ack, no echo): the very next
    # frame is the answer to a ping sent after the bad frame.
    await comm.send_json_to({"type": "ping"})
    pong = await comm.receive_json_from(timeout=5)
    assert pong["type"] == "pong", pong
    assert await row_counts() == before
    assert [c.last_seq async for c in Conversation.objects.order_by("pk")] == last_seqs
    return pong


@pytest.mark.parametrize(
    ("frame", "code"), [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES]
)
async def test_bad_frame_gets_an_error_and_writes_nothing(workspace, frame, code):
    ctx = await _foreign_uploads(workspace)
    if callable(frame):
        frame = frame(ctx)
    comm, _ = await visitor_socket(workspace)
    # A new visitor: no conversation may be opened by a refused frame...
    pong = await _expect_refused(comm, frame, code)
    assert pong["conversation_id"] is None
    # ...and one with a conversation: nothing is added to it.
    ack = await send_text(comm, "good-1")
    pong = await _expect_refused(comm, frame, code)
    assert (pong["conversation_id"], pong["last_seq"]) == (ack["conversation_id"], 1)
    await comm.disconnect()


async def test_message_before_hello_is_refused(workspace):
    comm = visitor_communicator(workspace.widget_key)
    assert (await comm.connect(timeout=5))[0]
    before = await row_counts()
    for kind in ("message", "resume", "typing", "receipt", "page", "leave_message"):
        await comm.send_json_to({"type": kind, "client_id": "early", "text": "hi", "seq": 1})
        error = await receive_error(comm)
        assert error["code"] == "hello_required", kind
    assert await row_counts() == before
    # ping is allowed before hello, and says nothing about a visitor yet.
    assert await ping(comm) == {"type": "pong"}
    await comm.disconnect()


async def test_frames_beyond_the_rate_limit_are_refused(workspace):
    comm = visitor_communicator(workspace.widget_key)
    assert (await comm.connect(timeout=5))[0]
    total = 100  # > burst (40) + what 20/s refills while the burst is handled
    for _ in range(total):
        await comm.send_json_to({"type": "ping"})
    frames = [await comm.receive_json_from(timeout=5) for _ in range(total)]
    limited = [f for f in frames if f["type"] == "error"]
    assert limited and all(f["code"] == "rate_limited" for f in limited)
    assert sum(f["type"] == "pong" for f in frames) + len(limited) == total
    await comm.disconnect()


async def test_rate_limited_messages_are_not_stored(workspace, monkeypatch):
    # A small bucket with (practically) no refill makes the count exact.
    monkeypatch.setattr(VisitorConsumer, "rate_burst", 5.0)
    monkeypatch.setattr(VisitorConsumer, "rate_per_second", 0.001)
    comm, _ = await visitor_socket(workspace)  # hello takes one token
    for i in range(10):
        await comm.send_json_to({"type": "message", "client_id": f"r{i}", "text": f"n{i}"})
    acks, limited = [], []
    while len(acks) + len(limited) < 10:
        frame = await comm.receive_json_from(timeout=5)
        if frame["type"] == "ack":
            acks.append(frame)
        elif frame["type"] == "error":
            limited.append(frame)
    assert len(acks) == 4
    assert {f["code"] for f in limited} == {"rate_limited"}
    assert sorted([m.client_id async for m in Message.objects.all()]) == sorted(
        a["client_id"] for a in acks
    )
    await comm.disconnect()


# --- who may open a widget socket --------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.org",
        "https://shop.example.com.evil.org",
        "http://shop.example.com",  # scheme is part of the origin
        "null",
        None,  # no Origin header at all
    ],
)
async def test_foreign_or_missing_origin_is_refused(workspace, origin):
    comm = visitor_communicator(workspace.widget_key, origin=origin)
    connected, _ = await comm.connect(timeout=5)
    assert connected is False
    assert await Visitor.objects.acount() == 0
    await comm.disconnect()


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://chat.example.net", "chat.example.net"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("https://SHOP.example.com", "chat.example.net"),  # listed origin, any case
    ],
)
async def test_own_or_listed_origin_is_allowed(workspace, origin, host):
    comm = visitor_communicator(workspace.widget_key, origin=origin, host=host)
    connected, _ = await comm.connect(timeout=5)
    assert connected is True
    await comm.send_json_to({"type": "hello"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "welcome"
    await comm.disconnect()


@pytest.mark.parametrize("key", ["no-such-key", "", "x" * 200])
async def test_invalid_widget_key_gets_error_and_close_4004(workspace, key):
    comm = visitor_communicator(key)
    connected, _ = await comm.connect(timeout=5)
    assert connected is True
    error = await receive_error(comm)
    assert error["code"] == "invalid_key"
    assert await comm.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": CLOSE_INVALID_KEY,
    }
    assert await Visitor.objects.acount() == 0
    await comm.disconnect()


# --- a visitor sees only its own conversation --------------------------------------------------


async def test_visitor_never_receives_another_visitors_traffic(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    alice, _ = await visitor_socket(workspace)
    bob, _ = await visitor_socket(workspace)

    ack = await send_text(alice, "a1", "alice's secret")
    await receive_message(agent_comm)
    conversation_id = ack["conversation_id"]
    await agent_reply(agent_comm, conversation_id, "r1", "reply to alice")
    assert (await receive_message(alice, sender="agent"))["message"]["text"] == "reply to alice"
    await agent_comm.send_json_to(
        {"type": "typing", "conversation_id": conversation_id, "active": True}
    )
    assert (await receive_until(alice, "typing"))["sender"] == "agent"
    await agent_comm.send_json_to({"type": "receipt", "conversation_id": conversation_id, "seq": 1})
    assert (await receive_until(alice, "receipt"))["reader"] == "agent"
    await agent_comm.send_json_to({"type": "resolve", "conversation_id": conversation_id})
    assert (await receive_until(alice, "conversation"))["conversation"]["status"] == "resolved"

    await assert_silent(bob)
    for comm in (alice, bob, agent_comm):
        await comm.disconnect()


async def test_another_visitors_id_without_its_token_gets_nothing_of_theirs(workspace):
    alice, alice_welcome = await visitor_socket(workspace)
    await send_text(alice, "a1", "alice's secret")
    bob, bob_welcome = await visitor_socket(workspace)
    await send_text(bob, "b1", "bob's own")

    for token in (bob_welcome["visitor_token"], alice_welcome["visitor_token"][:-1] + "x"):
        intruder, welcome = await visitor_socket(
            workspace,
            hello={
                "visitor_id": alice_welcome["visitor_id"],
                "visitor_token": token,
                "last_seq": 0,
            },
        )
        assert welcome["visitor_id"] not in (alice_welcome["visitor_id"], bob_welcome["visitor_id"])
        assert welcome["conversation"] is None
        await intruder.send_json_to({"type": "resume", "last_seq": 0})
        history = await receive_until(intruder, "history")
        assert history["messages"] == [] and history["conversation_id"] is None
        await intruder.disconnect()
    await alice.disconnect()
    await bob.disconnect()


async def test_visitor_token_is_scoped_to_its_workspace(workspace):
    other = await sync_to_async(WorkspaceFactory)()
    comm, welcome = await visitor_socket(workspace)
    await send_text(comm, "a1", "secret")
    await comm.disconnect()
    comm, welcome2 = await visitor_socket(other, hello=same_visitor(welcome))
    assert welcome2["visitor_id"] != welcome["visitor_id"]
    assert welcome2["conversation"] is None
    await comm.disconnect()


async def test_receipt_and_resume_cannot_touch_another_visitors_conversation(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    alice, _ = await visitor_socket(workspace)
    ack = await send_text(alice, "a1", "alice's question")
    alice_conversation = ack["conversation_id"]
    reply = await agent_reply(agent_comm, alice_conversation, "r1", "answer for alice")
    await receive_message(alice, sender="agent")

    bob, _ = await visitor_socket(workspace)
    # Bob has no conversation: naming Alice's does not make it his.
    await bob.send_json_to({"type": "receipt", "conversation_id": alice_conversation, "seq": 2})
    assert (await receive_error(bob))["code"] == "no_conversation"
    await bob.send_json_to({"type": "resume", "conversation_id": alice_conversation, "last_seq": 0})
    history = await receive_until(bob, "history")
    assert history["conversation_id"] is None and history["messages"] == []

    # With a conversation of his own, the frames act on his only.
    bob_ack = await send_text(bob, "b1", "bob's question")
    await bob.send_json_to({"type": "receipt", "conversation_id": alice_conversation, "seq": 2})
    await bob.send_json_to({"type": "resume", "conversation_id": alice_conversation, "last_seq": 0})
    history = await receive_until(bob, "history")
    assert history["conversation_id"] == bob_ack["conversation_id"]
    assert [m["text"] for m in history["messages"]] == ["bob's question"]

    answer = await Message.objects.aget(pk=reply["message_id"])
    assert answer.delivered_at is None and answer.read_at is None
    await assert_silent(alice)  # no receipt reached Alice's side
    for comm in (alice, bob, agent_comm):
        await comm.disconnect()


# --- ping -------------------------------------------------------------------------------------


async def test_visitor_pong_carries_last_seq(workspace):
    comm, _ = await visitor_socket(workspace)
    assert await ping(comm) == {
        "type": "pong",
        "conversation_id": None,
        "last_seq": 0,
        "agents_online": False,
        "open_now": True,
        "hours_change_at": None,
    }
    ack = await send_text(comm, "m1")
    await send_text(comm, "m2")
    pong = await ping(comm)
    assert pong == {
        "type": "pong",
        "conversation_id": ack["conversation_id"],
        "last_seq": 2,
        "agents_online": False,
        "open_now": True,
        "hours_change_at": None,
    }
    await comm.disconnect()
