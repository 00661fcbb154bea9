"""`make bench`: the real platform, driven by concurrent branches, measured; with baselines
taken in the same run on the same machine.

    python bench/run.py [--seconds 60] [--rate 200] [--branches 20] [--kafka-share 0.3]
                        [--staff-share 0.25] [--kafka HOST:PORT --database-url DSN] [--smoke]

Starts every service as its own process (as `make run` does) against a fresh database
and topic namespace on the given broker and PostgreSQL (default: the `test` devstack,
started if needed), with the SMTP sink and the fake SMS gateway. Branch tasks submit
complaints over HTTP and over the `…submitted` topic at the target rate, with the packs'
categories, customers and products as `make demo` plans them; staff and customers work
a share of the HTTP ones meanwhile (actions and feedback, bench/staff.py). Afterwards it
reads the services' schemas (a benchmark may; services never do) for:

- throughput: complaints fully processed (accepted, routed, clocks set, acknowledgement
  sent, visible in reporting) per second of the run;
- latency percentiles: the HTTP intake answer, accept → routed, accept → visible in
  reporting; SLA timer lateness; projection lag;
- CPU seconds and peak RSS per process (psutil, sampled every 0.5 s).

Baselines: Kafka's own ProducerPerformance and ConsumerPerformance (1 KB records,
acks=all), a raw aiokafka consume → produce loop, and raw asyncpg writing as many rows
per transaction as one complaint causes across the schemas. Results: bench/results/
<UTC time>.json and a table in BENCHMARKS.md (not with --smoke, which checks the harness
in CI and writes bench/results/smoke.json, nor for an --out outside bench/results/).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.preload import preload  # noqa: E402
from bench.staff import StaffAtWork, plan  # noqa: E402
from shared.auth.dev import DevCredentials  # noqa: E402
from shared.kafka_admin import ensure_topics  # noqa: E402
from shared.policy import load_packs  # noqa: E402
from shared.topics import Topics, all_topic_partitions  # noqa: E402

SERVICES = ("intake", "routing", "sla", "notify", "reporting")
REGISTRY = load_packs(REPO / "policy-packs")
RESULTS = REPO / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "p999": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(ordered[-1], 2),
    }


def rss(process: psutil.Process) -> int:
    """Resident memory of the process and its children."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


@dataclass
class Sampler:
    """CPU seconds and peak RSS of each process, sampled while the run lasts."""

    processes: dict[str, psutil.Process]
    peak_rss: dict[str, int] = field(default_factory=dict)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)

    def _cpu(self, process: psutil.Process) -> float:
        """The process's CPU time and its children's, living and ended (PostgreSQL's
        backends come and go)."""
        try:
            own = process.cpu_times()
        except psutil.Error:
            return 0.0
        total = own.user + own.system + own.children_user + own.children_system
        for child in process.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def start(self) -> None:
        self.cpu_start = {n: self._cpu(p) for n, p in self.processes.items()}

    def sample(self) -> None:
        for name, process in self.processes.items():
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss(process))

    def stop(self) -> None:
        self.cpu_end = {n: self._cpu(p) for n, p in self.processes.items()}

    def report(self, seconds: float) -> dict[str, Any]:
        return {
            name: {
                "cpu_seconds": round(self.cpu_end.get(name, 0) - self.cpu_start.get(name, 0), 2),
                "cpu_share": round(
                    (self.cpu_end.get(name, 0) - self.cpu_start.get(name, 0)) / seconds, 3
                ),
                "peak_rss_mb": round(self.peak_rss.get(name, 0) / 2**20, 1),
            }
            for name in self.processes
        }


class Platform:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.popen: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None, nice: int = 0
    ) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.popen[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )

    def services(self) -> dict[str, int]:
        """Every service instance's process id, by instance name (``routing-2``)."""
        return {
            name: process.pid
            for name, process in self.popen.items()
            if name.split("-")[0] in SERVICES
        }

    def stop(self) -> None:
        for process in self.popen.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.popen.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_http(url: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                await client.get(url, timeout=1.0)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} did not answer")


def start_profiles(
    processes: dict[str, int], seconds: float, out: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy on every service for the loaded part of the run, as collapsed stacks."""
    out.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "50",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in processes.items()
    ]


def hottest(collapsed: Path, top: int = 12) -> list[tuple[str, float]]:
    """The functions a service spends its samples in, innermost frame, as shares."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frame = stack.split(";")[-1]
        own[frame] = own.get(frame, 0) + int(count)
        total += int(count)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:top]
    return [(frame, round(count / max(total, 1), 3)) for frame, count in ranked]


def listening_on(port: int) -> psutil.Process | None:
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return psutil.Process(connection.pid) if connection.pid else None
    return None


def infrastructure(kafka: str, database_url: str) -> dict[str, psutil.Process]:
    """The broker and PostgreSQL (with its backends), when they run on this machine: their
    share of the cores is part of what one complaint costs."""
    found = {
        "kafka broker": listening_on(int(kafka.rsplit(":", 1)[1])),
        "postgresql": listening_on(urlsplit(database_url).port or 5432),
    }
    return {name: process for name, process in found.items() if process is not None}


@dataclass
class Load:
    http_latency_ms: list[float] = field(default_factory=list)
    http_errors: int = 0
    keys: list[str] = field(default_factory=list)
    kafka_sent: int = 0
    http_sent: int = 0


async def drive(
    args: argparse.Namespace,
    intake_urls: list[str],
    topics: Topics,
    bootstrap: str,
    staff: StaffAtWork,
) -> tuple[Load, float]:
    """Branches submitting for ``args.seconds`` at ``args.rate`` complaints a second, and
    staff working a share of what they submit over HTTP (bench/staff.py)."""
    load = Load()
    packs = [REGISTRY.packs[name] for name in sorted(REGISTRY.packs)]
    run_id = datetime.now(UTC).strftime("%y%m%d%H%M%S")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    started = time.monotonic()
    end = started + args.seconds
    per_branch = args.rate / args.branches

    async def branch(index: int) -> None:
        rng = random.Random(index)
        pack = packs[index % len(packs)]
        intake_url = intake_urls[index % len(intake_urls)]
        async with httpx.AsyncClient(
            base_url=intake_url, timeout=30, headers=api_headers()
        ) as client:
            next_at = time.monotonic() + rng.random() / per_branch
            for seq in itertools.count(index * 1_000_000):
                if next_at >= end:
                    break
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1 / per_branch
                planned = plan(pack, rng, seq, run_id)
                key = str(uuid.uuid4())
                load.keys.append(key)
                if rng.random() < args.kafka_share:
                    message = {**planned.body, "submission_id": key}
                    await producer.send(
                        topics.submitted.name,
                        json.dumps(message).encode(),
                        key=planned.branch_id.encode(),
                    )
                    load.kafka_sent += 1
                    continue
                sent = time.perf_counter()
                try:
                    answer = await client.post(
                        "/v1/complaints", json=planned.body, headers={"Idempotency-Key": key}
                    )
                    ok = answer.status_code == 201
                except httpx.HTTPError:
                    ok = False
                load.http_latency_ms.append((time.perf_counter() - sent) * 1000)
                load.http_sent += 1
                load.http_errors += 0 if ok else 1
                if ok:
                    staff.accepted(answer.json()["complaint_no"], planned)

    await asyncio.gather(*(branch(i) for i in range(args.branches)))
    await producer.stop()
    await staff.stop()
    return load, time.monotonic() - started


# Every stage is looked up from the run's complaints by key, so the query costs the same
# however much history is preloaded (scanning it took longer than the drain at 10^4).
PROCESSED = """
WITH first_assigned AS (
    -- routing's first decision: the assignment row shows the latest, after staff have
    -- reassigned or escalated the case
    SELECT convert_from(key, 'UTF8') AS complaint_no, min(created_at) AS at
    FROM routing.outbox
    WHERE created_at >= $1 AND headers ->> 'event_type' = 'ComplaintAssigned'
    GROUP BY key
)
SELECT r.complaint_no, r.received_at, first_assigned.at AS routed_at,
       -- sla has taken the complaint in: its clocks are set (some categories have none)
       (SELECT p.processed_at FROM sla.processed_events p
        WHERE p.event_id = r.received_event) AS clocked_at,
       (SELECT min(n.sent_at) FROM notify.notifications n
        WHERE n.complaint_no = r.complaint_no AND n.template = 'acknowledgement'
          AND n.status IN ('sent', 'delivered')) AS acknowledged_at,
       (SELECT p.processed_at FROM reporting.processed_events p
        WHERE p.event_id = r.received_event) AS visible_at
FROM (
    SELECT c.complaint_no, c.received_at,
           (SELECT h.event_id FROM intake.case_history h
            WHERE h.complaint_no = c.complaint_no AND h.sequence = 1) AS received_event
    FROM intake.complaints c WHERE c.received_at >= $1
    OFFSET 0  -- keeps the lookup per complaint, not a scan of the whole history
) r
LEFT JOIN first_assigned USING (complaint_no)
"""


async def measure(database_url: str, since: datetime) -> list[asyncpg.Record]:
    """The run's complaints (not preloaded ones) and when each reached each stage."""
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(PROCESSED, since))
    finally:
        await conn.close()


async def unfinished(
    database_url: str, keys: list[str], rows: list[asyncpg.Record], shown: int = 10
) -> dict[str, list[str]]:
    """The first few submissions intake never accepted and complaints that stopped short."""
    conn = await asyncpg.connect(database_url)
    try:
        known = {
            r["submission_id"]
            for r in await conn.fetch(
                "SELECT submission_id FROM intake.submissions WHERE submission_id = ANY($1)", keys
            )
        }
    finally:
        await conn.close()
    found = {"not_accepted": [k for k in keys if k not in known][:shown]}
    for stage in ("routed", "clocked", "acknowledged", "visible"):
        found[f"not_{stage}"] = [r["complaint_no"] for r in rows if r[f"{stage}_at"] is None][
            :shown
        ]
    return found


def complete(row: asyncpg.Record) -> bool:
    return all(
        row[k] is not None for k in ("routed_at", "clocked_at", "acknowledged_at", "visible_at")
    )


async def rows_inserted(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        total: int = await conn.fetchval(
            """SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables
               WHERE schemaname IN ('intake', 'routing', 'sla', 'notify', 'reporting')"""
        )
    finally:
        await conn.close()
    return total


async def notifications(database_url: str, since: datetime) -> dict[str, Any]:
    """Where notify's messages stand, and how long they waited to be taken and to go."""
    conn = await asyncpg.connect(database_url)
    try:
        by_status = await conn.fetch(
            """SELECT channel, status, count(*) AS n FROM notify.notifications
               WHERE created_at >= $1 GROUP BY 1, 2""",
            since,
        )
        waits = await conn.fetch(
            """SELECT extract(epoch FROM first_attempt_at - created_at) * 1000 AS queued_ms,
                      extract(epoch FROM sent_at - first_attempt_at) * 1000 AS sending_ms
               FROM notify.notifications WHERE sent_at IS NOT NULL AND created_at >= $1""",
            since,
        )
    finally:
        await conn.close()
    return {
        "by_channel_and_status": {f"{r['channel']}/{r['status']}": r["n"] for r in by_status},
        "queued_ms": percentiles([float(r["queued_ms"]) for r in waits]),
        "sending_ms": percentiles([float(r["sending_ms"]) for r in waits]),
    }


async def timer_lateness(database_url: str, since: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT extract(epoch FROM fired_at - due_at) * 1000 AS late_ms FROM sla.timers
               WHERE fired_at IS NOT NULL AND fired_at >= due_at AND due_at >= $1""",
            since,
        )
    finally:
        await conn.close()
    return percentiles([float(r["late_ms"]) for r in rows])


# --- Baselines ---------------------------------------------------------------------------


def kafka_perf(bootstrap: str, topic: str, records: int) -> dict[str, Any]:
    """Kafka's own tools from the broker's jars: 1 KB records, acks=all, on ``topic``
    (created beforehand: the broker does not create topics on first use)."""
    java = ["java", "-Xmx512M", "-cp", str(REPO / ".local" / "kafka" / "lib" / "*")]
    produced = subprocess.run(
        [
            *java,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            "1024",
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            "acks=all",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    consumed = subprocess.run(
        [
            *java,
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            str(records),
            "--timeout",
            "60000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    produce_rate = re.findall(r"([\d.]+) records/sec", produced)
    consume_line = [line for line in consumed.splitlines() if line and line[0].isdigit()]
    consume_rate = float(consume_line[-1].split(",")[5]) if consume_line else None
    return {
        "records": records,
        "produce_records_per_second": float(produce_rate[-1]) if produce_rate else None,
        "consume_records_per_second": consume_rate,
    }


async def aiokafka_loop(bootstrap: str, records: int) -> dict[str, Any]:
    """A raw consume → produce loop: the least a Python consumer service does per event."""
    source, sink = f"bench-src-{uuid.uuid4().hex[:8]}", f"bench-dst-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {source: 6, sink: 6})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    payload = b"x" * 1024
    for i in range(records):
        await producer.send(source, payload, key=str(i).encode())
    await producer.flush()
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    moved = 0
    started = time.monotonic()
    try:
        while moved < records:
            batches = await consumer.getmany(timeout_ms=1000)
            for partition_records in batches.values():
                for record in partition_records:
                    await producer.send(sink, record.value, key=record.key)
                    moved += 1
            await consumer.commit()
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return {"records": records, "records_per_second": round(records / (time.monotonic() - started))}


async def asyncpg_writes(
    database_url: str, rows_per_tx: float, transactions: int
) -> dict[str, Any]:
    """Raw asyncpg: as many ~300-byte rows per transaction as one complaint causes."""
    conn = await asyncpg.connect(database_url)
    rows = max(1, round(rows_per_tx))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_rows (id bigserial PRIMARY KEY, body text)"
        )
        body = "x" * 300
        started = time.monotonic()
        for _ in range(transactions):
            async with conn.transaction():
                for _ in range(rows):
                    await conn.execute("INSERT INTO bench_rows (body) VALUES ($1)", body)
        seconds = time.monotonic() - started
        await conn.execute("DROP TABLE bench_rows")
    finally:
        await conn.close()
    return {
        "rows_per_transaction": rows,
        "transactions_per_second": round(transactions / seconds, 1),
    }


# --- The run -----------------------------------------------------------------------------


def stack_env() -> dict[str, str]:
    devstack = [sys.executable, "deploy/local/devstack.py"]
    subprocess.run([*devstack, "up", "--stack", "test"], cwd=REPO, check=True)
    out = subprocess.run(
        [*devstack, "env", "--stack", "test"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def use_stack(args: argparse.Namespace) -> None:
    """``--kafka`` and ``--database-url`` from the test devstack (started if need be) when
    not given."""
    if args.kafka is None or args.database_url is None:
        found = stack_env()
        args.kafka = args.kafka or found["KAFKA_BOOTSTRAP_SERVERS"]
        args.database_url = args.database_url or found["DATABASE_URL"]


async def fresh_database(admin: asyncpg.Connection, base_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def service_env(kafka: str, database_url: str, namespace: str) -> dict[str, str]:
    """What every service process of a benchmark runs with."""
    return {
        **os.environ,
        **DevCredentials.from_environment().service_env(),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": database_url,
        "COMPLAINTS_TOPIC_NAMESPACE": namespace,
        # Several instances of a service run side by side: ops endpoints on free ports.
        "OPS_PORT": "0",
    }


def api_headers() -> dict[str, str]:
    """What the benchmark's clients send: an administrator's token, valid for every
    branch the load spreads over."""
    return DevCredentials.from_environment().staff_headers("admin", reason="benchmark")


def platform_env(
    kafka: str, database_url: str, namespace: str, smtp_port: int, sms_port: int
) -> dict[str, str]:
    """The services' environment for a load run, with the fake SMTP and SMS servers."""
    return {
        **service_env(kafka, database_url, namespace),
        "SMTP_PORT": str(smtp_port),
        "SMS_GATEWAY_URL": f"http://127.0.0.1:{sms_port}/gateway/send",
        "WEBHOOK_BASE_URL": f"http://127.0.0.1:{sms_port}/webhooks",
        # The load is many complaints from few branches: far more than any one branch sends.
        "INTAKE_BRANCH_SUBMISSIONS_PER_MINUTE": "0",
        "RATE_LIMIT_EMAIL": "100000",
        "RATE_LIMIT_SMS": "100000",
        "RATE_LIMIT_WEBHOOK": "100000",
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    use_stack(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    admin = await asyncpg.connect(args.database_url)
    database_url = await fresh_database(admin, args.database_url, "bench")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    topics = Topics.in_namespace(namespace)
    await ensure_topics(args.kafka, all_topic_partitions(namespace))
    preloaded = (
        await preload(database_url, args.preload, namespace=namespace) if args.preload else None
    )
    rows_before = await rows_inserted(database_url) if args.preload else 0
    log_dir = REPO / ".local" / "bench" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    smtp_port, sms_port = free_port(), free_port()
    intake_ports = [free_port() for _ in range(args.scale.get("intake", 1))]
    reporting_ports = [free_port() for _ in range(args.scale.get("reporting", 1))]
    env = platform_env(args.kafka, database_url, namespace, smtp_port, sms_port)
    platform_ = Platform(env, log_dir)
    platform_.start(
        "smtp",
        "deploy/local/smtp_sink.py",
        "--dir",
        str(log_dir / "mail"),
        "--port",
        str(smtp_port),
    )
    platform_.start(
        "sms", "deploy/local/sms_sink.py", "--dir", str(log_dir / "sms"), "--port", str(sms_port)
    )
    ports = {
        "intake": ("INTAKE_PORT", intake_ports),
        "reporting": ("REPORTING_PORT", reporting_ports),
    }
    for service in SERVICES:
        for n in range(args.scale.get(service, 1)):
            own = {ports[service][0]: str(ports[service][1][n])} if service in ports else {}
            instance = service if n == 0 else f"{service}-{n + 1}"
            platform_.start(
                instance, "-m", f"services.{service}", env=own, nice=args.nice.get(service, 0)
            )
    result: dict[str, Any] = {}
    try:
        for port in intake_ports + reporting_ports:
            await wait_http(f"http://127.0.0.1:{port}/openapi.json")
        await asyncio.sleep(3)  # consumers join their groups
        sampler = Sampler(
            {
                **{name: psutil.Process(pid) for name, pid in platform_.services().items()},
                **{
                    f"fake {name}": psutil.Process(platform_.popen[name].pid)
                    for name in ("smtp", "sms")
                },
                **infrastructure(args.kafka, args.database_url),
            }
        )
        sampler.start()
        since = datetime.now(UTC)
        sampling = True

        async def sample() -> None:
            while sampling:
                sampler.sample()
                await asyncio.sleep(0.5)

        sampler_task = asyncio.create_task(sample())
        profiling = (
            start_profiles(
                platform_.services(),
                args.seconds,
                log_dir / "profiles",
            )
            if args.profile
            else []
        )
        intake_urls = [f"http://127.0.0.1:{port}" for port in intake_ports]
        async with StaffAtWork(
            REGISTRY, intake_urls[0], namespace, share=args.staff_share, seed=0
        ) as staff:
            load, seconds = await drive(args, intake_urls, topics, args.kafka, staff)
        for profiler in profiling:
            await asyncio.to_thread(profiler.wait)
        submitted = load.http_sent + load.kafka_sent
        drain_started = time.monotonic()
        drain_deadline = drain_started + args.drain
        while True:
            rows = await measure(database_url, since)
            finished = len(rows) >= submitted - load.http_errors and all(map(complete, rows))
            if finished or time.monotonic() >= drain_deadline:
                break
            await asyncio.sleep(1)
        drained_in = round(time.monotonic() - drain_started, 1)
        sampler.stop()
        sampling = False
        await sampler_task
        done = [r for r in rows if complete(r)]
        first = min((r["received_at"] for r in rows), default=None)
        last = max(
            (max(r["routed_at"], r["acknowledged_at"], r["visible_at"]) for r in done), default=None
        )
        span = (last - first).total_seconds() if first and last else seconds

        def ms(a: str, b: str) -> list[float]:
            return [(r[b] - r[a]).total_seconds() * 1000 for r in done]

        per_complaint_rows = round(
            (await rows_inserted(database_url) - rows_before) / max(len(rows), 1), 1
        )
        result = {
            "when": stamp,
            "command": " ".join(["python", *sys.argv]),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "platform": platform.platform(),
                "python": platform.python_version(),
                # Other work on the machine skews every figure; this says how much there was.
                "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            },
            "load": {
                "target_rate": args.rate,
                "seconds": round(seconds, 1),
                "branches": args.branches,
                "instances": {service: args.scale.get(service, 1) for service in SERVICES},
                "nice": args.nice,
                "submitted_http": load.http_sent,
                "submitted_kafka": load.kafka_sent,
                "http_errors": load.http_errors,
            },
            "preloaded": preloaded,
            "accepted": len(rows),
            "fully_processed": len(done),
            "missing_at_end": {
                stage: sum(1 for r in rows if r[f"{stage}_at"] is None)
                for stage in ("routed", "clocked", "acknowledged", "visible")
            },
            # Named, so that a shortfall can be followed up in the kept database (--keep).
            "unfinished": await unfinished(database_url, load.keys, rows),
            "drained_in_seconds": drained_in,
            "throughput_per_second": round(len(done) / span, 1) if span else None,
            "staff": {
                **staff.report(),
                "latency_ms": {k: percentiles(v) for k, v in sorted(staff.latency_ms.items())},
            },
            "latency_ms": {
                "http_intake": percentiles(load.http_latency_ms),
                "accept_to_routed": percentiles(ms("received_at", "routed_at")),
                "accept_to_visible_in_reporting": percentiles(ms("received_at", "visible_at")),
                "accept_to_acknowledgement_sent": percentiles(ms("received_at", "acknowledged_at")),
            },
            "sla_timer_lateness_ms": await timer_lateness(database_url, since),
            "notifications": await notifications(database_url, since),
            "rows_written_per_complaint": per_complaint_rows,
            "processes": sampler.report(span),
            "cpu_ms_per_complaint": {
                name: round(p["cpu_seconds"] * 1000 / max(len(rows), 1), 2)
                for name, p in sampler.report(span).items()
            },
        }
        if args.profile:
            result["profiles"] = {
                name: {
                    "collapsed_stacks": str(log_dir / "profiles" / f"{name}.txt"),
                    "hottest": hottest(log_dir / "profiles" / f"{name}.txt"),
                }
                for name in platform_.services()
                if (log_dir / "profiles" / f"{name}.txt").exists()
            }
    finally:
        platform_.stop()
    records = 2000 if args.smoke else 200_000
    perf_topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    await ensure_topics(args.kafka, {perf_topic: 6})
    result["baselines"] = {
        "kafka_perf_tools": await asyncio.to_thread(kafka_perf, args.kafka, perf_topic, records),
        "aiokafka_consume_produce": await aiokafka_loop(args.kafka, records // 10),
        "asyncpg_one_complaints_writes": await asyncpg_writes(
            database_url, result.get("rows_written_per_complaint", 20), 200 if args.smoke else 2000
        ),
    }
    base = result["baselines"]
    if result.get("throughput_per_second"):
        result["ratios"] = {
            "throughput_to_asyncpg_complaint_writes": round(
                result["throughput_per_second"]
                / base["asyncpg_one_complaints_writes"]["transactions_per_second"],
                3,
            ),
            "throughput_to_aiokafka_loop": round(
                result["throughput_per_second"]
                / base["aiokafka_consume_produce"]["records_per_second"],
                4,
            ),
        }
    if args.keep:
        result["kept"] = {"database_url": database_url, "topic_namespace": namespace}
    else:
        await admin.execute(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await admin.close()
    return result


def markdown(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    rows = [
        ("complaints/s fully processed", result["throughput_per_second"]),
        (
            "complaints preloaded before the run",
            (result.get("preloaded") or {}).get("complaints", 0),
        ),
        ("accepted / fully processed", f"{result['accepted']} / {result['fully_processed']}"),
        *(
            (
                f"{name} p50 / p95 / p99 / p99.9 ms",
                " / ".join(str(lat[name][k]) for k in ("p50", "p95", "p99", "p999")),
            )
            for name in lat
        ),
        ("SLA timer lateness p99 ms", result["sla_timer_lateness_ms"]["p99"]),
        (
            "staff: cases worked / actions / feedback / refused (409) / errors",
            " / ".join(
                str(n)
                for n in (
                    result["staff"]["cases_worked"],
                    sum(result["staff"]["actions"].values()),
                    sum(result["staff"]["feedback"].values()),
                    result["staff"]["refused_not_now_409"],
                    result["staff"]["errors"],
                )
            ),
        ),
        *(
            (f"staff {kind} p50 / p99 ms", f"{q['p50']} / {q['p99']}")
            for kind, q in result["staff"]["latency_ms"].items()
        ),
        *(
            (f"{name}: CPU share / peak RSS MB", f"{p['cpu_share']} / {p['peak_rss_mb']}")
            for name, p in result["processes"].items()
        ),
        (
            "baseline: Kafka producer records/s (1 KB, acks=all)",
            result["baselines"]["kafka_perf_tools"]["produce_records_per_second"],
        ),
        (
            "baseline: Kafka consumer records/s",
            result["baselines"]["kafka_perf_tools"]["consume_records_per_second"],
        ),
        (
            "baseline: aiokafka consume→produce records/s",
            result["baselines"]["aiokafka_consume_produce"]["records_per_second"],
        ),
        (
            "baseline: asyncpg transactions/s of one complaint's rows",
            result["baselines"]["asyncpg_one_complaints_writes"]["transactions_per_second"],
        ),
        *((f"ratio: {k}", v) for k, v in result.get("ratios", {}).items()),
    ]
    load = result["load"]
    lines = [
        f"## {result['when']}: {load['target_rate']}/s target for {load['seconds']} s, "
        f"{load['branches']} branches, instances {load.get('instances')}"
        + (f", niceness {load['nice']}" if load.get("nice") else ""),
        "",
        f"Machine: {result['machine']}. Command: `{result['command']}`.",
        "",
        "| measure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
    ]
    return "\n".join(lines)


def per_service(low: int) -> Callable[[str], dict[str, int]]:
    """Parses "routing=2,notify=3" into {"routing": 2, "notify": 3}, each number ≥ ``low``."""

    def parse(text: str) -> dict[str, int]:
        counts = {}
        for part in filter(None, text.split(",")):
            service, _, count = part.partition("=")
            if service not in SERVICES or not count.isdigit() or int(count) < low:
                raise argparse.ArgumentTypeError(f"not service=number (≥ {low}): {part!r}")
            counts[service] = int(count)
        return counts

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=200, help="target complaints a second")
    parser.add_argument("--branches", type=int, default=20)
    parser.add_argument("--kafka-share", type=float, default=0.3)
    parser.add_argument(
        "--staff-share",
        type=float,
        default=0.25,
        help="share of the complaints submitted over HTTP that staff and customers work",
    )
    parser.add_argument("--drain", type=float, default=120, help="seconds to wait for the tail")
    parser.add_argument("--kafka")
    parser.add_argument("--database-url")
    parser.add_argument(
        "--scale",
        type=per_service(1),
        default={},
        help='instances per service, e.g. "routing=2,notify=2" (default one each)',
    )
    parser.add_argument(
        "--nice",
        type=per_service(0),
        default={},
        help='niceness per service, e.g. "notify=10": how the run shares the cores when the '
        "services cannot each have their own",
    )
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        help="complaints' worth of history in every schema before the run (bench/preload.py)",
    )
    parser.add_argument("--out", type=Path, help="where the JSON goes (default bench/results/)")
    parser.add_argument("--smoke", action="store_true", help="a short check of the harness")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's database and topics to look into"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy every service while the load runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rate, args.branches, args.drain = 10, 10, 4, 60
    result = asyncio.run(run(args))
    out = args.out or RESULTS / ("smoke.json" if args.smoke else f"{result['when']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    # Runs kept elsewhere (trials, investigations) stay out of the record.
    if not args.smoke and out.resolve().is_relative_to(RESULTS):
        with (REPO / "BENCHMARKS.md").open("a", encoding="utf-8") as record:
            record.write(markdown(result) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
