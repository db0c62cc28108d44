"""Real ASGI servers (daphne subprocesses) for tests that need the app over real sockets.

The servers share everything a production deployment shares with the test process: the
pytest-django test database, Redis and the channel-layer prefix, and the secret key (so a
session row the test creates logs a browser in). Two of them make a two-host deployment.

In pytest (the fixtures are registered for the whole project by the root conftest)::

    @pytest.mark.servers
    def test_widget(asgi_server):                      # one server
        page.goto(asgi_server.url + "/")

    @pytest.mark.servers
    async def test_two(asgi_server_factory):           # as many as needed
        a, b = asgi_server_factory(), asgi_server_factory()
        async with websockets.connect(a.ws_url("/ws/visitor/?key=...")) as ws: ...

Both fixtures use ``transactional_db``: rows the test writes are committed, so the servers
see them, and the tables are emptied afterwards. Servers are stopped before that.

Outside those fixtures (the test database must already exist and data must be committed)::

    with run_server(env_extra={"HELPDESK_LOG_LEVEL": "DEBUG"}) as server:
        urllib.request.urlopen(server.url + "/healthz")

Stopping follows DESIGN.md's warning that daphne may not exit on SIGTERM: SIGTERM, up to
``grace`` seconds, then SIGKILL. Each server's stdout and stderr go to a log file; its tail
is printed when a server fails to start, when the ``with`` block raises, and (shown by
pytest only for failing tests) when a fixture tears the server down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import mkstemp
from urllib.parse import quote

import pytest

__all__ = [
    "LiveServer",
    "ServerStartError",
    "asgi_server",
    "asgi_server_factory",
    "database_url",
    "run_server",
    "server_env",
    "start_server",
]

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
STOP_GRACE = 5.0


class ServerStartError(RuntimeError):
    """The server exited or never answered /healthz; the message ends with its log."""


@dataclass
class LiveServer:
    """One running daphne process serving ``helpdesk.asgi:application``."""

    url: str  # http://127.0.0.1:<port>, no trailing slash
    port: int
    proc: subprocess.Popen
    log_path: Path
    app_name: str = field(repr=False)  # PostgreSQL application_name of its connections

    @property
    def host(self) -> str:
        """What browsers send as ``Host`` (and what the console's ``Origin`` must match)."""
        return f"{HOST}:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}{path}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _wait_for_db_sessions_to_end(self.app_name)
        return self.proc.returncode


def database_url() -> str:
    """A ``DATABASE_URL`` for the database this process's Django uses right now.

    Inside a pytest-django test that is the test database (``test_...``), not the one
    ``DATABASE_URL`` names.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "postgis" in db["ENGINE"]:
        scheme = "postgis"
    elif "postgresql" in db["ENGINE"]:
        scheme = "postgres"
    else:
        raise RuntimeError(f"live servers need PostgreSQL; the database is {db['ENGINE']}")
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db.get("HOST") or "", safe="")  # a socket directory is percent-encoded
    port = f":{db['PORT']}" if db.get("PORT") else ""
    at = "@" if auth else ""
    return f"{scheme}://{auth}{at}{host}{port}/{quote(db['NAME'], safe='')}"


def server_env(env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server that shares this process's database, Redis and keys."""
    from django.conf import settings

    if not settings.REDIS_URL:
        raise RuntimeError("live servers need REDIS_URL: without it they share no channel layer")
    layer_config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "HELPDESK_CHANNEL_PREFIX": layer_config.get("prefix", "helpdesk"),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",
            "HELPDESK_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "GEOIP_PATH": str(settings.GEOIP_PATH or ""),
            "DJANGO_DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
            # Small pools: several servers and the test process share one PostgreSQL.
            "HELPDESK_DB_POOL_MIN": "1",
            "HELPDESK_DB_POOL_MAX": "4",
        }
    )
    env.update(env_extra or {})
    return env


def _daphne_command(fd: int | None, port: int) -> list[str]:
    daphne = Path(sys.executable).with_name("daphne")
    cmd = [str(daphne)] if daphne.exists() else [sys.executable, "-m", "daphne"]
    where = ["--fd", str(fd)] if fd is not None else ["-b", HOST, "-p", str(port)]
    return [*cmd, *where, "--application-close-timeout", "5", "helpdesk.asgi:application"]


def _death_signal_setter() -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` that makes the server get SIGTERM if the test process dies
    without stopping it (so no daphne outlives a killed test run)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_death_signal() -> None:  # runs in the child between fork and exec: no imports
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_death_signal


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait_for_db_sessions_to_end(app_name: str, timeout: float = 10.0) -> None:
    """Wait until PostgreSQL has closed a stopped server's connections.

    pytest-django truncates tables after each test and drops the database at the end;
    either fails or blocks while a dead server's sessions linger.
    """
    try:
        from django.db import connection

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    [app_name],
                )
                if cursor.fetchone()[0] == 0:
                    return
            time.sleep(0.05)
    except Exception:  # noqa: S110 - diagnostics only; never mask the test's own outcome
        pass


def start_server(
    *,
    port: int | None = None,
    env_extra: dict[str, str] | None = None,
    log_path: Path | str | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> LiveServer:
    """Start daphne and return once ``/healthz`` answers; the caller must ``stop()`` it.

    Without ``port`` the listening socket is bound here (port 0, so no race for a free
    port) and handed to daphne as a file descriptor. On Linux the server is told to stop
    when the thread that started it exits, so start servers from a long-lived thread
    (pytest's main thread, as the fixtures do), not from a short-lived worker.
    """
    if log_path is None:
        handle, name = mkstemp(prefix="daphne-", suffix=".log")
        os.close(handle)
        log_path = name
    log_path = Path(log_path)
    listener = None
    if port is None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(128)
        port = listener.getsockname()[1]
    app_name = f"helpdesk-live-{os.getpid()}-{port}"
    env = server_env({"PGAPPNAME": app_name, **(env_extra or {})})
    from django.conf import settings

    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed command line
            _daphne_command(listener.fileno() if listener else None, port),
            cwd=str(settings.BASE_DIR),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()] if listener else [],
            preexec_fn=_death_signal_setter(),
        )
    if listener is not None:
        listener.close()  # the child has its own copy
    server = LiveServer(
        url=f"http://{HOST}:{port}", port=port, proc=proc, log_path=log_path, app_name=app_name
    )

    # Wait for the event "answers /healthz", with a deadline; not for a fixed time.
    deadline = time.monotonic() + startup_timeout
    while not _healthy(server.url):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else "timed out"
            server.stop()
            raise ServerStartError(
                f"daphne on port {port} {why} before /healthz answered; log {log_path}:\n"
                + server.log_tail()
            )
        time.sleep(0.05)
    return server


@contextmanager
def run_server(
    port: int | None = None,
    env_extra: dict[str, str] | None = None,
    *,
    log_path: Path | str | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[LiveServer]:
    """``with run_server() as server:`` a started server, stopped (and reaped) on exit."""
    server = start_server(
        port=port, env_extra=env_extra, log_path=log_path, startup_timeout=startup_timeout
    )
    try:
        yield server
    except BaseException:
        print(f"--- daphne {server.url} log tail ({server.log_path}) ---", file=sys.stderr)
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()


@pytest.fixture
def asgi_server_factory(transactional_db, tmp_path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers on demand: ``factory(port=None, env_extra=None) -> LiveServer``.

    All of them are stopped when the test ends, before its tables are emptied.
    """
    servers: list[LiveServer] = []

    def start(port: int | None = None, env_extra: dict[str, str] | None = None) -> LiveServer:
        log_path = tmp_path / f"daphne-{len(servers) + 1}.log"
        server = start_server(port=port, env_extra=env_extra, log_path=log_path)
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        status = server.stop()
        # Captured output: pytest shows it only when the test failed.
        print(f"--- daphne {server.url} exit {status}; log tail ({server.log_path}) ---")
        print(server.log_tail())


@pytest.fixture
def asgi_server(asgi_server_factory) -> LiveServer:
    """One running server (see :func:`asgi_server_factory`)."""
    return asgi_server_factory()
