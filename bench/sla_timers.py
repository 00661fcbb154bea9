"""How late sla's durable timers fire when many fall due in the same instant.

For each instance count: a fresh database and topic namespace on the test stack, that
many `python -m services.sla` processes, then N running clocks with one warning timer
each, all due at the same instant a few seconds ahead (written straight into sla's
tables, as tests/integration/test_sla.py does). Once every timer has fired and the relay
has published every event, it reads sla's schema for:

- lateness: fired_at - due_at of each timer (the database's clock on both sides);
- publish lateness: published_at - due_at of each ClockWarning in the outbox (the relay
  has handed it to Kafka, acks=all), and of the last one;
- exactly once: one ClockWarning per clock, no more;
- CPU seconds of the sla processes and of the database backends serving them, from the
  due time to the last publish.

    python bench/sla_timers.py [--timers 10000] [--instances 1 2] [--lead 5]
                               [--kafka HOST:PORT --database-url DSN] [--profile]

`--profile` runs py-spy on each sla process over the same span and leaves a flame graph
per instance beside the processes' logs (.local/bench/sla-timers-<stamp>/).
Results: bench/results/sla-timers-<UTC time>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import Platform, percentiles, service_env, use_stack  # noqa: E402
from shared.kafka_admin import ensure_topics  # noqa: E402
from shared.topics import all_topic_partitions  # noqa: E402

RESULTS = REPO / "bench" / "results"
PY_SPY = Path(sys.executable).parent / "py-spy"


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def insert_due_timers(conn: asyncpg.Connection, count: int, lead: float) -> datetime:
    """``count`` running clocks, one warning timer each, all due ``lead`` seconds from now
    by the database's clock; returns that instant."""
    due_at: datetime = await conn.fetchval(
        "SELECT date_trunc('second', now()) + make_interval(secs => $1)", lead
    )
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO sla.cases (complaint_no, branch_id, pack, category, customer_type,
                   severity, region, correlation_id)
               SELECT '2611' || lpad(n::text, 7, '0'), 'hotel-demo', 'hotel', 'facilities',
                      'member', 'normal', 'domestic', '2611' || lpad(n::text, 7, '0')
               FROM generate_series(1, $1) AS n""",
            count,
        )
        await conn.execute(
            """INSERT INTO sla.clocks (clock_id, complaint_no, branch_id, name, rule, state,
                   started_at, due_at, target_seconds, pack, pack_version)
               SELECT md5('clock/' || n)::uuid, '2611' || lpad(n::text, 7, '0'), 'hotel-demo',
                      'resolution', 'bench', 'running', $2::timestamptz - interval '1 hour',
                      $2::timestamptz + interval '1 hour', 7200, 'hotel', 'bench'
               FROM generate_series(1, $1) AS n""",
            count,
            due_at,
        )
        await conn.execute(
            """INSERT INTO sla.timers (timer_id, clock_id, complaint_no, kind, fraction, due_at)
               SELECT md5('timer/' || n)::uuid, md5('clock/' || n)::uuid,
                      '2611' || lpad(n::text, 7, '0'), 'warning', 0.5, $2
               FROM generate_series(1, $1) AS n""",
            count,
            due_at,
        )
    return due_at


async def database_backends(conn: asyncpg.Connection) -> list[psutil.Process]:
    """The PostgreSQL backends serving this database: the instances' pools and active
    relay (open for the whole run) and this bench's own connection."""
    backends = []
    for row in await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    ):
        # A standby relay reconnects every second: its backend may be gone already.
        with contextlib.suppress(psutil.NoSuchProcess):
            backends.append(psutil.Process(row["pid"]))
    return backends


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU of the processes and their children; one that has exited
    meanwhile counts nothing."""
    total = 0.0
    for process in processes:
        try:
            for p in [process, *process.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


async def one_run(
    args: argparse.Namespace, instances: int, log_dir: Path, admin: asyncpg.Connection
) -> dict[str, Any]:
    name = f"bench_sla_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(args.kafka, all_topic_partitions(namespace))
    run_dir = log_dir / f"{instances}-instances"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(args.kafka, database_url, namespace)
    processes = Platform(env, run_dir)
    for i in range(instances):
        processes.start(f"sla-{i + 1}", "-m", "services.sla")
    spies: list[asyncio.subprocess.Process] = []
    conn = await asyncpg.connect(database_url)
    try:
        watched = [psutil.Process(p.pid) for p in processes.popen.values()]

        async def timer_loops_running() -> bool:
            # A timer loop polls on the service's pool, whose connections carry its name;
            # the relay's does not. Matching ports tells the instances apart.
            pooled = {
                row["client_port"]
                for row in await conn.fetch(
                    """SELECT client_port FROM pg_stat_activity
                       WHERE datname = current_database()
                         AND application_name = 'complaints-sla'"""
                )
            }
            return all(
                any(c.laddr.port in pooled for c in process.net_connections("tcp"))
                for process in watched
            )

        await until(timer_loops_running, 90, "the sla instances did not start")
        # The timer loops start before the Kafka consumers, whose group join takes a few
        # seconds of its own: let it settle so that it does not compete with the timers.
        await asyncio.sleep(3.0)
        if args.profile:
            spies = [
                await asyncio.create_subprocess_exec(
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(p.pid),
                    "--rate",
                    "200",
                    "--output",
                    str(run_dir / f"{process}.svg"),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for process, p in processes.popen.items()
            ]
        load = os.getloadavg()[0]  # the machine is shared: other work skews every figure
        due_at = await insert_due_timers(conn, args.timers, args.lead)
        # CPU counts from just before the due time: the instances idle until then.
        await asyncio.sleep(
            await conn.fetchval("SELECT extract(epoch FROM $1 - now())::float8 - 0.05", due_at)
        )
        backends = await database_backends(conn)
        cpu_before, db_cpu_before = cpu_seconds(watched), cpu_seconds(backends)

        async def all_published() -> bool:
            fired, unpublished = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM sla.timers WHERE fired_at IS NOT NULL),
                          (SELECT count(*) FROM sla.outbox WHERE published_at IS NULL)"""
            )
            return bool(fired == args.timers and unpublished == 0)

        await until(all_published, args.lead + 120, "the timers did not all fire and publish")
        cpu = cpu_seconds(watched) - cpu_before
        db_cpu = cpu_seconds(backends) - db_cpu_before
        fired_ms = [
            float(r[0])
            for r in await conn.fetch(
                "SELECT extract(epoch FROM fired_at - due_at) * 1000 FROM sla.timers"
            )
        ]
        published = await conn.fetchrow(
            """SELECT count(*) AS events,
                      count(DISTINCT convert_from(payload, 'UTF8')::jsonb->>'clock_id') AS clocks,
                      array_agg(extract(epoch FROM published_at - $1) * 1000) AS late_ms
               FROM sla.outbox WHERE headers->>'event_type' = 'ClockWarning'""",
            due_at,
        )
        published_ms = [float(v) for v in published["late_ms"]]
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its flame graph on SIGINT
            await asyncio.wait_for(spy.wait(), 60)
        processes.stop()
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return {
        "instances": instances,
        "timers": args.timers,
        "load_average_1m": round(load, 2),
        "fired_lateness_ms": percentiles(fired_ms),
        "fired_early": sum(1 for ms in fired_ms if ms < 0),
        "first_fired_ms": round(min(fired_ms), 2),
        "published_lateness_ms": percentiles(published_ms),
        "last_published_ms": round(max(published_ms), 2),
        "exactly_once": published["events"] == published["clocks"] == args.timers,
        "sla_cpu_seconds": round(cpu, 2),
        "postgres_cpu_seconds": round(db_cpu, 2),
    }


def table(runs: list[dict[str, Any]]) -> str:
    header = (
        "instances | timers | fired p50 / p95 / p99 / max ms | first fired ms | "
        "published p50 / p99 ms | last published ms | exactly once | CPU s sla / postgres"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        fired, pub = run["fired_lateness_ms"], run["published_lateness_ms"]
        lines.append(
            f"{run['instances']} | {run['timers']} | "
            f"{fired['p50']} / {fired['p95']} / {fired['p99']} / {fired['max']} | "
            f"{run['first_fired_ms']} | {pub['p50']} / {pub['p99']} | "
            f"{run['last_published_ms']} | {run['exactly_once']} | "
            f"{run['sla_cpu_seconds']} / {run['postgres_cpu_seconds']}"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    use_stack(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = REPO / ".local" / "bench" / f"sla-timers-{stamp}"
    admin = await asyncpg.connect(args.database_url)
    try:
        runs = [await one_run(args, n, log_dir, admin) for n in args.instances]
    finally:
        await admin.close()
    result = {
        "benchmark": "sla timers falling due in the same instant",
        "when": stamp,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "lead_seconds": args.lead,
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"sla-timers-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(runs))
    if args.profile:
        print(f"flame graphs: {log_dir}")
    return 0 if all(run["exactly_once"] for run in runs) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--lead", type=float, default=5.0, help="seconds until they fall due")
    parser.add_argument("--kafka")
    parser.add_argument("--database-url")
    parser.add_argument("--profile", action="store_true", help="py-spy flame graphs")
    sys.exit(asyncio.run(main(parser.parse_args())))
