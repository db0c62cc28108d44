"""A small OpenAI-compatible chat-completions server on loopback, for tests and demos.

Each provider under test gets its own path prefix, ``http://127.0.0.1:<port>/<slug>/v1``,
so one server can play several providers at once, each with its own behaviour:

==============  ===============================================================
``answer``      200 with one choice whose content is ``text``
``slow``        waits ``delay`` seconds (default 30) before answering: a timeout
``http500``     500 with a JSON error body that echoes the Authorization header
                (as careless servers do: the client must redact it)
``http429``     429 rate limited
``malformed``   200 with a body that is not JSON
``empty``       200 with ``"choices": []``
==============  ===============================================================

Every request is recorded (slug, Authorization header, JSON body) for assertions.

From a shell, for trying the product by hand::

    python -m knowledge.tests.fake_openai --port 8133 --answer "..." [--slug b=other answer]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    mode: str = "answer"
    text: str = "This is the fake model's answer."
    delay: float = 30.0


MODES = {"answer", "slow", "http500", "http429", "malformed", "empty"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timed out) first

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.strip("/").split("/")
        slug = parts[0] if parts else ""
        if parts[-2:] != ["chat", "completions"]:
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = None
        auth = self.headers.get("Authorization", "")
        with fake.lock:
            fake.requests.append({"slug": slug, "authorization": auth, "json": payload})
            behaviour = fake.behaviours.get(slug, fake.default)
        mode = behaviour.mode
        if mode == "slow":
            fake.stopping.wait(behaviour.delay)
            mode = "answer"
        if mode == "answer":
            body = {
                "id": f"chatcmpl-fake-{len(fake.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": (payload or {}).get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": behaviour.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
            self._send(200, json.dumps(body, ensure_ascii=False).encode())
        elif mode == "http500":
            body = {"error": {"message": "internal error", "request_auth": auth}}
            self._send(500, json.dumps(body).encode())
        elif mode == "http429":
            self._send(429, b'{"error": {"message": "Rate limit reached", "type": "requests"}}')
        elif mode == "malformed":
            self._send(200, b'{"choices": [{"message": {"content": "cut off', "text/plain")
        elif mode == "empty":
            self._send(
                200, json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode()
            )
        else:
            self._send(500, b'{"error": {"message": "unknown fake mode"}}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAI


class FakeOpenAI:
    """Start with :meth:`start` (or ``with FakeOpenAI() as fake:``); stop with :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.behaviours: dict[str, Behaviour] = {}
        self.default = Behaviour()
        self.stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, slug: str) -> str:
        """The base URL a provider configured as ``slug`` uses."""
        return f"http://127.0.0.1:{self.port}/{slug}/v1"

    def set(self, slug: str, mode: str = "answer", text: str | None = None, delay: float = 30.0):
        if mode not in MODES:
            raise ValueError(mode)
        with self.lock:
            self.behaviours[slug] = Behaviour(mode, text or Behaviour.text, delay)

    def calls(self, slug: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if slug is None or r["slug"] == slug]

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes "slow" handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8133)
    parser.add_argument("--answer", default=Behaviour.text, help="what every provider says")
    parser.add_argument(
        "--slug",
        action="append",
        default=[],
        metavar="SLUG=TEXT",
        help="a different answer for the provider whose base URL path starts with SLUG",
    )
    args = parser.parse_args()
    fake = FakeOpenAI(port=args.port)
    fake.default = Behaviour("answer", args.answer)
    for item in args.slug:
        slug, _, text = item.partition("=")
        fake.set(slug, "answer", text)
    print(f"fake OpenAI-compatible server on http://127.0.0.1:{fake.port}/<slug>/v1", flush=True)
    try:
        fake._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
