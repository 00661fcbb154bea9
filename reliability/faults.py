"""Faults injected into the real platform under steady load, then a reconciliation.

    python reliability/faults.py --scenario kill-services|broker-restart|postgres-restart|
                                            slow-consumer|rebalance-storm|all
                                 [--seconds N] [--rate R] [--out PATH] [--keep-stack]

Each run gets a fresh database and topic namespace on the `faults` devstack (Kafka
127.0.0.1:29192, PostgreSQL 127.0.0.1:25533, brought up if need be and stopped at the
end unless --keep-stack), every service as its own process (bench/run.py's Platform), the
SMTP sink and the fake SMS providers writing into the run's folder under .local/fault-runs/.
Branches submit over HTTP and Kafka at ``--rate`` a second for ``--seconds``, retrying
each submission under its key until it is taken (reliability/load.py), staff work a share
of the cases, and the scenario's faults strike meanwhile:

- kill-services: SIGKILL each service's process at random, ten times a service, each
  restarted 0.5-2 s later;
- broker-restart: the broker stopped with SIGTERM, later killed with SIGKILL, each time
  started again 5 s later;
- postgres-restart: PostgreSQL stopped in fast, later in immediate mode (a crash), each
  time started again 5 s later;
- slow-consumer: with max.poll.interval.ms lowered to 10 s (KAFKA_MAX_POLL_INTERVAL_MS)
  and two instances of every service, each service in turn is made slower than that: its
  primary process is frozen with SIGSTOP for 22 s (the broker evicts it), then, for every
  service again, its inbox table is locked for 22 s so that its handlers wait on the
  database while the process stays alive and heartbeats (aiokafka then leaves the group
  for not polling); the consumer groups' members are read from the broker before, during
  and after;
- rebalance-storm: every 3 s an extra instance of a random service is started or one
  is stopped with SIGTERM (at most two extra a service).

When the load ends and the platform has drained (no consumer lag, nothing left in any
outbox, the verdict clean twice in a row, or --drain seconds passed) reliability/
reconcile.py judges the run. The JSON goes to reliability/results/<scenario>-<UTC time>
.json (or --out; with `all`, one file per scenario beside it). Exit status 0 only when
nothing was lost or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import psutil  # type: ignore[import-untyped]
import structlog

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import REGISTRY, SERVICES, free_port, fresh_database, platform_env  # noqa: E402
from bench.staff import StaffAtWork  # noqa: E402
from reliability.cluster import (  # noqa: E402
    Cluster,
    GroupState,
    Instance,
    all_groups,
    describe_groups,
    freeze,
    lag,
    stop,
    thaw,
)
from reliability.load import LoadDriver, read_outcomes  # noqa: E402
from reliability.reconcile import Asked, Sources, Verdict, observe, verdict  # noqa: E402
from reliability.stack import FaultsStack, ShutdownMode  # noqa: E402
from shared.kafka_admin import ensure_topics  # noqa: E402
from shared.topics import Topics, all_topic_partitions, service_groups  # noqa: E402

log = structlog.get_logger("faults")

RESULTS = REPO / "reliability" / "results"
LOGS = REPO / ".local" / "fault-runs"  # beside, not in, the stack's own .local/faults
SETTLE_POLL_S = 3.0
SLOW_POLL_INTERVAL_MS = 10_000
DIED = "died on its own, restarted"
NOT_INJECTED = frozenset({DIED, "harness error"})


# --------------------------------------------------------------------------- one run


@dataclass
class RunConfig:
    scenario: str
    seconds: float
    rate: float
    kafka_share: float = 0.3
    staff_share: float = 0.1
    retry_for: float = 90.0
    drain: float = 240.0
    seed: int = 0


@dataclass
class Run:
    """One scenario's platform, and the log of what was done to it."""

    stack: FaultsStack
    cluster: Cluster
    sources: Sources
    topics: Topics
    rng: random.Random
    load_started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    observations: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.load_started

    async def sleep_until(self, offset: float) -> None:
        await asyncio.sleep(max(0.0, offset - self.elapsed))

    def note(self, fault: str, **details: Any) -> None:
        event = {"t": round(self.elapsed, 1), "fault": fault, **details}
        self.events.append(event)
        print(json.dumps(event, default=str), file=sys.stderr, flush=True)


class Fault(Protocol):
    async def inject(self, run: Run, window: float) -> None: ...


def fault_env(
    bootstrap: str, database_url: str, namespace: str, smtp_port: int, sms_port: int
) -> dict[str, str]:
    return {
        **platform_env(bootstrap, database_url, namespace, smtp_port, sms_port),
        # A killed notify's sends are reconciled after the lease: 20 s instead of 60 keeps
        # the drain short (it still exceeds every provider timeout, 10 s).
        "LEASE_SECONDS": "20",
        "RECONCILE_AFTER_SECONDS": "2",
    }


@asynccontextmanager
async def running_platform(
    stack: FaultsStack, config: RunConfig, extra_env: dict[str, str]
) -> AsyncIterator[Run]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    admin = await asyncpg.connect(stack.database_url)
    database_url = await fresh_database(admin, stack.database_url, "faults")
    namespace = f"faults-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, all_topic_partitions(namespace))
    log_dir = LOGS / f"{stamp}-{config.scenario}"
    log_dir.mkdir(parents=True, exist_ok=True)
    smtp_port, sms_port = free_port(), free_port()
    env = fault_env(stack.bootstrap, database_url, namespace, smtp_port, sms_port)
    cluster = Cluster({**env, **extra_env}, log_dir)
    cluster.start_sink("smtp", "deploy/local/smtp_sink.py", log_dir / "mail", smtp_port)
    cluster.start_sink("sms", "deploy/local/sms_sink.py", log_dir / "sms", sms_port)
    try:
        await cluster.start_primaries()
        sources = Sources(
            database_url=database_url,
            bootstrap=stack.bootstrap,
            namespace=namespace,
            mail_dir=log_dir / "mail",
            sms_dir=log_dir / "sms",
            reporting_url=cluster.url("reporting"),
        )
        yield Run(
            stack, cluster, sources, Topics.in_namespace(namespace), random.Random(config.seed)
        )
    finally:
        cluster.stop_all()
        await admin.close()


async def run_scenario(
    stack: FaultsStack,
    config: RunConfig,
    faults: list[Fault],
    *,
    env: dict[str, str],
    extras: int = 0,
) -> dict[str, Any]:
    """The whole run: platform up, load and faults, drain, reconciliation, platform down."""
    async with running_platform(stack, config, env) as run:
        for service in SERVICES:
            for _ in range(extras):
                await run.cluster.add_extra(service)
        await asyncio.sleep(3)  # consumers join their groups
        driver = await load_under_faults(run, config, faults)
        final, seen_drain = await drain(run, driver, config.drain)
        exits = exit_statuses(run.cluster)
    result = {
        "scenario": config.scenario,
        "config": vars(config),
        "machine": machine(),
        "load": driver.report(),
        "faults": {"events": run.events},
        "observations": run.observations,
        "drained_in_seconds": seen_drain,
        "verdict": final.as_dict(),
        "exit_statuses_at_the_end": exits,
        "logs": str(run.cluster.log_dir),
        "log_errors": log_errors(run.cluster.log_dir),
        "database_url": run.sources.database_url,
        "topic_namespace": run.sources.namespace,
    }
    result["figures"] = figures(result)
    return result


async def load_under_faults(run: Run, config: RunConfig, faults: list[Fault]) -> LoadDriver:
    intake_url = run.cluster.url("intake")
    async with StaffAtWork(
        REGISTRY, intake_url, run.sources.namespace, share=config.staff_share, seed=config.seed
    ) as staff:
        driver = LoadDriver(
            REGISTRY,
            intake_url,
            run.sources.bootstrap,
            run.topics,
            rate=config.rate,
            kafka_share=config.kafka_share,
            run_id=f"{config.scenario[:4]}{uuid.uuid4().hex[:6]}",
            seed=config.seed,
            staff=staff if config.staff_share > 0 else None,
        )
        run.load_started = time.monotonic()
        load = asyncio.create_task(driver.run(config.seconds, retry_for=config.retry_for))
        await asyncio.gather(*(guarded(fault, run, config.seconds) for fault in faults))
        revived = run.cluster.revive_dead_primaries()
        if revived:
            run.note(DIED, services=revived)
        await run.cluster.remove_all_extras()
        await load
        run.observations["staff"] = staff.report()
    return driver


async def guarded(fault: Fault, run: Run, window: float) -> None:
    """A fault that fails half-way is noted, and the run still drains and is judged."""
    try:
        await fault.inject(run, window)
    except Exception as exc:
        run.note("harness error", by=type(fault).__name__, error=repr(exc)[:500])
        run.observations.setdefault("harness_errors", []).append(repr(exc)[:500])


async def asked(driver: LoadDriver, run: Run) -> list[Asked]:
    """What each branch was told: 201s over HTTP, outcomes read back over Kafka."""
    outcomes = await read_outcomes(run.sources.bootstrap, run.topics)
    return [
        Asked(
            key=s.key,
            branch_id=s.branch_id,
            path=s.path,
            numbers=tuple(s.answered if s.path == "http" else outcomes.accepted.get(s.key, [])),
            confirmed=s.confirmed,
            rejected=s.rejected
            or ("; ".join(outcomes.rejected[s.key]) if s.key in outcomes.rejected else None),
        )
        for s in driver.submissions
    ]


UNPUBLISHED = """
SELECT (SELECT count(*) FROM intake.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM routing.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM sla.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM notify.outbox WHERE published_at IS NULL)
"""


async def unpublished(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(UNPUBLISHED))
    finally:
        await conn.close()


async def drain(run: Run, driver: LoadDriver, seconds: float) -> tuple[Verdict, float]:
    """Judge the run once it has settled: no lag, empty outboxes and a clean verdict twice
    in a row; or, after ``seconds``, as it stands (what is missing then is lost)."""
    started = time.monotonic()
    clean_in_a_row = 0
    while True:
        judged = verdict(await asked(driver, run), await observe(run.sources, REGISTRY))
        namespace = run.sources.namespace
        behind = await lag(run.sources.bootstrap, namespace, all_groups(namespace))
        waiting = await unpublished(run.sources.database_url)
        clean_in_a_row = clean_in_a_row + 1 if judged.ok and behind == 0 and waiting == 0 else 0
        if clean_in_a_row >= 2 or time.monotonic() - started > seconds:
            run.observations["at_the_end"] = {"consumer_lag": behind, "outbox_unpublished": waiting}
            return judged, round(time.monotonic() - started, 1)
        await asyncio.sleep(SETTLE_POLL_S)


def exit_statuses(cluster: Cluster) -> dict[str, int | None]:
    """How the primaries ended when stopped with SIGTERM at the end (0: a clean shutdown)."""
    cluster.stop_all()
    return {service: i.process.returncode for service, i in cluster.primary.items()}


def log_errors(log_dir: Path) -> dict[str, int]:
    """Error lines in the services' logs, by message: where to look first."""
    found: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            message = _error_message(line)
            if message is not None:
                found[f"{path.stem.split('.')[0]}: {message}"] += 1
    return dict(found.most_common(30))


def _error_message(line: str) -> str | None:
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if entry.get("level") in ("error", "critical"):
            return str(entry.get("event"))[:160]
        return None
    return line[:160] if line.startswith("Traceback") else None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The row RELIABILITY.md shows for the run."""
    judged = result["verdict"]
    events = result["faults"]["events"]
    return {
        "runs": 1,
        "faults_injected": sum(e["fault"] not in NOT_INJECTED for e in events),
        "harness_errors": sum(e["fault"] == "harness error" for e in events),
        "died_unbidden": sum(e["fault"] == DIED for e in events),
        "submitted": result["load"]["submitted"],
        "accepted": judged["accepted"],
        "messages": judged["messages"],
        "lost": judged["lost"],
        "doubled": judged["doubled"],
        "unconfirmed_emails": judged["unconfirmed_emails"],
    }


# --------------------------------------------------------------------------- the faults


@dataclass
class KillServices:
    """SIGKILL services' primary processes at random moments, each restarted shortly after."""

    services: tuple[str, ...] = SERVICES
    per_service: int = 10
    down: tuple[float, float] = (0.5, 2.0)

    async def inject(self, run: Run, window: float) -> None:
        order = [service for service in self.services for _ in range(self.per_service)]
        run.rng.shuffle(order)
        first, last = 0.05 * window, 0.85 * window
        step = (last - first) / len(order)
        for index, service in enumerate(order):
            await run.sleep_until(first + step * (index + 0.5 * run.rng.random()))
            pid, status = await run.cluster.kill_primary(service)
            down = run.rng.uniform(*self.down)
            await asyncio.sleep(down)
            restarted = run.cluster.restart_primary(service)
            run.note(
                "kill -9",
                service=service,
                pid=pid,
                exit=status,
                down_s=round(down, 2),
                restarted_pid=restarted.pid,
            )


@dataclass
class BrokerRestart:
    """Stop the broker (a clean SIGTERM, or a SIGKILL crash) and start it again."""

    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGKILL)
    down: float = 5.0

    async def inject(self, run: Run, window: float) -> None:
        for index, how in enumerate(self.signals):
            await run.sleep_until(window * (index + 1) / (len(self.signals) + 1))
            began = time.monotonic()
            pid = await asyncio.to_thread(run.stack.stop_kafka, how)
            stopped = time.monotonic()
            await asyncio.sleep(self.down)
            await asyncio.to_thread(run.stack.start_kafka)
            run.note(
                f"broker {how.name}",
                pid=pid,
                stopping_s=round(stopped - began, 1),
                unavailable_s=round(time.monotonic() - began, 1),
            )


@dataclass
class PostgresRestart:
    """Stop PostgreSQL (fast: clean; immediate: a crash, WAL replayed) and start it again."""

    modes: tuple[ShutdownMode, ...] = ("fast", "immediate")
    down: float = 5.0

    async def inject(self, run: Run, window: float) -> None:
        for index, mode in enumerate(self.modes):
            await run.sleep_until(window * (index + 1) / (len(self.modes) + 1))
            began = time.monotonic()
            pid = await asyncio.to_thread(run.stack.stop_postgres, mode)
            await asyncio.sleep(self.down)
            await asyncio.to_thread(run.stack.start_postgres)
            run.note(
                f"postgres stop -m {mode}",
                pid=pid,
                unavailable_s=round(time.monotonic() - began, 1),
            )


@dataclass
class SlowConsumer:
    """Each service in turn slower than max.poll.interval.ms: its process frozen
    (SIGSTOP), and its handlers held up on the database (the process alive and
    heartbeating)."""

    services: tuple[str, ...] = ("routing", "sla", "notify", "reporting", "intake")
    hold: float = 22.0
    settle: float = 8.0
    # Frozen first: a consumer held up past the interval can stop for good (aiokafka
    # 0.14; see RELIABILITY.md), which would leave nothing for the freezes to test.
    phases: tuple[str, ...] = ("frozen", "held up")

    async def inject(self, run: Run, window: float) -> None:
        ways = {"held up": self._held_up, "frozen": self._frozen}
        plan = [(s, ways[phase]) for phase in self.phases for s in self.services]
        step = 0.85 * window / len(plan)
        for index, (service, how) in enumerate(plan):
            await run.sleep_until(0.05 * window + index * step)
            await how(run, service)

    async def _held_up(self, run: Run, service: str) -> None:
        groups = list(service_groups(run.sources.namespace, service))
        before = await describe_groups(run.sources.bootstrap, groups)
        conn = await asyncpg.connect(run.sources.database_url)
        try:
            async with conn.transaction():
                # Every handler records its event in the inbox first: it waits here.
                await conn.execute(
                    f"LOCK TABLE {service}.processed_events IN SHARE ROW EXCLUSIVE MODE"
                )
                during = await self._wait_and_look(run, groups)
        finally:
            await conn.close()
        after = await self._settled(run, groups)
        run.note(
            "handlers slower than max.poll.interval",
            service=service,
            held_s=self.hold,
            groups=membership(before, during, after),
        )

    async def _frozen(self, run: Run, service: str) -> None:
        groups = list(service_groups(run.sources.namespace, service))
        instance = run.cluster.primary[service]
        before = await describe_groups(run.sources.bootstrap, groups)
        freeze(instance)
        try:
            during = await self._wait_and_look(run, groups)
        finally:
            thaw(instance)
        after = await self._settled(run, groups)
        run.note(
            "process frozen (SIGSTOP)",
            service=service,
            pid=instance.pid,
            frozen_s=self.hold,
            groups=membership(before, during, after),
        )

    async def _wait_and_look(self, run: Run, groups: list[str]) -> dict[str, GroupState]:
        await asyncio.sleep(self.hold - 4)
        during = await describe_groups(run.sources.bootstrap, groups)
        await asyncio.sleep(4)
        return during

    async def _settled(self, run: Run, groups: list[str]) -> dict[str, GroupState]:
        await asyncio.sleep(self.settle)
        return await describe_groups(run.sources.bootstrap, groups)


def membership(
    before: dict[str, GroupState], during: dict[str, GroupState], after: dict[str, GroupState]
) -> dict[str, Any]:
    """Each group's state and members at the three moments; rebalanced when a member left
    or a new one joined."""
    return {
        group: {
            "before": _state(before.get(group)),
            "during": _state(during.get(group)),
            "after": _state(after.get(group)),
            "rebalanced": before.get(group) is not None
            and after.get(group) is not None
            and before[group].members != after[group].members,
        }
        for group in before
    }


def _state(state: GroupState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"state": state.state, "members": sorted(m[-12:] for m in state.members)}


@dataclass
class RebalanceStorm:
    """Every ``period`` seconds an extra instance of a random service joins, or one leaves
    (SIGTERM), so that its consumer groups rebalance again and again."""

    period: float = 3.0
    max_extra: int = 2
    services: tuple[str, ...] = SERVICES
    _leaving: list[asyncio.Task[None]] = field(default_factory=list)

    async def inject(self, run: Run, window: float) -> None:
        groups = all_groups(run.sources.namespace)
        seen: dict[str, set[frozenset[str]]] = {group: set() for group in groups}
        while run.elapsed < 0.9 * window:
            service = run.rng.choice(self.services)
            extras = run.cluster.extras[service]
            if extras and (len(extras) >= self.max_extra or run.rng.random() < 0.5):
                leaving = extras.pop(0)
                self._leaving.append(asyncio.create_task(self._remove(run, leaving)))
            else:
                instance = await run.cluster.add_extra(service)
                run.note("instance added", service=service, name=instance.name, pid=instance.pid)
            for group, state in (await describe_groups(run.sources.bootstrap, groups)).items():
                seen[group].add(state.members)
            await asyncio.sleep(self.period)
        await asyncio.gather(*self._leaving)
        run.observations["distinct_memberships_seen"] = {g: len(s) for g, s in seen.items()}

    async def _remove(self, run: Run, instance: Instance) -> None:
        status = await stop(instance, signal.SIGTERM)
        run.note(
            "instance removed (SIGTERM)",
            service=instance.service,
            name=instance.name,
            pid=instance.pid,
            exit=status,
        )


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: float
    faults: Callable[[], list[Fault]]
    env: dict[str, str] = field(default_factory=dict)
    extras: int = 0  # extra instances of every service for the whole run


SCENARIOS = {
    "kill-services": Scenario("kill-services", 300, lambda: [KillServices()]),
    "broker-restart": Scenario("broker-restart", 150, lambda: [BrokerRestart()]),
    "postgres-restart": Scenario("postgres-restart", 150, lambda: [PostgresRestart()]),
    "slow-consumer": Scenario(
        "slow-consumer",
        380,
        lambda: [SlowConsumer()],
        env={"KAFKA_MAX_POLL_INTERVAL_MS": str(SLOW_POLL_INTERVAL_MS)},
        extras=1,
    ),
    "rebalance-storm": Scenario("rebalance-storm", 180, lambda: [RebalanceStorm()]),
}


async def run_named(
    stack: FaultsStack, scenario: Scenario, args: argparse.Namespace
) -> dict[str, Any]:
    config = RunConfig(
        scenario=scenario.name,
        seconds=args.seconds or scenario.seconds,
        rate=args.rate,
        staff_share=args.staff_share,
        drain=args.drain,
        seed=args.seed,
    )
    result = await run_scenario(
        stack, config, scenario.faults(), env=scenario.env, extras=scenario.extras
    )
    result["command"] = " ".join(
        [
            "python",
            "reliability/faults.py",
            "--scenario",
            scenario.name,
            "--seconds",
            str(config.seconds),
            "--rate",
            str(config.rate),
        ]
    )
    return result


def write(result: dict[str, Any], out: Path | None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out or RESULTS / f"{result['scenario']}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return path


async def main_async(args: argparse.Namespace) -> int:
    stack = FaultsStack()
    await asyncio.to_thread(stack.up)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    clean = True
    try:
        for name in names:
            result = await run_named(stack, SCENARIOS[name], args)
            out = args.out if len(names) == 1 else None
            path = write(result, out)
            clean = clean and result["verdict"]["ok"] and not result["figures"]["harness_errors"]
            print(
                json.dumps({"scenario": name, **result["figures"], "json": str(path)}), flush=True
            )
    finally:
        if not args.keep_stack:
            await asyncio.to_thread(stack.down)
    return 0 if clean else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True, choices=[*SCENARIOS, "all"])
    parser.add_argument("--seconds", type=float, help="of load and faults (default: per scenario)")
    parser.add_argument("--rate", type=float, default=5.0, help="complaints a second")
    parser.add_argument("--staff-share", type=float, default=0.1)
    parser.add_argument("--drain", type=float, default=240.0, help="seconds to wait to settle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="the JSON's path (one scenario only)")
    parser.add_argument("--keep-stack", action="store_true", help="leave the faults stack up")
    return parser.parse_args(argv)


def main() -> int:
    # The harness's own clients retry through the outages it causes; their reconnection
    # errors would bury the fault log on stderr.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
