"""Helpers to open the real ASGI app's sockets in tests (Channels communicators)."""

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


async def visitor_socket(
    workspace,
    *,
    origin: str = "https://shop.example.com",
    client=("81.2.69.160", 50000),
    hello: dict | None = None,
) -> tuple[WebsocketCommunicator, dict]:
    """Connect a widget socket and complete hello; returns (communicator, welcome)."""
    headers = [(b"host", b"chat.example.net"), (b"user-agent", CHROME_UA)]
    if origin:
        headers.append((b"origin", origin.encode()))
    comm = WebsocketCommunicator(application, f"/ws/visitor/?key={workspace.widget_key}", headers)
    comm.scope["client"] = list(client)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"type": "hello", **(hello or {})})
    welcome = await comm.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return comm, welcome


@sync_to_async
def _session_cookie(user) -> str:
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


async def agent_socket(user, *, hello: bool = True) -> tuple[WebsocketCommunicator, dict | None]:
    """Connect a console socket as ``user`` (session cookie); returns (communicator, welcome)."""
    cookie = await _session_cookie(user)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"origin", b"http://127.0.0.1"),
        (b"cookie", cookie.encode()),
    ]
    comm = WebsocketCommunicator(application, "/ws/agent/", headers)
    connected, _ = await comm.connect()
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
