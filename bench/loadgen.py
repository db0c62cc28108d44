"""The load generator: asyncio WebSocket clients in several worker processes.

The parent (bench/scenarios.py, driven by bench/run.py) owns a :class:`LoadGen`, which
forks ``workers`` processes and drives them with commands over pipes: open visitors,
open agents, send a step of messages on a schedule, upload files, report what was
received, close. Each worker runs a uvloop event loop with thousands of ``websockets``
client connections and keeps exact records:

* ``sent``: client_id -> wall time the visitor frame was written;
* acks: client_id -> ack latency (``perf_counter`` in the sending process) and message id;
* agent deliveries: client_id -> wall time the FIRST agent socket of this worker saw it,
  and how many agent sockets saw it (the parent takes the minimum over workers and sums
  the counts, so fan-out to every agent and to the assignee only are both measured);
* agent replies and their arrival at the visitor;
* bot messages at the visitor: their client_id (``bot-<question's message id>``), the
  wall time and the text.

Wall-clock times (``time.time``) are compared across processes: all of them run on the
same machine and clock. Latencies measured within one process use ``perf_counter``.

Every loop here is bounded in count and time: connections have timeouts, heartbeats and
send schedules have a maximum count and a deadline, and a worker exits by itself when
its parent is gone or the spec's hard deadline passes. Traffic goes to 127.0.0.0/8 only.
"""

import asyncio
import math
import multiprocessing as mp
import os
import random
import resource
import socket
import time
import traceback
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
PING = '{"type":"ping"}'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def raise_nofile() -> int:
    """Raise this process's open-file limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ephemeral_ports() -> int:
    """How many local ports the kernel hands out for one (source, destination) pair."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return hi - lo + 1
    except (OSError, ValueError):
        return 28000


def source_addresses(conns_per_destination: int, force: int = 0) -> list[str]:
    """Loopback source addresses to spread connections over ([] = let the kernel pick).

    One source address has ``ephemeral_ports()`` ports towards one server port; past 80%
    of that, connections are bound to 127.0.0.1, 127.0.0.2, ... in turn.
    """
    n = force or math.ceil(conns_per_destination / (0.8 * ephemeral_ports()))
    if n <= 1 and not force:
        return []
    return [f"127.0.0.{i + 1}" for i in range(min(max(n, 1), 250))]


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def should_reply(client_id: str, reply_pct: int) -> bool:
    """Whether agents answer this visitor message: the same answer in every process."""
    return reply_pct > 0 and zlib.crc32(client_id.encode()) % 100 < reply_pct


def png_payload(size: int) -> bytes:
    """``size`` bytes that start like a PNG (the server sniffs the signature), random after."""
    head = PNG_SIGNATURE + b"\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x02\x00\x00\x00"
    return head + os.urandom(max(0, size - len(head)))


# --- worker side ------------------------------------------------------------------------------


@dataclass
class Visitor:
    gid: int
    port: int
    ws: ClientConnection
    visitor_id: str = ""
    token: str = ""
    conversation_id: int | None = None
    closed: bool = False
    ping_at: float = 0.0  # perf_counter of the unanswered ping, 0 when none
    pings: int = 0
    pongs: int = 0
    tasks: list = field(default_factory=list)


@dataclass
class Agent:
    index: int
    id: int
    port: int
    ws: ClientConnection
    closed: bool = False
    ping_at: float = 0.0
    pings: int = 0
    pongs: int = 0
    tasks: list = field(default_factory=list)


class Worker:
    """One load-generator process: its share of visitors and agents, and their records."""

    def __init__(self, spec: dict, index: int, nworkers: int) -> None:
        self.spec = spec
        self.index = index
        self.nworkers = nworkers
        self.visitors: dict[int, Visitor] = {}
        self.agents: dict[int, Agent] = {}
        self.pending: dict[str, float] = {}  # client_id -> perf_counter at send
        self.acks: list[tuple] = []  # (client_id, ack_ms, message_id) since the last report
        self.agent_recv: dict[str, list] = {}  # client_id -> [first wall time, count]
        self.visitor_recv: dict[str, float] = {}  # agent reply client_id -> wall time
        self.reply_sent: dict[str, float] = {}
        self.bot_recv: dict[str, tuple] = {}  # bot message client_id -> (wall time, text)
        # stored (the message's created_at) -> first received, ms: the split of the latency
        # into before and after the database, for agents (visitor messages) and visitors
        self.after_store: dict[str, list[float]] = {"agent": [], "visitor": []}
        self.errors: Counter = Counter()
        self.refused: list[str] = []
        self.reply_pct = 0
        self.agent_count = len(spec.get("agents", []))
        self.agent_ids = {a["id"] for a in spec.get("agents", [])}
        self.lifetime_deadline = time.monotonic() + spec["max_seconds"]
        self.background: set[asyncio.Task] = set()

    # connections
    async def _open(self, path: str, port: int, slot: int, headers: list, timeout: float):
        src = self.spec.get("src_addrs") or []
        sock = None
        if src:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # Pick the port at connect time: unique per 4-tuple, not per address.
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((src[slot % len(src)], 0))
                sock.setblocking(False)
                await asyncio.wait_for(
                    asyncio.get_running_loop().sock_connect(sock, (self.spec["host"], port)),
                    timeout,
                )
            except BaseException:
                sock.close()
                raise
        kwargs: dict[str, Any] = {"sock": sock} if sock is not None else {}
        return await connect(
            f"ws://{self.spec['host']}:{port}{path}",
            origin=f"http://{self.spec['host']}:{port}",
            additional_headers=headers,
            user_agent_header=CHROME_UA,
            compression=self.spec.get("compression"),
            proxy=None,
            open_timeout=timeout,
            ping_interval=None,
            close_timeout=1,
            max_size=2**22,
            max_queue=None,
            **kwargs,
        )

    def _port(self, gid: int) -> int:
        ports = self.spec["ports"]
        return ports[(gid // self.nworkers) % len(ports)]

    async def open_visitor(self, gid: int, heartbeat: float, timeout: float) -> dict:
        port = self._port(gid)
        path = f"/ws/visitor/?key={self.spec['widget_key']}{self.spec.get('visitor_query', '')}"
        t0 = time.perf_counter()
        try:
            ws = await self._open(path, port, gid // self.nworkers, [], timeout)
        except Exception as exc:
            return {"ok": False, "stage": "open", "error": type(exc).__name__}
        t1 = time.perf_counter()
        hello = {
            "type": "hello",
            "lang": "en",
            "page": {
                "url": f"http://{self.spec['host']}:{port}/bench/page",
                "title": "Bench page",
                "referrer": "",
            },
        }
        try:
            await ws.send(orjson.dumps(hello).decode())
            while True:  # a resumed visitor may get history too; only welcome matters
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
                if frame.get("type") == "welcome":
                    break
                if frame.get("type") == "error":
                    raise RuntimeError(frame.get("code"))
        except Exception as exc:
            await _abort(ws)
            return {"ok": False, "stage": "hello", "error": type(exc).__name__}
        t2 = time.perf_counter()
        v = Visitor(gid, port, ws, frame.get("visitor_id", ""), frame.get("visitor_token", ""))
        conv = frame.get("conversation")
        v.conversation_id = conv.get("id") if isinstance(conv, dict) else None
        self.visitors[gid] = v
        v.tasks.append(self._spawn(self.visitor_reader(v)))
        if heartbeat > 0:
            v.tasks.append(self._spawn(self.heartbeat(v, heartbeat)))
        return {"ok": True, "open_ms": (t1 - t0) * 1000, "connect_ms": (t2 - t0) * 1000}

    async def open_agent(self, agent: dict, heartbeat: float, timeout: float) -> dict:
        index = agent["index"]
        ports = self.spec["ports"]
        port = ports[index % len(ports)]
        headers = [("Cookie", agent["cookie"])] if agent.get("cookie") else []
        try:
            ws = await self._open(f"/ws/agent/?i={index}", port, index, headers, timeout)
            await ws.send('{"type":"hello"}')
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
                if frame.get("type") == "welcome":
                    break
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        a = Agent(index, frame.get("agent", {}).get("id", agent["id"]), port, ws)
        self.agents[index] = a
        a.tasks.append(self._spawn(self.agent_reader(a)))
        if heartbeat > 0:  # the console pings too; it keeps the agent "connected"
            a.tasks.append(self._spawn(self.heartbeat(a, heartbeat)))
        return {"ok": True}

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    # readers
    def _ack(self, frame: dict) -> None:
        cid = frame.get("client_id")
        t0 = self.pending.pop(cid, None)
        if t0 is not None:
            self.acks.append((cid, (time.perf_counter() - t0) * 1000, frame.get("message_id")))

    def _error(self, frame: dict) -> None:
        self.errors[frame.get("code", "?")] += 1
        ref = frame.get("ref")
        if isinstance(ref, str):
            self.refused.append(ref)
            self.pending.pop(ref, None)

    async def visitor_reader(self, v: Visitor) -> None:
        try:
            async for raw in v.ws:
                frame = orjson.loads(raw)
                kind = frame.get("type")
                if kind == "ack":
                    v.conversation_id = frame.get("conversation_id")
                    self._ack(frame)
                elif kind == "message":
                    message = frame.get("message") or {}
                    sender = message.get("sender")
                    cid = message.get("client_id")
                    if sender == "agent" and cid not in self.visitor_recv:
                        self.visitor_recv[cid] = time.time()
                        self._after_store("visitor", message)
                    elif sender == "bot" and cid not in self.bot_recv:
                        self.bot_recv[cid] = (time.time(), message.get("text", ""))
                elif kind == "pong":
                    v.pongs += 1
                    v.ping_at = 0.0
                elif kind == "error":
                    self._error(frame)
        except ConnectionClosed:
            pass
        except Exception:
            self.errors["visitor_reader_crash"] += 1
        finally:
            v.closed = True

    async def agent_reader(self, a: Agent) -> None:
        try:
            async for raw in a.ws:
                frame = orjson.loads(raw)
                kind = frame.get("type")
                if kind == "message":
                    message = frame.get("message") or {}
                    if message.get("sender") != "visitor":
                        continue
                    cid = message.get("client_id")
                    seen = self.agent_recv.get(cid)
                    if seen is None:
                        self.agent_recv[cid] = [time.time(), 1]
                        self._after_store("agent", message)
                    else:
                        seen[1] += 1
                    if should_reply(cid, self.reply_pct) and self._designated(a, frame):
                        self._spawn(self.reply(a, message))
                elif kind == "ack":
                    self._ack(frame)
                elif kind == "pong":
                    a.pongs += 1
                    a.ping_at = 0.0
                elif kind == "error":
                    self._error(frame)
        except ConnectionClosed:
            pass
        except Exception:
            self.errors["agent_reader_crash"] += 1
        finally:
            a.closed = True

    def _after_store(self, side: str, message: dict) -> None:
        try:
            stored = datetime.fromisoformat(message["created_at"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return
        self.after_store[side].append((time.time() - stored) * 1000)

    def _designated(self, a: Agent, frame: dict) -> bool:
        """Exactly one bench agent answers: the assignee, else conversation_id % agents."""
        conversation = frame.get("conversation") or {}
        assignee = conversation.get("assignee") or {}
        if assignee.get("id") in self.agent_ids:
            return assignee["id"] == a.id
        conv = frame["message"].get("conversation_id") or 0
        return self.agent_count > 0 and conv % self.agent_count == a.index

    async def reply(self, a: Agent, message: dict) -> None:
        cid = f"{message['client_id']}r"
        frame = {
            "type": "message",
            "conversation_id": message["conversation_id"],
            "client_id": cid,
            "text": f"Reply to {message['client_id']}",
        }
        self.pending[cid] = time.perf_counter()
        self.reply_sent[cid] = time.time()
        try:
            await a.ws.send(orjson.dumps(frame).decode())
        except ConnectionClosed:
            self.errors["reply_on_closed_socket"] += 1

    async def heartbeat(self, v: Visitor | Agent, interval: float) -> None:
        """Ping like the widget: first at a random point of the interval, then every interval."""
        await asyncio.sleep(random.random() * interval)
        for _ in range(int(self.spec["max_seconds"] / interval) + 1):
            if v.closed or time.monotonic() > self.lifetime_deadline:
                return
            v.ping_at = v.ping_at or time.perf_counter()
            v.pings += 1
            try:
                await v.ws.send(PING)
            except ConnectionClosed:
                return
            await asyncio.sleep(interval)

    # commands
    async def cmd_visitors(
        self, gids: list[int], heartbeat: float, timeout: float, concurrency: int, deadline: float
    ) -> dict:
        sem = asyncio.Semaphore(concurrency)
        end = time.monotonic() + deadline

        async def one(gid: int) -> dict:
            async with sem:
                left = end - time.monotonic()
                if left <= 0:
                    return {"ok": False, "stage": "deadline", "error": "ramp deadline"}
                return await self.open_visitor(gid, heartbeat, min(timeout, left))

        t0 = time.time()
        results = await asyncio.gather(*(one(g) for g in gids))
        ok = [r for r in results if r["ok"]]
        failures = Counter(f"{r['stage']}:{r['error']}" for r in results if not r["ok"])
        return {
            "started": t0,
            "finished": time.time(),
            "connected": len(ok),
            "failed": len(results) - len(ok),
            "failures": dict(failures),
            "connect_ms": [r["connect_ms"] for r in ok],
            "open_ms": [r["open_ms"] for r in ok],
        }

    async def cmd_agents(self, agents: list[dict], heartbeat: float, timeout: float) -> dict:
        results = await asyncio.gather(*(self.open_agent(a, heartbeat, timeout) for a in agents))
        return {
            "connected": sum(r["ok"] for r in results),
            "errors": [r["error"] for r in results if not r["ok"]],
        }

    async def cmd_send(
        self,
        gids: list[int],
        rate: float,
        start_at: float,
        duration: float,
        tag: str,
        reply_pct: int,
        text_size: int,
    ) -> dict:
        """Each visitor in ``gids`` sends ``rate`` messages/s from ``start_at`` for ``duration``."""
        self.reply_pct = reply_pct
        sent: dict[str, float] = {}
        lags: list[float] = []
        interval = 1.0 / rate
        n_max = int(duration * rate) + 1
        filler = "x" * max(0, text_size - 40)
        base = time.perf_counter() + (start_at - time.time())

        async def run(v: Visitor) -> None:
            phase = random.random() * interval
            for n in range(n_max):
                offset = phase + n * interval
                if offset >= duration:
                    return
                delay = base + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lags.append(-delay * 1000)
                if v.closed:
                    self.errors["send_on_closed_socket"] += 1
                    return
                cid = f"{tag}{v.gid}.{n}"
                frame = {"type": "message", "client_id": cid, "text": f"Message {cid} {filler}"}
                self.pending[cid] = time.perf_counter()
                sent[cid] = time.time()
                try:
                    await v.ws.send(orjson.dumps(frame).decode())
                except ConnectionClosed:
                    self.errors["send_on_closed_socket"] += 1
                    return

        active = [self.visitors[g] for g in gids if g in self.visitors]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(run(v) for v in active)),
                timeout=max(0.0, start_at - time.time()) + duration + 10,
            )
        except TimeoutError:
            self.errors["send_schedule_overrun"] += 1
        return {
            "sent": sent,
            "lag_ms_max": max(lags, default=0.0),
            "lag_ms_p99": percentile(lags, 99) or 0.0,
            "late_sends": len(lags),
        }

    async def cmd_files(
        self, gids: list[int], per_visitor: int, size: int, tag: str, timeout: float
    ) -> dict:
        """Each visitor uploads ``per_visitor`` PNG-looking files and sends each as a message."""
        records: list[dict] = []
        sent: dict[str, float] = {}

        async def run(v: Visitor) -> None:
            for n in range(per_visitor):
                cid = f"{tag}{v.gid}.{n}"
                t_wall, t0 = time.time(), time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(
                        http_upload(
                            self.spec["host"],
                            v.port,
                            self.spec["widget_key"],
                            v,
                            png_payload(size),
                            f"bench-{n}.png",
                        ),
                        timeout,
                    )
                    attachment = orjson.loads(body).get("attachment") if status == 201 else None
                except Exception as exc:
                    status, attachment = type(exc).__name__, None
                upload_ms = (time.perf_counter() - t0) * 1000
                records.append({"client_id": cid, "status": status, "upload_ms": upload_ms})
                if not attachment:
                    continue
                frame = {
                    "type": "message",
                    "client_id": cid,
                    "text": "",
                    "attachment_id": attachment["id"],
                }
                self.pending[cid] = time.perf_counter()
                sent[cid] = t_wall  # the end-to-end time starts with the upload
                try:
                    await v.ws.send(orjson.dumps(frame).decode())
                except ConnectionClosed:
                    self.errors["send_on_closed_socket"] += 1
                    return

        active = [self.visitors[g] for g in gids if g in self.visitors]
        await asyncio.gather(*(run(v) for v in active))
        return {"records": records, "sent": sent}

    def cmd_report(self) -> dict:
        out = {
            "acks": self.acks,
            "agent_recv": self.agent_recv,
            "visitor_recv": self.visitor_recv,
            "reply_sent": self.reply_sent,
            "bot_recv": self.bot_recv,
            "after_store": self.after_store,
            "refused": self.refused,
            "errors": dict(self.errors),
        }
        self.acks, self.agent_recv, self.visitor_recv, self.bot_recv = [], {}, {}, {}
        self.after_store = {"agent": [], "visitor": []}
        self.reply_sent, self.refused = {}, []
        return out

    def cmd_status(self, ping_grace: float) -> dict:
        now = time.perf_counter()
        open_ = [v for v in self.visitors.values() if not v.closed]
        stuck = sum(1 for v in open_ if v.ping_at and now - v.ping_at > ping_grace)
        return {
            "visitors_open": len(open_),
            "visitors_closed": len(self.visitors) - len(open_),
            "visitors_ping_stuck": stuck,
            "held": len(open_) - stuck,
            "pings": sum(v.pings for v in self.visitors.values()),
            "pongs": sum(v.pongs for v in self.visitors.values()),
            "agents_open": sum(1 for a in self.agents.values() if not a.closed),
            "errors": dict(self.errors),
        }

    async def cmd_close(self, timeout: float) -> dict:
        sockets = [v.ws for v in self.visitors.values()] + [a.ws for a in self.agents.values()]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True), timeout
            )
        except TimeoutError:
            pass
        for ws in sockets:
            await _abort(ws)
        for task in list(self.background):
            task.cancel()
        return {"closed": len(sockets)}


async def _abort(ws: ClientConnection) -> None:
    transport = getattr(ws, "transport", None)
    if transport is not None:
        transport.abort()


async def http_upload(
    host: str, port: int, key: str, v: Visitor, payload: bytes, filename: str
) -> tuple[int, bytes]:
    """POST /widget/uploads/ (multipart) on a fresh HTTP/1.1 connection; (status, body)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (("key", key), ("visitor_id", v.visitor_id), ("visitor_token", v.token)):
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + payload
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    body = b"".join(parts)
    head = (
        f"POST /widget/uploads/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Origin: http://{host}:{port}\r\nUser-Agent: {CHROME_UA}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        await writer.drain()
        raw = await reader.read(-1)
    finally:
        writer.close()
    header, _, content = raw.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in header.lower():
        content = _dechunk(content)
    return status, content


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    for _ in range(100_000):
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            break
        size = int(data[pos:line_end].split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[line_end + 2 : line_end + 2 + size])
        pos = line_end + 2 + size + 2
    return b"".join(out)


async def _worker_loop(conn, spec: dict, index: int, nworkers: int) -> None:
    worker = Worker(spec, index, nworkers)
    loop = asyncio.get_running_loop()
    handlers = {
        "visitors": worker.cmd_visitors,
        "agents": worker.cmd_agents,
        "send": worker.cmd_send,
        "files": worker.cmd_files,
        "close": worker.cmd_close,
    }
    sync_handlers = {"report": worker.cmd_report, "status": worker.cmd_status}
    while time.monotonic() < worker.lifetime_deadline:
        ready = await loop.run_in_executor(None, conn.poll, 0.5)
        if not ready:
            if os.getppid() == 1:  # the parent died: stop
                break
            continue
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if op in sync_handlers:
                result = sync_handlers[op](**args)
            else:
                result = await handlers[op](**args)
            conn.send(("ok", result))
        except Exception:
            conn.send(("error", traceback.format_exc()))
        if op == "close":
            return
    await worker.cmd_close(2)


def _worker_main(conn, spec: dict, index: int, nworkers: int) -> None:
    raise_nofile()
    try:
        import uvloop

        uvloop.run(_worker_loop(conn, spec, index, nworkers))
    except ImportError:
        asyncio.run(_worker_loop(conn, spec, index, nworkers))


# --- parent side ------------------------------------------------------------------------------


class LoadGenError(RuntimeError):
    pass


class LoadGen:
    """Worker processes for one scenario against one stack; use as a context manager.

    ``spec``: host, ports, widget_key, agents [{index, id, cookie}], visitor_query,
    compression, src_addrs, max_seconds (hard lifetime of each worker).
    """

    def __init__(self, spec: dict, workers: int) -> None:
        self.spec = spec
        self.n = workers
        ctx = mp.get_context("fork")
        self.pipes = []
        self.procs = []
        for i in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, spec, i, workers), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def __enter__(self) -> "LoadGen":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def owner(self, gid: int) -> int:
        return gid % self.n

    def split(self, gids) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.n)]
        for g in gids:
            out[self.owner(g)].append(g)
        return out

    def call(self, op: str, args: dict | list[dict], timeout: float) -> list[Any]:
        """Send ``op`` to every worker (``args`` per worker when a list); gather the replies."""
        per = args if isinstance(args, list) else [args] * self.n
        for pipe, a in zip(self.pipes, per, strict=True):
            pipe.send((op, a))
        deadline = time.monotonic() + timeout
        out = []
        for i, pipe in enumerate(self.pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise LoadGenError(f"worker {i} did not answer {op!r} within {timeout:.0f} s")
            status, result = pipe.recv()
            if status != "ok":
                raise LoadGenError(f"worker {i} failed {op!r}:\n{result}")
            out.append(result)
        return out

    def shutdown(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close", {"timeout": 2}))
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        for pipe in self.pipes:
            pipe.close()
