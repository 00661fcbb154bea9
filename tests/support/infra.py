"""Where the tests' Kafka and PostgreSQL come from: TEST_INFRA=local|testcontainers|external.

Unset means testcontainers when a Docker engine answers, otherwise local (the
devstack: Kafka from Maven Central, embedded PostgreSQL), which is what our
machines and CI use. ``external`` takes KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = [sys.executable, str(REPO / "deploy" / "local" / "devstack.py")]


@dataclass(frozen=True)
class Infra:
    kind: str
    kafka_bootstrap_servers: str
    database_url: str


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def chosen_kind() -> str:
    kind = os.environ.get("TEST_INFRA", "").strip().lower()
    if kind in ("local", "testcontainers", "external"):
        return kind
    if kind:
        raise ValueError(f"TEST_INFRA={kind!r}: use local, testcontainers or external")
    return "testcontainers" if _docker_answers() else "local"


@contextmanager
def _local() -> Iterator[Infra]:
    # A fresh stack per session: tests never see a previous run's topics or rows.
    subprocess.run([*DEVSTACK, "reset", "--stack", "test"], check=True)
    subprocess.run([*DEVSTACK, "up", "--stack", "test"], check=True)
    output = subprocess.run(
        [*DEVSTACK, "env", "--stack", "test"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    try:
        yield Infra("local", env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"])
    finally:
        if os.environ.get("DEVSTACK_KEEP") != "1":
            subprocess.run([*DEVSTACK, "down", "--stack", "test"], check=False)


@contextmanager
def _testcontainers() -> Iterator[Infra]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        KafkaContainer().with_kraft() as kafka,
        PostgresContainer("postgres:17", driver=None) as postgres,
    ):
        yield Infra("testcontainers", kafka.get_bootstrap_server(), postgres.get_connection_url())


@contextmanager
def _external() -> Iterator[Infra]:
    missing = [n for n in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL") if n not in os.environ]
    if missing:
        raise RuntimeError(f"TEST_INFRA=external needs {', '.join(missing)}")
    yield Infra("external", os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"])


def provide(kind: str) -> AbstractContextManager[Infra]:
    return {"local": _local, "testcontainers": _testcontainers, "external": _external}[kind]()
