"""`make image-smoke`: build the platform's image and run the whole platform from it.

The Dockerfile is otherwise only read, never run, by `make test` (CI machines have no
container engine). This runs it for real wherever docker or podman works: it builds the
image, then runs every job and service as a container of that image, with the same
constraints as deploy/compose/compose.yaml (read-only root, only /tmp writable, no
capabilities, no new privileges, the image's non-root user), against a Kafka broker and a
PostgreSQL server already running (by default the dev stack of `make infra-up`):

1. the jobs: topics (`shared.kafka_admin`), database roles (`shared.db.roles`) and
   development credentials (`shared.auth.dev`, into a fresh named volume, as compose does);
2. the SMTP and SMS sinks, then intake, routing, sla, notify and reporting, each connecting
   as its own database role, until every `/ready` answers 200;
3. `deploy/local/demo.py`, in a container of the image too, for `--minutes`;
4. the checks: every service still ready; reporting's total equals the complaints intake
   counted; routing assigned, sla breached (the demo's late cases), notify sent and none
   failed (Prometheus counters); every log line is JSON, and every line that names a
   complaint carries its correlation id;
5. a graceful stop (SIGTERM, then at most 30 s): every service must exit with status 0.

Everything is its own: a new database and a new topic namespace per run, dropped and
deleted at the end (`--keep` leaves them and the containers for a look).

    python deploy/docker/smoke.py [--engine docker|podman] [--image NAME] [--no-build]
        [--build-arg PYTHON_IMAGE=...] [--minutes 1] [--rate 2]
        [--kafka HOST:PORT] [--database-url postgresql://admin@host:port/db] [--keep]

Services use host networking and bind 127.0.0.1 on free ports, so the broker and database
addresses are the ones this machine uses. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared.auth.dev import DevCredentials  # noqa: E402
from shared.db.urls import with_database  # noqa: E402

SERVICES = ("intake", "routing", "sla", "notify", "reporting")
API_SERVICES = {"intake", "reporting"}
# The development sinks notify delivers to, and the folder each writes to.
SINKS = {"smtp-sink": "mail", "sms-sink": "sms"}
# The same limits compose gives every container of the image.
CONFINED = (
    "--network=host",
    "--read-only",
    "--tmpfs=/tmp",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)
# Where intake and reporting find the credentials volume's files (public parts only).
CREDENTIAL_FILES = {
    "AUTH_BRANCH_KEYS_FILE": "/credentials/branch-keys.json",
    "AUTH_STAFF_TOKEN_PUBLIC_KEY_FILE": "/credentials/staff-token-public.pem",
}
# The sinks write into the container's own tmpfs, gone with the container.
SINK_DIR = "/tmp"  # noqa: S108
READY_TIMEOUT_S = 180.0
CONVERGE_TIMEOUT_S = 90.0
STOP_GRACE_S = 30


class SmokeError(Exception):
    pass


def say(message: str) -> None:
    print(f"image-smoke: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def engine_works(engine: str) -> bool:
    if shutil.which(engine) is None:
        return False
    probe = subprocess.run([engine, "info"], capture_output=True, check=False)
    return probe.returncode == 0


def pick_engine(requested: str | None) -> str:
    candidates = [requested] if requested else ["docker", "podman"]
    for engine in candidates:
        if engine_works(engine):
            return engine
    raise SmokeError(
        f"no working container engine among {', '.join(candidates)} (`<engine> info` must succeed)"
    )


@dataclass
class Run:
    engine: str
    image: str
    kafka: str
    admin_url: str
    stamp: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    ports: dict[str, int] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)

    @property
    def database(self) -> str:
        return f"image_smoke_{self.stamp}"

    @property
    def namespace(self) -> str:
        return f"imagesmoke{self.stamp}"

    @property
    def volume(self) -> str:
        return f"complaints-smoke-{self.stamp}-credentials"

    def name(self, what: str) -> str:
        return f"complaints-smoke-{self.stamp}-{what}"

    def engine_run(
        self,
        what: str,
        command: Sequence[str],
        env: dict[str, str],
        mounts: Sequence[str] = (),
        detach: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        args = [self.engine, "run", "--name", self.name(what), *CONFINED]
        args += ["--detach"] if detach else []
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for mount in mounts:
            args += ["--volume", mount]
        args += [self.image, *command]
        self.containers.append(self.name(what))
        return subprocess.run(args, capture_output=True, text=True, check=False)

    def job(self, what: str, command: Sequence[str], env: dict[str, str], *mounts: str) -> str:
        done = self.engine_run(what, command, env, mounts)
        if done.returncode != 0:
            raise SmokeError(f"job {what} exited {done.returncode}: {done.stderr[-2000:]}")
        say(f"job {what}: done")
        return done.stdout

    def start(self, what: str, command: Sequence[str], env: dict[str, str], *mounts: str) -> None:
        started = self.engine_run(what, command, env, mounts, detach=True)
        if started.returncode != 0:
            raise SmokeError(f"{what} did not start: {started.stderr[-2000:]}")

    def inspect(self, what: str, template: str) -> str:
        shown = subprocess.run(
            [self.engine, "inspect", "--format", template, self.name(what)],
            capture_output=True,
            text=True,
            check=False,
        )
        return shown.stdout.strip()

    def logs(self, what: str) -> str:
        shown = subprocess.run(
            [self.engine, "logs", self.name(what)], capture_output=True, text=True, check=False
        )
        return shown.stdout + shown.stderr

    def kafka_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "COMPLAINTS_TOPIC_NAMESPACE": self.namespace,
            "LOG_LEVEL": "INFO",
        }

    def service_env(self, service: str) -> dict[str, str]:
        env = self.kafka_env() | {
            "DATABASE_URL": with_database(self.admin_url, self.database, f"complaints_{service}"),
            # Host networking: bind loopback, not the image's 0.0.0.0.
            "INTAKE_HOST": "127.0.0.1",
            "REPORTING_HOST": "127.0.0.1",
            "OPS_HOST": "127.0.0.1",
        }
        if service in API_SERVICES:
            env[f"{service.upper()}_PORT"] = str(self.ports[service])
            env |= CREDENTIAL_FILES
        else:
            env["OPS_PORT"] = str(self.ports[service])
        if service == "notify":
            env |= {
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(self.ports["smtp-sink"]),
                "SMS_GATEWAY_URL": f"http://127.0.0.1:{self.ports['sms-sink']}/gateway/send",
                "WEBHOOK_BASE_URL": f"http://127.0.0.1:{self.ports['sms-sink']}/webhooks",
                "SURVEY_BASE_URL": self.url("intake"),
                "CASE_BASE_URL": self.url("reporting"),
            }
        return env

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


async def administer(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def delete_topics(kafka: str, namespace: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(f"{namespace}.")]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def answers(run: Run, what: str) -> bool:
    """A service's /ready says 200; a sink accepts connections."""
    if what in SERVICES:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{run.url(what)}/ready", timeout=3).status_code == 200
        return False
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", run.ports[what]), 3):
        return True
    return False


def wait_ready(run: Run, containers: Sequence[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = set(containers)
    while waiting:
        for what in sorted(waiting):
            if run.inspect(what, "{{.State.Running}}") != "true":
                raise SmokeError(f"{what} stopped:\n{run.logs(what)[-3000:]}")
            if answers(run, what):
                waiting.discard(what)
                say(f"{what}: ready on {run.url(what)}")
        if waiting and time.monotonic() > deadline:
            raise SmokeError(f"not ready after {READY_TIMEOUT_S:.0f} s: {sorted(waiting)}")
        time.sleep(1)


def counter_sum(exposition: str, name: str) -> float:
    """The sum over every label of one counter in Prometheus text, 0 when it has no series
    yet (a counter with labels shows nothing until its first increment)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    )


def counter_total(run: Run, service: str, name: str) -> float:
    return counter_sum(httpx.get(f"{run.url(service)}/metrics", timeout=5).text, name)


def reporting_total(run: Run, headers: dict[str, str]) -> int:
    answer = httpx.get(f"{run.url('reporting')}/v1/reports/summary", headers=headers, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["total"])


def check_counts(run: Run, headers: dict[str, str]) -> list[str]:
    """Wait for reporting to catch up with intake, then read the business counters."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while True:
        received = counter_total(run, "intake", "complaints_received_total")
        reported = reporting_total(run, headers)
        if received > 0 and reported == received:
            break
        if time.monotonic() > deadline:
            raise SmokeError(f"intake received {received:.0f}, reporting shows {reported}")
        time.sleep(2)
    readings = {
        "routing assigned": counter_total(run, "routing", "complaints_assigned_total"),
        "sla breached": counter_total(run, "sla", "clocks_breached_total"),
        "notify sent": counter_total(run, "notify", "notifications_sent_total"),
    }
    failed = counter_total(run, "notify", "notifications_failed_total")
    say(
        f"intake received {received:.0f} = reporting total {reported}; "
        + ", ".join(f"{k} {v:.0f}" for k, v in readings.items())
        + f", notify failed {failed:.0f}"
    )
    problems = [f"{what} is 0" for what, value in readings.items() if value <= 0]
    if failed:
        problems.append(f"notify failed {failed:.0f} notifications")
    return problems


def log_problems(service: str, text: str) -> list[str]:
    """Every line JSON, and every line about a complaint (it names one) carries the
    correlation id that ties it to the rest of that complaint's story."""
    lines = [line for line in text.splitlines() if line.strip()]
    not_json, uncorrelated, about_complaints = [], [], 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        if isinstance(entry, dict) and "complaint_no" in entry:
            about_complaints += 1
            if not entry.get("correlation_id"):
                uncorrelated.append(str(entry.get("event")))
    say(
        f"{service}: {len(lines)} log lines, {len(lines) - len(not_json)} JSON, "
        f"{about_complaints} about a complaint, {len(uncorrelated)} of them without correlation id"
    )
    problems = []
    if not_json:
        problems.append(f"{service}: {len(not_json)} log lines not JSON, e.g. {not_json[0]!r}")
    if uncorrelated:
        problems.append(
            f"{service}: {len(uncorrelated)} lines name a complaint but no correlation id, "
            f"e.g. {uncorrelated[0]!r}"
        )
    return problems


def check_logs(run: Run) -> list[str]:
    return [problem for service in SERVICES for problem in log_problems(service, run.logs(service))]


def stop_gracefully(run: Run) -> list[str]:
    problems = []
    for service in SERVICES:
        subprocess.run(
            [run.engine, "stop", "--time", str(STOP_GRACE_S), run.name(service)],
            capture_output=True,
            check=False,
        )
        status = run.inspect(service, "{{.State.ExitCode}}")
        say(f"{service}: stopped, exit status {status}")
        if status != "0":
            problems.append(f"{service} exited {status} on SIGTERM")
    return problems


@contextlib.contextmanager
def staff_headers(run: Run) -> Iterator[dict[str, str]]:
    """An administrator's headers, from the credentials the job wrote into the volume."""
    clear = run.job(
        "read-credentials",
        ["python", "-c", "print(open('/credentials/dev-credentials.json').read())"],
        {},
        f"{run.volume}:/credentials:ro",
    )
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "dev-credentials.json").write_text(clear)
        yield DevCredentials(Path(directory)).staff_headers("admin", reason="image smoke test")


def build(engine: str, image: str, build_args: Sequence[str]) -> None:
    command = [engine, "build", "--tag", image, "--file", str(REPO / "Dockerfile")]
    for arg in build_args:
        command += ["--build-arg", arg]
    say(f"building {image} with {engine}")
    if subprocess.run([*command, str(REPO)], check=False).returncode != 0:
        raise SmokeError("the image did not build")


def smoke(run: Run, minutes: float, rate: float) -> list[str]:
    asyncio.run(administer(run.admin_url, f'CREATE DATABASE "{run.database}"'))
    say(f"database {run.database}, topic namespace {run.namespace}")
    run.job("topics", ["python", "-m", "shared.kafka_admin"], run.kafka_env())
    run.job(
        "db-roles",
        ["python", "-m", "shared.db.roles"],
        {"DATABASE_URL": with_database(run.admin_url, run.database)},
    )
    subprocess.run([run.engine, "volume", "create", run.volume], capture_output=True, check=True)
    run.job(
        "credentials",
        ["python", "-m", "shared.auth.dev", "--dir", "/credentials"],
        {},
        f"{run.volume}:/credentials",
    )
    for what in (*SINKS, *SERVICES):
        run.ports[what] = free_port()
    sinks = f"{REPO / 'deploy' / 'local'}:/app/deploy/local:ro"
    for sink, folder in SINKS.items():
        script = f"deploy/local/{sink.replace('-', '_')}.py"
        port = str(run.ports[sink])
        run.start(
            sink, ["python", script, "--port", port, "--dir", f"{SINK_DIR}/{folder}"], {}, sinks
        )
    for service in SERVICES:
        mounts = [f"{run.volume}:/credentials:ro"] if service in API_SERVICES else []
        run.start(
            service, ["python", "-m", f"services.{service}"], run.service_env(service), *mounts
        )
    wait_ready(run, [*SINKS, *SERVICES])

    say(f"demo: {minutes} min at {rate}/s")
    demo = run.engine_run(
        "demo",
        [
            "python",
            "deploy/local/demo.py",
            f"--minutes={minutes}",
            f"--rate={rate}",
            f"--intake={run.url('intake')}",
            f"--reporting={run.url('reporting')}",
            f"--kafka={run.kafka}",
        ],
        run.kafka_env() | CREDENTIAL_FILES,
        [sinks, f"{run.volume}:/credentials:ro"],
    )
    summary_at = demo.stdout.find("── summary")
    print(demo.stdout[summary_at:] if summary_at >= 0 else demo.stdout[-3000:], file=sys.stderr)
    problems = [] if demo.returncode == 0 else [f"the demo exited {demo.returncode}"]
    if demo.returncode != 0:
        say(demo.stderr[-3000:])
    with staff_headers(run) as headers:
        problems += check_counts(run, headers)
    for what in (*SINKS, *SERVICES):
        if not answers(run, what):
            problems.append(f"{what} no longer answers")
    problems += check_logs(run)
    problems += stop_gracefully(run)
    return problems


def clean_up(run: Run) -> None:
    for container in run.containers:
        subprocess.run([run.engine, "rm", "--force", container], capture_output=True, check=False)
    subprocess.run([run.engine, "volume", "rm", run.volume], capture_output=True, check=False)
    asyncio.run(administer(run.admin_url, f'DROP DATABASE IF EXISTS "{run.database}" WITH (FORCE)'))
    asyncio.run(delete_topics(run.kafka, run.namespace))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build the image and run the platform from it.")
    parser.add_argument("--engine", choices=("docker", "podman"), default=None)
    parser.add_argument("--image", default="complaints-platform:smoke")
    parser.add_argument("--no-build", action="store_true", help="use the image as it is")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long the demo runs (1)")
    parser.add_argument("--rate", type=float, default=2.0, help="complaints per second (2)")
    parser.add_argument(
        "--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/complaints"),
        help="an administrator's URL: the run creates and drops its own database there",
    )
    parser.add_argument("--keep", action="store_true", help="leave containers, database, topics")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        engine = pick_engine(args.engine)
        if not args.no_build:
            build(engine, args.image, args.build_arg)
        run = Run(engine=engine, image=args.image, kafka=args.kafka, admin_url=args.database_url)
        try:
            problems = smoke(run, args.minutes, args.rate)
        finally:
            if not args.keep:
                clean_up(run)
    except SmokeError as failure:
        say(f"FAILED: {failure}")
        return 1
    for problem in problems:
        say(f"FAILED: {problem}")
    if not problems:
        say("every check passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
