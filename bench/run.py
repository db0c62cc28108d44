"""Run the benchmark: our stack in production mode, then the two baselines; print a table.

    make bench                 # full run (< 15 min)
    make bench QUICK=1         # quick run (< 2 min)
    .venv/bin/python bench/run.py --quick --server uvicorn --ws-deflate off

What it does, in order (see docs/performance.md):

1. installs bench/requirements.txt into .venv when it changed, raises the open-file limit;
2. checks PostgreSQL and Redis on 127.0.0.1, creates the databases ``helpdesk_bench``
   (PostGIS) and ``helpdesk_bench_naive`` when missing and migrates both; empties the
   Redis databases 13 and 14 (the bench's own; nothing else uses them);
3. seeds the bench workspace and agent sessions (bench/seed.py) and starts N ASGI
   server processes of the product (one per core by default, each on its own port, the
   load spread round-robin), waits for /healthz, runs the scenarios, stops them
   (SIGTERM, then SIGKILL after a deadline: daphne may not exit under load);
4. the same for the limit (bench/baselines/relay.py) and the naive stack
   (bench/baselines/naive/, daphne), with the connections and saturation scenarios;
5. prints the table and writes bench/results/latest.json plus a timestamped copy.

All traffic goes to 127.0.0.1; every loop is bounded; nothing outlives the run.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
NAIVE_DIR = BENCH / "baselines" / "naive"
RESULTS = BENCH / "results"

PROFILES = {
    "quick": {
        "connections": {
            "target": 500,
            "hold": 3,
            "heartbeat": 2,
            "ramp_deadline": 30,
            "connect_timeout": 10,
            "concurrency": 50,
            "settle": 2,
        },
        "chat": {
            "visitors": 200,
            "agents": 20,
            "rate": 100,
            "duration": 5,
            "drain": 5,
            "reply_pct": 20,
            "heartbeat": 20,
            "text_size": 100,
            "ramp_deadline": 30,
            "connect_timeout": 10,
            "concurrency": 50,
            "settle": 2,
        },
        "files": {
            "visitors": 20,
            "agents": 5,
            "per_visitor": 1,
            "size": 100 * 1024,
            "timeout": 20,
            "drain": 5,
            "ramp_deadline": 20,
            "connect_timeout": 10,
            "concurrency": 20,
            "settle": 2,
        },
        "bot": {
            "visitors": 20,
            "duration": 2,
            "latency": 0.5,
            "drain": 20,
            "heartbeat": 20,
            "text_size": 60,
            "ramp_deadline": 20,
            "connect_timeout": 10,
            "concurrency": 20,
            "settle": 2,
        },
        "saturation": {
            "visitors": 640,
            "agents": 5,
            "steps": [25, 50, 100, 200, 400, 800, 1600, 3200, 6400],
            "step": 1.5,
            "warm": 0.4,
            "drain": 3,
            "per_visitor_target": 4,
            "per_visitor_max": 10,
            "p99_limit_ms": 100,
            "text_size": 100,
            "ramp_deadline": 30,
            "connect_timeout": 10,
            "concurrency": 50,
            "settle": 2,
            "pause": 0.3,
        },
        "baseline_hold": 3,
    },
    "full": {
        "connections": {
            "target": 20000,
            "hold": 60,
            "heartbeat": 20,
            "ramp_deadline": 120,
            "connect_timeout": 20,
            "concurrency": 100,
            "settle": 10,
        },
        "chat": {
            "visitors": 4980,
            "agents": 20,
            "rate": 500,
            "duration": 30,
            "drain": 10,
            "reply_pct": 20,
            "heartbeat": 20,
            "text_size": 100,
            "ramp_deadline": 90,
            "connect_timeout": 20,
            "concurrency": 100,
            "settle": 10,
        },
        "files": {
            "visitors": 100,
            "agents": 5,
            "per_visitor": 2,
            "size": 100 * 1024,
            "timeout": 30,
            "drain": 10,
            "ramp_deadline": 30,
            "connect_timeout": 20,
            "concurrency": 50,
            "settle": 45,
        },
        "bot": {
            "visitors": 200,
            "duration": 20,
            "latency": 0.5,
            "drain": 60,
            "heartbeat": 20,
            "text_size": 60,
            "ramp_deadline": 30,
            "connect_timeout": 20,
            "concurrency": 50,
            "settle": 45,
        },
        "saturation": {
            "visitors": 2000,
            "agents": 5,
            "steps": [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 19200],
            "step": 8,
            "drain": 5,
            "per_visitor_target": 4,
            "per_visitor_max": 10,
            "p99_limit_ms": 100,
            "text_size": 100,
            "ramp_deadline": 60,
            "connect_timeout": 20,
            "concurrency": 100,
            "settle": 45,
            "pause": 1,
        },
        "baseline_hold": 30,
    },
}
SCENARIOS = ("connections", "chat", "files", "bot", "saturation")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- set-up -----------------------------------------------------------------------------------


def ensure_requirements() -> None:
    """pip install bench/requirements.txt into .venv when it changed (a stamp file)."""
    req = BENCH / "requirements.txt"
    stamp = VENV / ".installed-bench-requirements.sha256"
    want = hashlib.sha256(req.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    log("pip install -r bench/requirements.txt")
    subprocess.run(
        [
            str(PY),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-q",
            "-r",
            str(req),
        ],
        check=True,
    )
    stamp.write_text(want + "\n")


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def pg_conninfo(args, dbname: str) -> str:
    return (
        f"host={args.pg_host} port={args.pg_port} user={args.pg_user} "
        f"password={args.pg_password} dbname={dbname} connect_timeout=5"
    )


def ensure_database(args, name: str, postgis: bool) -> None:
    import psycopg

    with psycopg.connect(pg_conninfo(args, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            log(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')
    if postgis:
        with psycopg.connect(pg_conninfo(args, name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def stored_counter(args, dbname: str, table: str):
    """client ids stored in ``table`` under a prefix, counted in the database itself."""
    import psycopg

    def stored(prefix: str) -> set[str]:
        with psycopg.connect(pg_conninfo(args, dbname)) as conn:
            rows = conn.execute(
                f"SELECT client_id FROM {table} WHERE client_id LIKE %s", (prefix + "%",)
            ).fetchall()
        return {r[0] for r in rows}

    return stored


def flush_redis(args, db: int) -> None:
    import redis

    if db == 0:
        raise SystemExit("refusing to flush Redis database 0 (the tests' and dev's)")
    redis.Redis(host="127.0.0.1", port=args.redis_port, db=db, socket_timeout=5).flushdb()


def check_services(args) -> None:
    import psycopg
    import redis

    try:
        psycopg.connect(pg_conninfo(args, "postgres")).close()
        redis.Redis(host="127.0.0.1", port=args.redis_port, socket_timeout=5).ping()
    except Exception as exc:
        raise SystemExit(
            f"PostgreSQL or Redis is not answering on 127.0.0.1 ({exc.__class__.__name__}: "
            f"{exc}); `make services` starts them"
        ) from exc


def ours_env(args, media: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HELPDESK_"))}
    env.update(
        DATABASE_URL=(
            f"postgis://{args.pg_user}:{args.pg_password}@{args.pg_host}:"
            f"{args.pg_port}/{args.db_name}"
        ),
        REDIS_URL=f"redis://127.0.0.1:{args.redis_port}/{args.redis_db}",
        HELPDESK_CHANNEL_PREFIX="bench",
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(32),
        DJANGO_SETTINGS_MODULE="helpdesk.settings",
        HELPDESK_MEDIA_ROOT=media,
        HELPDESK_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def naive_env(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NAIVE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="naive.settings",
        NAIVE_DB_NAME=args.db_name + "_naive",
        NAIVE_DB_HOST=args.pg_host,
        NAIVE_DB_PORT=str(args.pg_port),
        NAIVE_DB_USER=args.pg_user,
        PGPASSWORD=args.pg_password,
        NAIVE_REDIS_URL=f"redis://127.0.0.1:{args.redis_port}/{args.redis_db + 1}",
        NAIVE_FANOUT=args.baseline_fanout,
        PYTHONUNBUFFERED="1",
    )
    return env


def migrate(env: dict, cwd: Path, logfile: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(PY), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=cwd,
        env=env,
        stdout=logfile.open("w"),
        stderr=subprocess.STDOUT,
    )


# --- server processes -------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills it if the bench process dies first."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Stack:
    """N server processes, one port each (or workers with a ready line in their log);
    stopped with SIGTERM, then SIGKILL after a deadline."""

    def __init__(
        self,
        name: str,
        commands: list[list[str]],
        ports: list[int],
        env: dict,
        cwd: Path,
        logdir: Path,
        ready_line: str | None = None,
    ) -> None:
        self.name, self.commands, self.ports = name, commands, ports
        self.env, self.cwd, self.logdir = env, cwd, logdir
        self.ready_line = ready_line
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 90) -> None:
        for i, cmd in enumerate(self.commands):
            out = self._log(i).open("w")
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=self.cwd,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            while not self._ready(i):
                if proc.poll() is not None:
                    raise SystemExit(
                        f"{self.name} process {i} exited (code {proc.returncode}); "
                        f"see {self._log(i)}"
                    )
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name} process {i} not ready in {timeout} s")
                time.sleep(0.2)

    def _log(self, i: int) -> Path:
        return self.logdir / f"{self.name}-{i}.log"

    def _ready(self, i: int) -> bool:
        """A server answers /healthz on its port; a worker has written ``ready_line``."""
        if self.ready_line is not None:
            return self.ready_line in self._log(i).read_text(errors="replace")
        url = f"http://127.0.0.1:{self.ports[i]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self, grace: float = 3.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            if p.poll() is None:
                log(f"{self.name} pid {p.pid} ignored SIGTERM for {grace:.0f} s: SIGKILL")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        self.procs = []


def ours_commands(args, ports: list[int]) -> tuple[list[list[str]], str]:
    bin_ = VENV / "bin"
    if args.server == "daphne":
        import daphne

        label = f"daphne {daphne.__version__}"
        return [
            [str(bin_ / "daphne"), "-b", "127.0.0.1", "-p", str(p), "helpdesk.asgi:application"]
            for p in ports
        ], label
    import uvicorn

    label = (
        f"uvicorn {uvicorn.__version__} (uvloop, httptools, ws={args.uvicorn_ws}, "
        f"permessage-deflate {args.ws_deflate})"
    )
    return [
        [
            str(bin_ / "uvicorn"),
            "helpdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(p),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            args.uvicorn_ws,
            "--ws-per-message-deflate",
            "true" if args.ws_deflate == "on" else "false",
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        for p in ports
    ], label


BOT_ANSWER = "The bench provider's answer."


def celery_commands(args, run_id: str) -> tuple[list[list[str]], str]:
    """The Celery worker of the bot scenario, as production starts it (docker-compose.yml)."""
    cmd = [str(VENV / "bin" / "celery"), "-A", "helpdesk", "worker", "-l", "info"]
    cmd += ["-n", f"bench-{run_id}@%h", "--without-gossip", "--without-mingle"]
    label = "celery worker (production command)"
    if args.celery_pool:
        cmd += ["--pool", args.celery_pool]
        label = f"celery worker --pool {args.celery_pool}"
    if args.celery_concurrency:
        cmd += ["--concurrency", str(args.celery_concurrency)]
        label += f" --concurrency {args.celery_concurrency}"
    return [cmd], label


def ours_spec(ports: list[int], seeded: dict, compression: str | None = "deflate") -> dict:
    """What the scenarios need to reach our stack: its ports and what bench/seed.py made.

    Also used by bench/tests/test_bench_smoke.py, which runs the chat scenario in
    ``make test`` against servers of the test suite.
    """
    return {
        "host": "127.0.0.1",
        "ports": ports,
        "widget_key": seeded["widget_key"],
        "agents": seeded["agents"],
        "visitor_query": "",
        "compression": compression,
    }


class Profiler:
    """py-spy sampling profiles of the server processes while a scenario loads them."""

    def __init__(self, pids: list[int], logdir: Path) -> None:
        self.pids, self.logdir = pids, logdir
        self.jobs: list[tuple[str, subprocess.Popen, Path]] = []

    def __call__(self, scenario: str, seconds: float) -> None:
        for i, pid in enumerate(self.pids):
            out = self.logdir / f"profile-{scenario}-{i}.txt"
            job = subprocess.Popen(
                [
                    str(VENV / "bin" / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, round(seconds))),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.logdir / f"py-spy-{i}.log").open("w"),
            )
            self.jobs.append((scenario, job, out))

    def collect(self) -> dict:
        """Per scenario: the functions holding the most samples (inclusive), summed over pids."""
        out: dict = {}
        for scenario, job, path in self.jobs:
            try:
                job.wait(30)
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait(5)
            entry = out.setdefault(scenario, {"samples": 0, "inclusive": {}, "files": []})
            entry["files"].append(str(path))
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not count.isdigit():
                    continue
                n = int(count)
                entry["samples"] += n
                for frame in set(stack.split(";")[1:]):  # [0] is the process/thread
                    entry["inclusive"][frame] = entry["inclusive"].get(frame, 0) + n
        for entry in out.values():
            total = max(1, entry["samples"])
            top = sorted(entry["inclusive"].items(), key=lambda kv: -kv[1])[:40]
            entry["top_inclusive_pct"] = [[f, round(100 * n / total, 1)] for f, n in top]
            del entry["inclusive"]
        self.jobs = []
        return out


# --- output -----------------------------------------------------------------------------------


def _f(x, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        x = f"{x:.3g}" if abs(x) < 1 else f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"
    elif isinstance(x, int):
        x = f"{x:,}"
    return f"{x}{unit}"


def table(res: dict) -> str:
    sc = res["scenarios"]
    lines = [
        f"helpdesk bench ({'QUICK' if res['quick'] else 'FULL'} run) {res['started_at']}  "
        f"server: {res['server']} x{res['workers']}  load generator: {res['loadgen_workers']} "
        f"processes  machine: {res['machine']['cpus']} cores",
        "",
    ]
    rows = [("stack / scenario", "figures")]
    c = sc.get("connections")
    if c:
        rows.append(
            (
                "ours connections",
                f"target {_f(c['target'])}  held {_f(c['held'])}  failed {_f(c['failed'])}  "
                f"connect p50 {_f(c['connect_p50_ms'])} ms p99 {_f(c['connect_p99_ms'])} ms  "
                f"ramp {_f(c['ramp_s'])} s  RSS/conn {_f(c['server_rss_kb_per_conn'])} KB  "
                f"server CPU {_f(c['cpu']['server_cpu_pct'])}%",
            )
        )
    ch = sc.get("chat")
    if ch:
        rows.append(
            (
                "ours chat",
                f"{_f(ch['connections'])} conns  {_f(ch['rate_target'])} msg/s target, "
                f"{_f(ch['rate_achieved'])} sent/s  v->a p50 {_f(ch['p50_ms'])} "
                f"p95 {_f(ch['p95_ms'])} p99 {_f(ch['p99_ms'])} ms  ack p99 "
                f"{_f(ch['ack_p99_ms'])} ms  a->v p99 {_f(ch['a2v_p99_ms'])} ms",
            )
        )
        rows.append(
            (
                "",
                f"sent {_f(ch['sent'])}  acked {_f(ch['acked'])}  stored {_f(ch['stored'])}  "
                f"delivered {_f(ch['delivered'])}  lost {_f(ch['lost'])}  replies "
                f"{_f(ch['replies_delivered'])}/{_f(ch['replies_sent'])}  server CPU "
                f"{_f(ch['cpu']['server_cpu_pct'])}%  loadgen CPU "
                f"{_f(ch['cpu']['loadgen_cpu_pct'])}%",
            )
        )
    fi = sc.get("files")
    if fi:
        rows.append(
            (
                "ours files",
                f"{_f(fi['uploads'])} uploads of {fi['size_kb']} KB  failed {_f(fi['failed'])}  "
                f"upload p50 {_f(fi['upload_p50_ms'])} p99 {_f(fi['upload_p99_ms'])} ms  "
                f"upload->agent p99 {_f(fi['p99_ms'])} ms",
            )
        )
    bo = sc.get("bot")
    if bo:
        rows.append(
            (
                "ours bot",
                f"questions {_f(bo['questions'])}  answered {_f(bo['answered'])}  question->"
                f"answer p50 {_f(bo['p50_ms'])} p99 {_f(bo['p99_ms'])} ms (provider latency "
                f"{_f(bo['provider_latency_ms'])} ms)  {bo['worker']}",
            )
        )
    for name, sat in (
        ("ours", sc.get("saturation")),
        ("limit", res["baselines"].get("limit", {}).get("saturation")),
        ("naive", res["baselines"].get("naive", {}).get("saturation")),
    ):
        if not sat:
            continue
        steps = "  ".join(
            f"{s['rate']}{'ok' if s['held'] else 'X'}(p99 {_f(s['p99_ms'])})" for s in sat["steps"]
        )
        held = [s for s in sat["steps"] if s["held"]]
        cost = _f(held[-1]["server_cpu_ms_per_msg"]) if held else "-"
        at_least = ">= " if sat.get("capped") else ""
        rows.append(
            (
                f"{name} saturation",
                f"max {at_least}{_f(sat['max_rate'])} msg/s (p99 {_f(sat['p99_ms'])} ms, "
                f"server CPU {cost} ms/msg)  steps: {steps}",
            )
        )
        rows.append(("", f"stopped: {sat['stopped']}"))
    for name in ("limit", "naive"):
        b = res["baselines"].get(name, {}).get("connections")
        if b:
            rows.append(
                (
                    f"{name} connections",
                    f"target {_f(b['target'])}  held {_f(b['held'])}  connect p50 "
                    f"{_f(b['connect_p50_ms'])} ms p99 {_f(b['connect_p99_ms'])} ms  ramp "
                    f"{_f(b['ramp_s'])} s  RSS/conn {_f(b['server_rss_kb_per_conn'])} KB",
                )
            )
    r = res["ratios"]
    rows.append(
        (
            "ratios",
            f"rate ours/limit {_f(r['rate_vs_limit'])}  ours/naive "
            f"{_f(r['rate_vs_naive'])}  conns ours/limit {_f(r['conns_vs_limit'])}  "
            f"ours/naive {_f(r['conns_vs_naive'])}",
        )
    )
    width = max(len(a) for a, _ in rows)
    lines += [f"{a.ljust(width)} | {b}" for a, b in rows]
    return "\n".join(lines)


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def machine() -> dict:
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in (
        "django",
        "channels",
        "channels_redis",
        "daphne",
        "uvicorn",
        "websockets",
        "redis",
        "psycopg",
    ):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


# --- main -------------------------------------------------------------------------------------


def parse_args():
    env_quick = os.environ.get("QUICK", "").lower() in ("1", "true", "yes", "on")
    parser = argparse.ArgumentParser(
        description="Run the helpdesk benchmark (docs/performance.md)."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=env_quick,
        help="the quick profile (also QUICK=1 in the environment)",
    )
    parser.add_argument(
        "--server", choices=["daphne", "uvicorn"], default=os.environ.get("BENCH_SERVER", "daphne")
    )
    parser.add_argument(
        "--uvicorn-ws", choices=["websockets", "websockets-sansio", "wsproto"], default="websockets"
    )
    parser.add_argument(
        "--ws-deflate",
        choices=["on", "off"],
        default="on",
        help="uvicorn's permessage-deflate (the clients offer it, as browsers do)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BENCH_WORKERS", 0)) or os.cpu_count(),
        help="ASGI server processes (default: one per core)",
    )
    parser.add_argument("--loadgen-workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--baselines",
        default=os.environ.get("BENCH_BASELINES", "limit,naive"),
        help="comma-separated subset of limit,naive ('' for none)",
    )
    parser.add_argument(
        "--baseline-fanout",
        choices=["all", "one"],
        default="all",
        help="baselines send a visitor message to all agents, or to one",
    )
    parser.add_argument(
        "--naive-workers",
        type=int,
        default=0,
        help="daphne processes of the naive stack (default: as --workers)",
    )
    parser.add_argument("--connections", type=int, default=0, help="override the target")
    parser.add_argument(
        "--chat-warm",
        type=float,
        default=0,
        metavar="SECONDS",
        help="chat: open every visitor's conversation first (over SECONDS), then measure",
    )
    parser.add_argument(
        "--src-addrs",
        type=int,
        default=0,
        help="force N loopback source addresses (default: as needed)",
    )
    parser.add_argument("--client-deflate", choices=["on", "off"], default="on")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles of our servers: connection ramp, chat, bot, each saturation step",
    )
    parser.add_argument(
        "--celery-pool",
        choices=["prefork", "threads", "solo"],
        default="",
        help="the bot scenario's Celery pool (default: as the production command)",
    )
    parser.add_argument(
        "--celery-concurrency", type=int, default=0, help="(default: as the production command)"
    )
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--pg-password", default=os.environ.get("BENCH_PG_PASSWORD", "postgres"))
    parser.add_argument("--db-name", default="helpdesk_bench")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument(
        "--redis-db",
        type=int,
        default=13,
        help="Redis DB of our stack; the naive stack uses the next one",
    )
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--requirements-only",
        action="store_true",
        help="install bench/requirements.txt into .venv when it changed, then exit "
        "(make test does this for the bench's smoke test)",
    )
    return parser.parse_args()


def main() -> int:
    if (
        Path(sys.executable).resolve() != PY.resolve()
        and PY.exists()
        and not os.environ.get("BENCH_NO_REEXEC")
    ):
        os.environ["BENCH_NO_REEXEC"] = "1"
        os.execv(str(PY), [str(PY), *sys.argv])
    args = parse_args()
    if args.requirements_only:
        ensure_requirements()
        return 0
    if not args.db_name.startswith("helpdesk_bench"):
        raise SystemExit("--db-name must start with helpdesk_bench")
    t_start = time.monotonic()
    ensure_requirements()
    sys.path.insert(0, str(BENCH))
    from loadgen import raise_nofile
    from scenarios import Probe, Target, bot, chat, connections, files, saturation

    nofile = raise_nofile()  # the servers inherit it
    profile = PROFILES["quick" if args.quick else "full"]
    if args.connections:
        profile["connections"]["target"] = args.connections
    if args.chat_warm:
        profile["chat"]["warm"] = args.chat_warm
    for name in ("connections", "chat", "saturation"):
        profile[name]["src_addrs"] = args.src_addrs
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    check_services(args)

    run_id = secrets.token_hex(3)
    logdir = Path(tempfile.mkdtemp(prefix=f"helpdesk-bench-{run_id}-"))
    media = str(logdir / "media")
    log(f"run {run_id}: {'quick' if args.quick else 'full'} profile, logs in {logdir}")

    # Databases: ours (PostGIS) and the naive stack's, migrated side by side.
    ensure_database(args, args.db_name, postgis=True)
    env = ours_env(args, media)
    nenv = naive_env(args)
    jobs = [migrate(env, ROOT, logdir / "migrate-ours.log")]
    if "naive" in baselines:
        ensure_database(args, args.db_name + "_naive", postgis=False)
        jobs.append(migrate(nenv, NAIVE_DIR, logdir / "migrate-naive.log"))
    for job in jobs:
        if job.wait(300) != 0:
            raise SystemExit(f"migrate failed; see {logdir}")
    flush_redis(args, args.redis_db)
    flush_redis(args, args.redis_db + 1)

    compression = "deflate" if args.client_deflate == "on" else None
    agents_needed = max(
        PROFILES["quick" if args.quick else "full"][s].get("agents", 0)
        for s in ("chat", "files", "saturation")
    )
    result: dict = {
        "quick": args.quick,
        "server": "",
        "workers": args.workers,
        "scenarios": {},
        "baselines": {},
        "ratios": {},
        "run_id": run_id,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loadgen_workers": args.loadgen_workers,
        "open_file_limit": nofile,
        "machine": machine(),
        "options": {k: v for k, v in vars(args).items() if k != "pg_password"},
    }
    stacks: list[Stack] = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    fake = None
    try:
        # --- ours ---
        ports = free_ports(args.workers)
        commands, label = ours_commands(args, ports)
        result["server"] = label
        bot_seed = []
        if "bot" in wanted:
            # The test AI provider: a real HTTP server on loopback, in this process, that
            # waits the scenario's fixed latency and then answers.
            sys.path.insert(0, str(ROOT))
            from knowledge.tests.fake_openai import Behaviour, FakeOpenAI

            fake = FakeOpenAI().start()
            fake.default = Behaviour("slow", BOT_ANSWER, profile["bot"]["latency"])
            bot_seed = ["--bot-provider-url", fake.url("bench")]
        seed = subprocess.run(
            [
                str(PY),
                str(BENCH / "seed.py"),
                "--agents",
                str(agents_needed),
                *[a for p in ports for a in ("--origin", f"http://127.0.0.1:{p}")],
                *bot_seed,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if seed.returncode != 0:
            raise SystemExit(f"seed failed:\n{seed.stderr[-3000:]}")
        seeded = json.loads(seed.stdout.strip().splitlines()[-1])
        stack = Stack("ours", commands, ports, env, ROOT, logdir)
        stacks.append(stack)
        log(f"starting {label} x{args.workers} on ports {ports}")
        stack.start()
        spec = ours_spec(ports, seeded, compression)
        profiler = Profiler(stack.pids, logdir) if args.profile else None
        target = Target(
            "ours",
            spec,
            Probe(stack.pids),
            args.loadgen_workers,
            stored_counter(args, args.db_name, "chat_message"),
            profiler,
        )
        sc = result["scenarios"]
        if "connections" in wanted:
            log(f"ours: connections ({profile['connections']['target']})")
            sc["connections"] = connections(target, profile["connections"])
            if profiler:
                result.setdefault("profiles", {}).update(profiler.collect())
        if "chat" in wanted:
            log("ours: chat")
            sc["chat"] = chat(target, profile["chat"], f"{run_id}c-")
            if profiler:
                result.setdefault("profiles", {}).update(profiler.collect())
        if "files" in wanted:
            log("ours: files")
            sc["files"] = files(target, profile["files"], f"{run_id}f-")
        if "bot" in wanted:
            commands, worker_label = celery_commands(args, run_id)
            celery = Stack("celery", commands, [], env, ROOT, logdir, ready_line=" ready.")
            stacks.append(celery)
            celery.start()
            banner = re.search(r"concurrency: (\d+) \((\w+)\)", celery._log(0).read_text())
            if banner:
                worker_label += f": {banner[2]} pool x{banner[1]}"
            log(f"ours: bot ({worker_label})")
            # The servers and the worker: CPU and profiles of both.
            bot_profiler = Profiler(stack.pids + celery.pids, logdir) if args.profile else None
            bot_target = Target(
                "ours",
                spec,
                Probe(stack.pids + celery.pids),
                args.loadgen_workers,
                target.stored,
                bot_profiler,
            )
            worker_probe = Probe(celery.pids)
            worker_cpu0 = worker_probe.cpu_s()
            sc["bot"] = bot(
                bot_target, profile["bot"], f"{run_id}b-", seeded["bot"]["widget_key"], BOT_ANSWER
            ) | {
                "worker": worker_label,
                "worker_cpu_s": round(worker_probe.cpu_s() - worker_cpu0, 2),
                "worker_rss_mb": round(worker_probe.rss_kb() / 1024, 1),
                "provider_calls": len(fake.calls()),
            }
            if bot_profiler:
                result.setdefault("profiles", {}).update(bot_profiler.collect())
            celery.stop(grace=10)
        if "saturation" in wanted:
            log("ours: saturation")
            sc["saturation"] = saturation(target, profile["saturation"], f"{run_id}s")
            if profiler:
                result.setdefault("profiles", {}).update(profiler.collect())
        stack.stop()

        # --- baselines ---
        base_conn = dict(profile["connections"], hold=profile["baseline_hold"])
        for name in baselines:
            if name == "limit":
                bports = free_ports(1)
                cmds = [
                    [
                        str(PY),
                        str(BENCH / "baselines" / "relay.py"),
                        "--port",
                        str(bports[0]),
                        "--fanout",
                        args.baseline_fanout,
                    ]
                ]
                stack = Stack("limit", cmds, bports, os.environ.copy(), ROOT, logdir)
                stored = None
            elif name == "naive":
                bports = free_ports(args.naive_workers or args.workers)
                cmds = [
                    [
                        str(VENV / "bin" / "daphne"),
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(p),
                        "naive.asgi:application",
                    ]
                    for p in bports
                ]
                stack = Stack("naive", cmds, bports, nenv, NAIVE_DIR, logdir)
                stored = stored_counter(args, args.db_name + "_naive", "room_message")
            else:
                raise SystemExit(f"unknown baseline {name!r}")
            stacks.append(stack)
            log(f"starting baseline {name}")
            stack.start()
            agents = [{"index": i, "id": i, "cookie": ""} for i in range(agents_needed)]
            bspec = {
                "host": "127.0.0.1",
                "ports": bports,
                "widget_key": "bench",
                "agents": agents,
                "compression": compression,
                "visitor_query": f"&agents={profile['saturation']['agents']}",
            }
            btarget = Target(name, bspec, Probe(stack.pids), args.loadgen_workers, stored)
            b: dict = {}
            if "connections" in wanted:
                log(f"{name}: connections")
                b["connections"] = connections(btarget, base_conn)
            if "saturation" in wanted:
                log(f"{name}: saturation")
                b["saturation"] = saturation(btarget, profile["saturation"], f"{run_id}{name[0]}")
            result["baselines"][name] = {
                "max_rate": b.get("saturation", {}).get("max_rate"),
                "connections_held": b.get("connections", {}).get("held"),
                "p99_ms": b.get("saturation", {}).get("p99_ms"),
                "workers": len(bports),
                **b,
            }
            stack.stop()
    finally:
        for s in stacks:
            s.stop()
        if fake is not None:
            fake.stop()
        shutil.rmtree(media, ignore_errors=True)

    ours_rate = result["scenarios"].get("saturation", {}).get("max_rate")
    ours_held = result["scenarios"].get("connections", {}).get("held")
    lim, nai = result["baselines"].get("limit", {}), result["baselines"].get("naive", {})
    result["ratios"] = {
        "rate_vs_limit": ratio(ours_rate, lim.get("max_rate")),
        "rate_vs_naive": ratio(ours_rate, nai.get("max_rate")),
        "conns_vs_limit": ratio(ours_held, lim.get("connections_held")),
        "conns_vs_naive": ratio(ours_held, nai.get("connections_held")),
    }
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = "quick" if args.quick else "full"
    (out / "latest.json").write_text(text)
    (out / f"{stamp}-{kind}.json").write_text(text)
    print()
    print(table(result))
    print()
    log(
        f"wrote {out / 'latest.json'} and {stamp}-{kind}.json in {result['wall_s']} s; "
        f"server logs in {logdir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
