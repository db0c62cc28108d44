"""Helpers to open the real ASGI app's sockets in tests (Channels communicators)."""

import asyncio

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from helpdesk.asgi import application

CHROME_UA = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    b"(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def visitor_communicator(
    key: str,
    *,
    origin: str | None = "https://shop.example.com",
    host: str = "chat.example.net",
    user_agent: bytes = CHROME_UA,
    client=("81.2.69.160", 50000),
) -> WebsocketCommunicator:
    """A widget socket for widget key ``key``, not yet connected."""
    headers = [(b"host", host.encode()), (b"user-agent", user_agent)]
    if origin:
        headers.append((b"origin", origin.encode()))
    comm = WebsocketCommunicator(application, f"/ws/visitor/?key={key}", headers)
    comm.scope["client"] = list(client)
    return comm


async def visitor_socket(
    workspace,
    *,
    origin: str = "https://shop.example.com",
    client=("81.2.69.160", 50000),
    hello: dict | None = None,
    user_agent: bytes = CHROME_UA,
) -> tuple[WebsocketCommunicator, dict]:
    """Connect a widget socket and complete hello; returns (communicator, welcome).

    ``welcome`` is the welcome frame; when the visitor has a conversation the server
    follows it with a ``history`` frame, which is left for the caller to read.
    """
    comm = visitor_communicator(
        workspace.widget_key, origin=origin, client=client, user_agent=user_agent
    )
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await comm.send_json_to({"type": "hello", **(hello or {})})
    welcome = await comm.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return comm, welcome


def same_visitor(welcome: dict) -> dict:
    """The hello fields that make a new socket the visitor of ``welcome`` (a second tab)."""
    return {"visitor_id": welcome["visitor_id"], "visitor_token": welcome["visitor_token"]}


def session_cookie(user) -> str:
    """Log ``user`` in by writing a session row; returns the ``Cookie`` header value."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


_session_cookie = sync_to_async(session_cookie)


async def agent_communicator(
    user=None, *, origin: str | None = "http://127.0.0.1"
) -> WebsocketCommunicator:
    """A console socket, not yet connected; logged in as ``user`` when given."""
    headers = [(b"host", b"127.0.0.1")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if user is not None:
        headers.append((b"cookie", (await _session_cookie(user)).encode()))
    return WebsocketCommunicator(application, "/ws/agent/", headers)


async def agent_socket(user, *, hello: bool = True) -> tuple[WebsocketCommunicator, dict | None]:
    """Connect a console socket as ``user`` (session cookie); returns (communicator, welcome)."""
    comm = await agent_communicator(user)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    welcome = None
    if hello:
        await comm.send_json_to({"type": "hello"})
        welcome = await comm.receive_json_from(timeout=5)
        assert welcome["type"] == "welcome", welcome
    return comm, welcome


async def receive_until(comm: WebsocketCommunicator, kind: str, timeout: float = 5) -> dict:
    """The next frame of type ``kind``, skipping others (typing, receipts...)."""
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        if frame["type"] == kind:
            return frame


# Frames about the workspace rather than the test's subject: agents' presence and the
# queue's size reach every console of the workspace whenever an agent connects.
AMBIENT = frozenset({"presence", "queue"})


async def receive_frame(comm: WebsocketCommunicator, timeout: float = 5) -> dict:
    """The next frame that is not ambient (presence, queue size)."""
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        if frame["type"] not in AMBIENT:
            return frame


async def receive_error(comm: WebsocketCommunicator, timeout: float = 5) -> dict:
    """The next (non-ambient) frame, which must be an ``error``."""
    frame = await receive_frame(comm, timeout=timeout)
    assert frame["type"] == "error", frame
    return frame


async def receive_message(
    comm: WebsocketCommunicator, *, sender: str | None = None, timeout: float = 5
) -> dict:
    """The next ``message`` frame (from ``sender`` when given), skipping everything else."""
    while True:
        frame = await receive_until(comm, "message", timeout=timeout)
        if sender is None or frame["message"]["sender"] == sender:
            return frame


async def assert_silent(comm: WebsocketCommunicator, timeout: float = 0.5) -> None:
    """Nothing arrives on ``comm`` within ``timeout``.

    Absence has no event to wait for; call this after a positive control (another socket
    has already received the event in question) so the wait only covers delivery skew.
    """
    while not await comm.receive_nothing(timeout=timeout, interval=0.02):
        frame = await comm.receive_output(timeout=1)
        if frame.get("type") == "websocket.send" and _frame_type(frame) in AMBIENT:
            continue
        raise AssertionError(f"expected no frame, got {frame!r}")


def _frame_type(output: dict) -> str | None:
    import json

    try:
        return json.loads(output.get("text") or "{}").get("type")
    except ValueError:
        return None


async def send_all(pairs) -> None:
    """Send several frames as close together as possible: ``[(comm, frame), ...]``."""
    await asyncio.gather(*(comm.send_json_to(frame) for comm, frame in pairs))


@sync_to_async
def row_counts() -> dict[str, int]:
    """How many chat rows exist: for "bad input changes nothing" checks."""
    from chat.models import Attachment, Conversation, Message, PageView, Visitor

    return {
        model.__name__: model.objects.count()
        for model in (Visitor, Conversation, Message, PageView, Attachment)
    }


async def assert_none_of(comm: WebsocketCommunicator, kind: str, timeout: float = 0.5) -> None:
    """No frame of type ``kind`` arrives on ``comm`` within ``timeout`` (others may).

    Like :func:`assert_silent`, call it after a positive control.
    """
    while not await comm.receive_nothing(timeout=timeout, interval=0.02):
        frame = await comm.receive_json_from(timeout=1)
        assert frame["type"] != kind, f"unexpected {kind} frame {frame!r}"


async def assert_no_message(comm: WebsocketCommunicator, timeout: float = 0.5) -> None:
    """No ``message`` frame arrives on ``comm`` within ``timeout`` (other frames may)."""
    await assert_none_of(comm, "message", timeout)
