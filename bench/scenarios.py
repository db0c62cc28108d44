"""The benchmark scenarios, run by bench/run.py against one stack at a time.

Each scenario starts its own load-generator workers (bench/loadgen.py), so no state
carries over, and returns a dict of figures. How loss is counted, exactly:

* ``sent``: visitor ``message`` frames written to a socket (client ids of this scenario);
* ``acked``: of those, the ones whose ``ack`` (matched by client_id) came back;
* ``stored``: of those sent, the ones found in the database afterwards (a query by
  client_id prefix; the relay has no database, so there ``stored`` is ``acked``);
* ``delivered``: of those acked, the ones at least one agent socket received;
* ``lost``: acked but not delivered, or acked but not stored; agent replies are counted
  the same way (acked by the server, received by the visitor, stored) and added in.

A message the server refused (an ``error`` frame naming its client_id) is counted in
``refused``, never as lost. Everything still missing when the drain deadline passes is
counted: nothing is sampled.
"""

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loadgen import LoadGen, percentile, should_reply, source_addresses


@dataclass
class Target:
    """A running stack as the scenarios see it."""

    name: str
    spec: dict  # host, ports, widget_key, agents [{index, id, cookie}], visitor_query, compression
    probe: "Probe"
    workers: int
    stored: Callable[[str], set[str]] | None = None  # client ids stored under a prefix
    # called with the length of the measured window just before it starts (profiling)
    on_load: Callable[[str, float], None] | None = None


class Probe:
    """CPU and memory of a set of processes (the servers, or the load generator)."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self.psutil = psutil
        self.procs = [psutil.Process(p) for p in pids]

    def _all(self):
        out = []
        for p in self.procs:
            try:
                out.append(p)
                out.extend(p.children(recursive=True))
            except self.psutil.Error:
                continue
        return out

    def rss_kb(self) -> float:
        total = 0
        for p in self._all():
            try:
                total += p.memory_info().rss
            except self.psutil.Error:
                continue
        return total / 1024

    def cpu_s(self) -> float:
        total = 0.0
        for p in self._all():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except self.psutil.Error:
                continue
        return total

    def settle(self, max_s: float, below_pct: float = 15.0) -> float:
        """Wait (at most ``max_s``) until these processes use < ``below_pct`` of a core."""
        start = time.monotonic()
        while time.monotonic() - start < max_s:
            c0, t0 = self.cpu_s(), time.monotonic()
            time.sleep(0.5)
            if (self.cpu_s() - c0) / (time.monotonic() - t0) * 100 < below_pct:
                break
        return time.monotonic() - start


def cpu_of_others() -> dict[str, float]:
    """CPU seconds of the bench database backends and of redis-server, for the breakdown."""
    import psutil

    out = {"postgres_bench": 0.0, "redis": 0.0}
    for p in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        try:
            name = p.info["name"] or ""
            t = p.info["cpu_times"]
            if t is None:
                continue
            if name.startswith("postgres") and "helpdesk_bench" in " ".join(
                p.info["cmdline"] or []
            ):
                out["postgres_bench"] += t.user + t.system
            elif name.startswith("redis-server"):
                out["redis"] += t.user + t.system
        except psutil.Error:
            continue
    return out


class Meter:
    """CPU of the servers, the load generator, Postgres (bench DBs) and Redis over a window."""

    def __init__(self, server: Probe, loadgen: Probe) -> None:
        self.server, self.loadgen = server, loadgen
        self.t0 = time.monotonic()
        self.s0, self.l0, self.o0 = server.cpu_s(), loadgen.cpu_s(), cpu_of_others()

    def read(self) -> dict[str, float]:
        wall = max(1e-6, time.monotonic() - self.t0)
        others = cpu_of_others()
        server_s = self.server.cpu_s() - self.s0
        out = {
            "server_cpu_s": server_s,
            "server_cpu_pct": server_s / wall * 100,
            "loadgen_cpu_pct": (self.loadgen.cpu_s() - self.l0) / wall * 100,
        }
        for k, v in others.items():
            out[f"{k}_cpu_pct"] = max(0.0, v - self.o0[k]) / wall * 100
        return {k: round(v, 2 if k.endswith("_s") else 1) for k, v in out.items()}


def _r(x, nd: int = 1):
    return None if x is None else round(x, nd)


def _spec(
    target: Target, *, max_seconds: float, conns_per_port: int, force_src: int, agents: int
) -> dict:
    return target.spec | {
        "max_seconds": max_seconds,
        "src_addrs": source_addresses(conns_per_port, force_src),
        "agents": target.spec["agents"][:agents],
    }


def _connect(lg: LoadGen, gids: list[int], *, heartbeat: float, p: dict) -> dict:
    replies = lg.call(
        "visitors",
        [
            {
                "gids": part,
                "heartbeat": heartbeat,
                "timeout": p["connect_timeout"],
                "concurrency": p["concurrency"],
                "deadline": p["ramp_deadline"],
            }
            for part in lg.split(gids)
        ],
        timeout=p["ramp_deadline"] + p["connect_timeout"] + 30,
    )
    failures: Counter = Counter()
    for r in replies:
        failures.update(r["failures"])
    return {
        "connected": sum(r["connected"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "failures": dict(failures),
        "connect_ms": [x for r in replies for x in r["connect_ms"]],
        "open_ms": [x for r in replies for x in r["open_ms"]],
        "started": min(r["started"] for r in replies),
        "finished": max(r["finished"] for r in replies),
    }


def _agents(lg: LoadGen, spec: dict, *, heartbeat: float, timeout: float) -> int:
    parts: list[list[dict]] = [[] for _ in range(lg.n)]
    for a in spec["agents"]:
        parts[a["index"] % lg.n].append(a)
    replies = lg.call(
        "agents",
        [{"agents": part, "heartbeat": heartbeat, "timeout": timeout} for part in parts],
        timeout=timeout + 30,
    )
    errors = [e for r in replies for e in r["errors"]]
    if errors:
        raise RuntimeError(f"agents could not connect: {errors[:3]}")
    return sum(r["connected"] for r in replies)


# --- connections ------------------------------------------------------------------------------


def connections(target: Target, p: dict) -> dict:
    """Ramp to ``target`` widget sockets (hello + heartbeats), hold, measure the servers."""
    n = p["target"]
    spec = _spec(
        target,
        max_seconds=p["ramp_deadline"] + p["hold"] + 120,
        conns_per_port=math.ceil(n / len(target.spec["ports"])),
        force_src=p.get("src_addrs", 0),
        agents=0,
    )
    settled = target.probe.settle(p["settle"])
    with LoadGen(spec, target.workers) as lg:
        time.sleep(0.3)  # the workers' own start-up is not the server's cost
        rss0 = target.probe.rss_kb()
        meter = Meter(target.probe, Probe(lg.pids))
        if target.on_load:
            target.on_load("connections", min(p["ramp_deadline"], 20))
        ramp = _connect(lg, list(range(n)), heartbeat=p["heartbeat"], p=p)
        ramp_s = ramp["finished"] - ramp["started"]
        ramp_cpu = meter.read()
        hold_end = time.monotonic() + p["hold"]
        while time.monotonic() < hold_end:
            time.sleep(min(1.0, max(0.0, hold_end - time.monotonic())))
        status = lg.call("status", {"ping_grace": max(5.0, p["heartbeat"])}, timeout=30)
        rss1 = target.probe.rss_kb()
        cpu = meter.read()
    held = sum(s["held"] for s in status)
    errors: Counter = Counter()
    for s in status:
        errors.update(s["errors"])
    return {
        "target": n,
        "held": held,
        "failed": n - held,
        "connect_p50_ms": _r(percentile(ramp["connect_ms"], 50)),
        "connect_p99_ms": _r(percentile(ramp["connect_ms"], 99)),
        "server_rss_kb_per_conn": _r((rss1 - rss0) / held if held else None),
        # extras
        "connected": ramp["connected"],
        "connect_failures": ramp["failures"],
        "dropped_during_hold": sum(s["visitors_closed"] for s in status),
        "ping_unanswered": sum(s["visitors_ping_stuck"] for s in status),
        "pings": sum(s["pings"] for s in status),
        "pongs": sum(s["pongs"] for s in status),
        "ws_open_p50_ms": _r(percentile(ramp["open_ms"], 50)),
        "ws_open_p99_ms": _r(percentile(ramp["open_ms"], 99)),
        "ramp_s": _r(ramp_s, 2),
        "connect_rate_per_s": _r(ramp["connected"] / ramp_s if ramp_s > 0 else None),
        "hold_s": p["hold"],
        "settled_s": _r(settled),
        "heartbeat_s": p["heartbeat"],
        "server_rss_mb_before": _r(rss0 / 1024),
        "server_rss_mb_after": _r(rss1 / 1024),
        "ramp_cpu": ramp_cpu,
        "cpu": cpu,
        "source_addresses": len(spec["src_addrs"]) or 1,
        "errors": dict(errors),
    }


# --- message accounting -----------------------------------------------------------------------


@dataclass
class Ledger:
    """Everything the workers saw for one batch of messages, merged."""

    reply_pct: int = 0
    bot: bool = False  # questions to the bot: complete when the bot has answered each
    sent: dict[str, float] = field(default_factory=dict)  # visitor messages: cid -> wall
    acks: dict[str, tuple] = field(default_factory=dict)  # cid -> (ack_ms, message_id)
    agent_first: dict[str, float] = field(default_factory=dict)
    agent_count: Counter = field(default_factory=Counter)
    visitor_recv: dict[str, float] = field(default_factory=dict)
    reply_sent: dict[str, float] = field(default_factory=dict)
    bot_recv: dict[str, tuple] = field(default_factory=dict)  # bot client_id -> (wall, text)
    after_store: dict[str, list] = field(default_factory=lambda: {"agent": [], "visitor": []})
    refused: set[str] = field(default_factory=set)
    errors: Counter = field(default_factory=Counter)

    def absorb(self, reports: list[dict]) -> None:
        errors: Counter = Counter()
        for r in reports:
            for cid, ms, mid in r["acks"]:
                self.acks[cid] = (ms, mid)
            for cid, (t, count) in r["agent_recv"].items():
                prev = self.agent_first.get(cid)
                self.agent_first[cid] = t if prev is None else min(prev, t)
                self.agent_count[cid] += count
            for cid, t in r["visitor_recv"].items():
                prev = self.visitor_recv.get(cid)
                self.visitor_recv[cid] = t if prev is None else min(prev, t)
            self.reply_sent.update(r["reply_sent"])
            for cid, seen in r["bot_recv"].items():
                self.bot_recv.setdefault(cid, tuple(seen))
            for side, values in r["after_store"].items():
                self.after_store[side] += values
            self.refused.update(r["refused"])
            errors.update(r["errors"])
        self.errors = errors  # the workers report cumulative counts

    def expected_replies(self) -> set[str]:
        return {
            f"{c}r" for c in self.agent_first if c in self.sent and should_reply(c, self.reply_pct)
        }

    def bot_answer(self, cid: str) -> tuple | None:
        """(wall time, text) of the bot's message answering question ``cid``, if it came."""
        ack = self.acks.get(cid)
        return self.bot_recv.get(f"bot-{ack[1]}") if ack else None

    def complete(self) -> bool:
        if self.bot:
            return all(c in self.refused or self.bot_answer(c) for c in self.sent)
        for cid in self.sent:
            if cid not in self.refused and (cid not in self.acks or cid not in self.agent_first):
                return False
        for rid in self.expected_replies():
            if rid not in self.refused and (rid not in self.acks or rid not in self.visitor_recv):
                return False
        return True

    def drain(self, lg: LoadGen, max_s: float) -> float:
        """Collect reports until every message is accounted for or ``max_s`` passes."""
        start = time.monotonic()
        for _ in range(int(max_s / 0.2) + 2):
            self.absorb(lg.call("report", {}, timeout=30))
            if self.complete() or time.monotonic() - start > max_s:
                break
            time.sleep(0.2)
        return time.monotonic() - start

    def summary(self, stored: set[str] | None, duration: float) -> dict:
        sent = set(self.sent)
        acked = {c for c in sent if c in self.acks}
        delivered = {c for c in acked if c in self.agent_first}
        stored_v = acked if stored is None else sent & stored
        lost_v = {c for c in acked if c not in delivered or c not in stored_v}
        replies = set(self.reply_sent)
        r_acked = {r for r in replies if r in self.acks}
        r_delivered = {r for r in r_acked if r in self.visitor_recv}
        r_stored = r_acked if stored is None else replies & stored
        lost_r = {r for r in r_acked if r not in r_delivered or r not in r_stored}
        v2a = [(self.agent_first[c] - self.sent[c]) * 1000 for c in delivered]
        a2v = [(self.visitor_recv[r] - self.reply_sent[r]) * 1000 for r in r_delivered]
        acks = [self.acks[c][0] for c in acked]
        fanout = [self.agent_count[c] for c in delivered]
        return {
            "rate_achieved": _r(len(sent) / duration if duration else None),
            "p50_ms": _r(percentile(v2a, 50)),
            "p95_ms": _r(percentile(v2a, 95)),
            "p99_ms": _r(percentile(v2a, 99)),
            "ack_p99_ms": _r(percentile(acks, 99)),
            "sent": len(sent),
            "acked": len(acked),
            "stored": len(stored_v),
            "delivered": len(delivered),
            "lost": len(lost_v) + len(lost_r),
            # extras
            "max_ms": _r(max(v2a, default=None)),
            "ack_p50_ms": _r(percentile(acks, 50)),
            "refused": len(sent & self.refused),
            "unacked": len(sent - acked - self.refused),
            "lost_visitor_messages": len(lost_v),
            "deliveries_per_message": _r(sum(fanout) / len(fanout) if fanout else None, 2),
            "replies_sent": len(replies),
            "replies_acked": len(r_acked),
            "replies_stored": len(r_stored),
            "replies_delivered": len(r_delivered),
            "replies_lost": len(lost_r),
            "a2v_p50_ms": _r(percentile(a2v, 50)),
            "a2v_p95_ms": _r(percentile(a2v, 95)),
            "a2v_p99_ms": _r(percentile(a2v, 99)),
            # from the message's created_at (the writer's batch) to the first receiver
            "v2a_after_store_p50_ms": _r(percentile(self.after_store["agent"], 50)),
            "v2a_after_store_p99_ms": _r(percentile(self.after_store["agent"], 99)),
            "a2v_after_store_p50_ms": _r(percentile(self.after_store["visitor"], 50)),
            "a2v_after_store_p99_ms": _r(percentile(self.after_store["visitor"], 99)),
            "errors": dict(self.errors),
        }


def _send(
    lg: LoadGen,
    gids: list[int],
    *,
    rate_per_visitor: float,
    duration: float,
    tag: str,
    reply_pct: int,
    text_size: int,
    lead: float = 0.5,
) -> tuple[Ledger, dict]:
    start_at = time.time() + lead
    replies = lg.call(
        "send",
        [
            {
                "gids": part,
                "rate": rate_per_visitor,
                "start_at": start_at,
                "duration": duration,
                "tag": tag,
                "reply_pct": reply_pct,
                "text_size": text_size,
            }
            for part in lg.split(gids)
        ],
        timeout=lead + duration + 40,
    )
    ledger = Ledger(reply_pct=reply_pct)
    for r in replies:
        ledger.sent.update(r["sent"])
    lag = {
        "loadgen_late_sends": sum(r["late_sends"] for r in replies),
        "loadgen_lag_ms_max": _r(max(r["lag_ms_max"] for r in replies)),
    }
    return ledger, lag


# --- text chat --------------------------------------------------------------------------------


# The chat scenario's figures issue 5 requires in bench/results/latest.json, in its order.
CHAT_KEYS = (
    "connections",
    "rate_target",
    "rate_achieved",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "ack_p99_ms",
    "sent",
    "acked",
    "stored",
    "delivered",
    "lost",
)


def chat(target: Target, p: dict, tag: str) -> dict:
    """V visitors and A agents; visitors send at a set total rate, agents answer a share."""
    v, a = p["visitors"], p["agents"]
    spec = _spec(
        target,
        max_seconds=p["ramp_deadline"] + p["duration"] + p["drain"] + 120,
        conns_per_port=math.ceil((v + a) / len(target.spec["ports"])),
        force_src=p.get("src_addrs", 0),
        agents=a,
    )
    settled = target.probe.settle(p["settle"])
    with LoadGen(spec, target.workers) as lg:
        _agents(lg, spec, heartbeat=p["heartbeat"], timeout=p["connect_timeout"])
        ramp = _connect(lg, list(range(v)), heartbeat=p["heartbeat"], p=p)
        gids = list(range(v))
        warm_s = p.get("warm", 0)
        if warm_s:
            # Steady chat only (bench/run.py --chat-warm): every visitor opens their
            # conversation first, one message each over warm_s seconds, not counted (the
            # tag differs), and the servers settle before the measured sends.
            warm, _ = _send(
                lg,
                gids,
                rate_per_visitor=1.0 / warm_s,
                duration=warm_s,
                tag=tag.rstrip("-") + "w-",
                reply_pct=0,
                text_size=p["text_size"],
            )
            warm.drain(lg, p["drain"])
            settled += target.probe.settle(p["settle"])
        meter = Meter(target.probe, Probe(lg.pids))
        if target.on_load:
            target.on_load("chat", p["duration"] + 1)
        ledger, lag = _send(
            lg,
            gids,
            rate_per_visitor=p["rate"] / v,
            duration=p["duration"],
            tag=tag,
            reply_pct=p["reply_pct"],
            text_size=p["text_size"],
        )
        drained = ledger.drain(lg, p["drain"])
        cpu = meter.read()
    stored = target.stored(tag) if target.stored else None
    out = {
        "connections": ramp["connected"] + a,
        "rate_target": p["rate"],
        **ledger.summary(stored, p["duration"]),
        "visitors": v,
        "agents": a,
        "duration_s": p["duration"],
        "drain_s": _r(drained, 2),
        "settled_s": _r(settled),
        "warm_s": warm_s,
        "connect_failed": ramp["failed"],
        "reply_pct": p["reply_pct"],
        "server_cpu_ms_per_msg": _r(cpu["server_cpu_s"] * 1000 / len(ledger.sent), 2)
        if ledger.sent
        else None,
        "cpu": cpu,
        **lag,
    }
    # key order of the schema first
    return {k: out[k] for k in CHAT_KEYS} | {k: v for k, v in out.items() if k not in CHAT_KEYS}


# --- files ------------------------------------------------------------------------------------


def files(target: Target, p: dict, tag: str) -> dict:
    """A share of visitors upload a PNG-looking file over HTTP, then send it as a message."""
    v, a = p["visitors"], p["agents"]
    spec = _spec(
        target,
        max_seconds=p["ramp_deadline"] + p["timeout"] * p["per_visitor"] + p["drain"] + 120,
        conns_per_port=math.ceil((v + a) / len(target.spec["ports"])),
        force_src=0,
        agents=a,
    )
    settled = target.probe.settle(p["settle"])
    with LoadGen(spec, target.workers) as lg:
        _agents(lg, spec, heartbeat=0, timeout=p["connect_timeout"])
        _connect(lg, list(range(v)), heartbeat=0, p=p)
        meter = Meter(target.probe, Probe(lg.pids))
        t0 = time.monotonic()
        replies = lg.call(
            "files",
            [
                {
                    "gids": part,
                    "per_visitor": p["per_visitor"],
                    "size": p["size"],
                    "tag": tag,
                    "timeout": p["timeout"],
                }
                for part in lg.split(list(range(v)))
            ],
            timeout=p["timeout"] * p["per_visitor"] + 30,
        )
        wall = time.monotonic() - t0
        ledger = Ledger()
        records = [rec for r in replies for rec in r["records"]]
        for r in replies:
            ledger.sent.update(r["sent"])
        ledger.drain(lg, p["drain"])
        cpu = meter.read()
    stored = target.stored(tag) if target.stored else None
    s = ledger.summary(stored, wall)
    upload_ms = [r["upload_ms"] for r in records if r["status"] == 201]
    failed_uploads = [r for r in records if r["status"] != 201]
    return {
        "uploads": len(records),
        "failed": len(failed_uploads) + s["unacked"] + s["lost"],
        "p99_ms": s["p99_ms"],  # upload start -> first agent has the message
        # extras
        "p50_ms": s["p50_ms"],
        "upload_p50_ms": _r(percentile(upload_ms, 50)),
        "upload_p99_ms": _r(percentile(upload_ms, 99)),
        "size_kb": p["size"] // 1024,
        "settled_s": _r(settled),  # waited for the servers to go quiet first
        "failed_uploads": len(failed_uploads),
        "upload_statuses": dict(Counter(str(r["status"]) for r in records)),
        "messages_sent": s["sent"],
        "messages_acked": s["acked"],
        "messages_stored": s["stored"],
        "messages_delivered": s["delivered"],
        "messages_lost": s["lost"],
        "cpu": cpu,
    }


# --- bot --------------------------------------------------------------------------------------


def bot(target: Target, p: dict, tag: str, widget_key: str, answer: str) -> dict:
    """Visitors of the bot workspace ask one question each, spread over ``duration``.

    The bot answers through Celery, asking the fake provider, which waits ``latency``
    seconds and answers ``answer``. Measured: question written -> the bot's message on the
    visitor's socket. An answer with another text (a hand-off) is not counted as answered.
    """
    v = p["visitors"]
    spec = _spec(
        target,
        max_seconds=p["ramp_deadline"] + p["duration"] + p["drain"] + 120,
        conns_per_port=math.ceil(v / len(target.spec["ports"])),
        force_src=0,
        agents=0,
    ) | {"widget_key": widget_key}
    settled = target.probe.settle(p["settle"])
    with LoadGen(spec, target.workers) as lg:
        ramp = _connect(lg, list(range(v)), heartbeat=p["heartbeat"], p=p)
        meter = Meter(target.probe, Probe(lg.pids))
        if target.on_load:
            target.on_load("bot", p["duration"] + p["latency"] + 1)
        ledger, lag = _send(
            lg,
            list(range(v)),
            rate_per_visitor=1.0 / p["duration"],  # one question per visitor
            duration=p["duration"],
            tag=tag,
            reply_pct=0,
            text_size=p["text_size"],
        )
        ledger.bot = True
        drained = ledger.drain(lg, p["drain"])
        cpu = meter.read()
    stored = target.stored(tag) if target.stored else set()
    answers = {c: ledger.bot_answer(c) for c in ledger.sent}
    answered = {c: a for c, a in answers.items() if a and a[1] == answer}
    other = {c for c, a in answers.items() if a and a[1] != answer}
    ms = [(a[0] - ledger.sent[c]) * 1000 for c, a in answered.items()]
    latency_ms = p["latency"] * 1000
    return {
        "questions": len(ledger.sent),
        "answered": len(answered),
        "p50_ms": _r(percentile(ms, 50)),
        "p99_ms": _r(percentile(ms, 99)),
        # extras
        "provider_latency_ms": latency_ms,
        "overhead_p50_ms": _r(percentile(ms, 50) - latency_ms if ms else None),
        "overhead_p99_ms": _r(percentile(ms, 99) - latency_ms if ms else None),
        "max_ms": _r(max(ms, default=None)),
        "acked": sum(1 for c in ledger.sent if c in ledger.acks),
        "stored": len(set(ledger.sent) & stored),
        "other_bot_messages": len(other),
        "unanswered": len(ledger.sent) - len(answered) - len(other),
        "refused": len(set(ledger.sent) & ledger.refused),
        "questions_per_s": _r(len(ledger.sent) / p["duration"]),
        "settled_s": _r(settled),
        "visitors": v,
        "connect_failed": ramp["failed"],
        "duration_s": p["duration"],
        "drain_s": _r(drained, 2),
        "errors": dict(ledger.errors),
        "cpu": cpu,
        **lag,
    }


# --- saturation -------------------------------------------------------------------------------


def saturation(target: Target, p: dict, tag: str) -> dict:
    """Step the total message rate up until p99 delivery passes the limit or a loss appears."""
    v, a = p["visitors"], p["agents"]
    spec = _spec(
        target,
        max_seconds=p["ramp_deadline"] + len(p["steps"]) * (p["step"] + p["drain"] + 10) + 120,
        conns_per_port=math.ceil((v + a) / len(target.spec["ports"])),
        force_src=p.get("src_addrs", 0),
        agents=a,
    )
    settled = target.probe.settle(p["settle"])
    steps = []
    stop_reason = "all steps held"
    with LoadGen(spec, target.workers) as lg:
        _agents(lg, spec, heartbeat=20, timeout=p["connect_timeout"])
        pool = 0  # visitors connected so far: each step connects what it needs beforehand
        connect_failed = 0
        for k, rate in enumerate(p["steps"]):
            want = min(v, max(1, math.ceil(rate / p["per_visitor_target"])))
            if want > pool:
                ramp = _connect(lg, list(range(pool, want)), heartbeat=20, p=p)
                connect_failed += ramp["failed"]
                if ramp["failed"]:
                    stop_reason = f"{ramp['failed']} of {want} visitors could not connect"
                    break
                # The newcomers open their conversations first (one message each, not
                # counted): a step measures chat traffic at a rate, while opening (find or
                # create the conversation, route it) is measured by the chat scenario.
                warm_s = p.get("warm", 1.0)
                warm, _ = _send(
                    lg,
                    list(range(pool, want)),
                    rate_per_visitor=1.0 / warm_s,  # one message each
                    duration=warm_s,
                    tag=f"{tag}w{k}-",
                    reply_pct=0,
                    text_size=p["text_size"],
                )
                warm.drain(lg, p["drain"])
                pool = want
                time.sleep(p.get("pause", 0.5))
            active = want
            per_visitor = rate / active
            if per_visitor > p["per_visitor_max"]:
                stop_reason = f"{rate} msg/s needs more than {v} visitors"
                break
            meter = Meter(target.probe, Probe(lg.pids))
            if target.on_load:
                target.on_load(f"saturation-{rate}", p["step"])
            ledger, lag = _send(
                lg,
                list(range(active)),
                rate_per_visitor=per_visitor,
                duration=p["step"],
                tag=f"{tag}{k}-",
                reply_pct=0,
                text_size=p["text_size"],
            )
            drained = ledger.drain(lg, p["drain"])
            cpu = meter.read()
            stored = target.stored(f"{tag}{k}-") if target.stored else None
            s = ledger.summary(stored, p["step"])
            reasons = []
            if s["p99_ms"] is None or s["p99_ms"] > p["p99_limit_ms"]:
                reasons.append(f"p99 {s['p99_ms']} ms > {p['p99_limit_ms']} ms")
            if s["lost"]:
                reasons.append(f"{s['lost']} lost")
            if s["unacked"]:
                reasons.append(f"{s['unacked']} unacked")
            if s["refused"]:
                reasons.append(f"{s['refused']} refused")
            if (s["rate_achieved"] or 0) < 0.9 * rate:
                reasons.append(f"sent {s['rate_achieved']} msg/s of {rate}")
            per_msg = cpu["server_cpu_s"] * 1000 / s["sent"] if s["sent"] else None
            steps.append(
                {
                    "rate": rate,
                    "server_cpu_ms_per_msg": _r(per_msg, 2),
                    "visitors": active,
                    "held": not reasons,
                    "why": reasons,
                    "drain_s": _r(drained, 2),
                    "cpu": cpu,
                    **lag,
                    **{
                        k2: s[k2]
                        for k2 in (
                            "rate_achieved",
                            "p50_ms",
                            "p95_ms",
                            "p99_ms",
                            "max_ms",
                            "ack_p99_ms",
                            "sent",
                            "acked",
                            "stored",
                            "delivered",
                            "lost",
                            "unacked",
                            "refused",
                            "deliveries_per_message",
                        )
                    },
                }
            )
            if reasons:
                stop_reason = f"{rate} msg/s: " + ", ".join(reasons)
                break
            time.sleep(p.get("pause", 0.5))
    held = [s for s in steps if s["held"]]
    best = held[-1] if held else None
    return {
        "max_rate": best["rate"] if best else 0,
        "p99_ms": best["p99_ms"] if best else (steps[0]["p99_ms"] if steps else None),
        # extras
        "max_rate_achieved": best["rate_achieved"] if best else 0,
        # every step held: max_rate is a lower bound (the schedule or pool ran out)
        "capped": bool(steps) and all(s["held"] for s in steps),
        "stopped": stop_reason,
        "settled_s": _r(settled),
        "visitors": pool,
        "connect_failed": connect_failed,
        "agents": a,
        "step_s": p["step"],
        "p99_limit_ms": p["p99_limit_ms"],
        "steps": steps,
    }
