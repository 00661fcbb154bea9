"""The platform as real processes (bench/run.py's ``Platform``), instances of each service
started, killed, stopped, frozen and restarted one by one; and what Kafka says of their
consumer groups."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.run import SERVICES, Platform, free_port, wait_http
from shared.topics import service_groups

HTTP_PORT_SETTING = {"intake": "INTAKE_PORT", "reporting": "REPORTING_PORT"}

STOP_TIMEOUT_S = 30.0
DESCRIBE_ATTEMPTS = 3


def all_groups(namespace: str) -> list[str]:
    return [group for service in SERVICES for group in service_groups(namespace, service)]


@dataclass
class Instance:
    service: str
    name: str  # its log file's name: routing.3 is routing's third process of the run
    port: int | None
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class Cluster:
    """One primary instance per service (the one the load talks to and the faults kill,
    restarted on the same port), and extra instances that come and go."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.platform = Platform(env, log_dir)
        self.log_dir = log_dir
        self.primary: dict[str, Instance] = {}
        self.extras: dict[str, list[Instance]] = {service: [] for service in SERVICES}
        self._started: Counter[str] = Counter()

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.primary[service].port}"

    def start_sink(self, name: str, script: str, directory: Path, port: int) -> None:
        self.platform.start(name, script, "--dir", str(directory), "--port", str(port))

    def launch(self, service: str, port: int | None = None) -> Instance:
        self._started[service] += 1
        name = f"{service}.{self._started[service]}"
        if service in HTTP_PORT_SETTING:
            port = port or free_port()
        own = {HTTP_PORT_SETTING[service]: str(port)} if port else {}
        self.platform.start(name, "-m", f"services.{service}", env=own)
        return Instance(service, name, port, self.platform.popen[name])

    async def start_primaries(self) -> None:
        for service in SERVICES:
            self.primary[service] = self.launch(service)
        await self.until_answering()

    async def until_answering(self) -> None:
        for service in HTTP_PORT_SETTING:
            await wait_http(f"{self.url(service)}/openapi.json")

    async def add_extra(self, service: str) -> Instance:
        instance = self.launch(service)
        self.extras[service].append(instance)
        return instance

    async def remove_extra(self, service: str, how: signal.Signals) -> Instance | None:
        if not self.extras[service]:
            return None
        instance = self.extras[service].pop(0)
        await stop(instance, how)
        return instance

    async def remove_all_extras(self) -> None:
        for service in SERVICES:
            while self.extras[service]:
                await self.remove_extra(service, signal.SIGTERM)

    async def kill_primary(self, service: str) -> tuple[int, int | None]:
        """SIGKILL the service's primary instance: its pid and exit status."""
        instance = self.primary[service]
        return instance.pid, await stop(instance, signal.SIGKILL)

    def restart_primary(self, service: str) -> Instance:
        self.primary[service] = self.launch(service, self.primary[service].port)
        return self.primary[service]

    def revive_dead_primaries(self) -> list[str]:
        """Restart any primary that is not running (one that died of its own accord is a
        finding; the caller records it)."""
        dead = [service for service, instance in self.primary.items() if not instance.alive]
        for service in dead:
            self.restart_primary(service)
        return dead

    def unexpected_exits(self) -> dict[str, int | None]:
        return {
            i.name: i.process.returncode
            for i in self.primary.values()
            if i.process.poll() is not None
        }

    def stop_all(self) -> None:
        self.platform.stop()


async def stop(instance: Instance, how: signal.Signals) -> int | None:
    """Signal the instance and wait for it to end: its exit status."""
    if instance.alive:
        with contextlib.suppress(ProcessLookupError):
            instance.process.send_signal(how)
    try:
        return await asyncio.to_thread(instance.process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        return await asyncio.to_thread(instance.process.wait)


def freeze(instance: Instance) -> None:
    os.kill(instance.pid, signal.SIGSTOP)


def thaw(instance: Instance) -> None:
    os.kill(instance.pid, signal.SIGCONT)


# --------------------------------------------------------------------------- consumer groups


@dataclass(frozen=True)
class GroupState:
    state: str
    members: frozenset[str]


async def describe_groups(bootstrap: str, groups: list[str]) -> dict[str, GroupState]:
    """Each group's state and member ids as the broker sees them now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        # One group a request: aiokafka 0.14 misreads a DescribeGroups answer holding
        # several groups with members ("Buffer underrun decoding string").
        return {group: await _describe(admin, group) for group in groups}
    finally:
        await admin.close()


async def _describe(admin: AIOKafkaAdminClient, group: str) -> GroupState:
    for attempt in range(DESCRIBE_ATTEMPTS):
        try:
            (response,) = await admin.describe_consumer_groups([group])
            break
        except KafkaError:
            if attempt == DESCRIBE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.5)
    # groups: (error_code, group_id, state, protocol_type, protocol, members, ...); each
    # member starts with its member id.
    (found,) = response.groups
    return GroupState(found[2], frozenset(str(member[0]) for member in found[5]))


async def lag(bootstrap: str, namespace: str, groups: list[str]) -> int | None:
    """Records the groups have not committed past on the run's topics; None when the
    broker cannot be asked."""
    try:
        return sum([await _group_lag(bootstrap, namespace, group) for group in groups])
    except (KafkaError, OSError):
        return None


async def _group_lag(bootstrap: str, namespace: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    ours = {
        tp: meta.offset for tp, meta in committed.items() if tp.topic.startswith(f"{namespace}.")
    }
    if not ours:
        return 0
    return sum(max(0, end - ours[tp]) for tp, end in (await _end_offsets(bootstrap, ours)).items())


async def _end_offsets(
    bootstrap: str, partitions: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
    finally:
        await consumer.stop()
    return ends
