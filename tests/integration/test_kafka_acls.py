"""Least privilege in Kafka, on a real broker run with deploy/kafka/server.properties.

A throw-away single-node KRaft broker in a temporary directory, on free ports, with a
throw-away CA and broker certificate (keytool), configured by the production fragment
with only its ``# site:`` lines (hosts, ports, paths) replaced. The administrator is
created when the storage is formatted; the service users and every ACL are made by
deploy/kafka/acls.py, as an operator would; the clients are built by
shared/kafka_security.py, as the services build theirs.

Routing's user may write its own topic and intake's dead-letter topic, and is denied
intake's topic; it may read its input in its consumer group, and is denied another
topic and another service's group. A wrong password, a PLAINTEXT client and a client
that does not trust the cluster's CA are all refused, and a rotated password replaces
the old one. Every refusal is checked for its reason, beside the same client succeeding
with the right settings, so that a broker that is merely down cannot pass for one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from shared.consumer_app import new_broker
from shared.kafka_admin import ensure_topics
from shared.kafka_security import KafkaSecurity
from shared.metrics import ServiceMetrics
from shared.settings import ServiceSettings
from shared.topics import Topics, all_topic_partitions

REPO = Path(__file__).resolve().parents[2]
FRAGMENT = REPO / "deploy" / "kafka" / "server.properties"
ACLS_TOOL = REPO / "deploy" / "kafka" / "acls.py"
NAMESPACE = "complaints"
TOPICS = Topics.in_namespace(NAMESPACE)
ADMIN = "admin"
ROUTING = f"{NAMESPACE}-routing"
SLA = f"{NAMESPACE}-sla"
BROKER_START_TIMEOUT_S = 60.0


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


devstack = _load("devstack_for_acls", REPO / "deploy" / "local" / "devstack.py")


@dataclass(frozen=True)
class _ThrowAwayStack(devstack.Stack):  # type: ignore[name-defined,misc]
    """devstack's broker layout (config, log, pid file), under a temporary directory."""

    base: Path = Path()

    @property
    def root(self) -> Path:
        return self.base


@dataclass
class SecureKafka:
    bootstrap: str
    directory: Path
    ca_file: Path
    admin: KafkaSecurity
    routing: KafkaSecurity
    routing_password_file: Path
    admin_config: Path

    def as_user(self, user: str, password: str) -> KafkaSecurity:
        return KafkaSecurity(
            "SASL_SSL", username=user, password=SecretStr(password), cafile=self.ca_file
        )


def _secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(18)).decode()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _write_private(path: Path, text: str) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def _make_tls(directory: Path, keytool: str, password: str) -> tuple[Path, Path]:
    """A CA and a broker keystore signed by it (CN=kafka-broker, SAN 127.0.0.1):
    (keystore, CA certificate as PEM)."""
    ca_store, keystore = directory / "ca.p12", directory / "broker.p12"
    ca_pem, request, signed = (directory / n for n in ("ca.pem", "broker.csr", "broker.pem"))
    key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2")
    quick_jvm = ("-J-Xshare:auto", "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")

    def run(store: Path, *arguments: str) -> None:
        command = [keytool, *quick_jvm, *arguments, "-keystore", str(store)]
        command += ["-storetype", "PKCS12", "-storepass", password]
        devstack.run_checked(command, f"keytool {arguments[0]}")

    ca = ("-alias", "ca", "-dname", "CN=complaints-test-ca", "-ext", "bc:c")
    run(ca_store, "-genkeypair", *ca, *key)
    run(ca_store, "-exportcert", "-rfc", "-alias", "ca", "-file", str(ca_pem))
    run(keystore, "-genkeypair", "-alias", "broker", "-dname", "CN=kafka-broker", *key)
    run(keystore, "-certreq", "-alias", "broker", "-file", str(request))
    signing = ("-infile", str(request), "-outfile", str(signed), "-rfc", "-validity", "2")
    run(ca_store, "-gencert", "-alias", "ca", *signing, "-ext", "SAN=ip:127.0.0.1,dns:localhost")
    # The CA first, so that keytool can build the signed certificate's chain.
    run(keystore, "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem))
    run(keystore, "-importcert", "-alias", "broker", "-file", str(signed))
    return keystore, ca_pem


def _fragment() -> tuple[dict[str, str], set[str]]:
    """deploy/kafka/server.properties: its settings, and the keys marked ``# site:``."""
    settings: dict[str, str] = {}
    site: set[str] = set()
    marked = False
    for line in FRAGMENT.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("# site:"):
            marked = True
        elif stripped and not stripped.startswith("#"):
            key, value = stripped.split("=", 1)
            settings[key] = value
            if marked:
                site.add(key)
            marked = False
    return settings, site


def _server_properties(
    stack: Any, ports: list[int], keystore: Path, ca_pem: Path, tls_secrets: Path
) -> str:
    clients, internal, controller = ports
    fragment, site_keys = _fragment()
    site = {
        "listeners": f"CLIENTS://127.0.0.1:{clients},INTERNAL://127.0.0.1:{internal},"
        f"CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"CLIENTS://127.0.0.1:{clients},INTERNAL://127.0.0.1:{internal}",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": f"${{file:{tls_secrets}:keystore.password}}",
        "ssl.key.password": f"${{file:{tls_secrets}:keystore.password}}",
        "ssl.truststore.location": str(ca_pem),
    }
    assert set(site) == site_keys, "only the fragment's site-specific lines are replaced"
    # What a node adds to the fragment itself: none of it is about security.
    node = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
        **devstack.single_node(stack),
    }
    assert not set(node) & set(fragment)
    merged = {**fragment, **site, **node}
    return "".join(f"{key}={value}\n" for key, value in merged.items())


def _cluster_id() -> str:
    # Kafka's Uuid text form (base64url, no padding), without a JVM start; a leading '-'
    # would read as an option.
    while (text := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))[0] == "-":
        pass
    return text


def _acls_tool(*arguments: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [sys.executable, str(ACLS_TOOL), *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    try:
        java = devstack.java_executable()
        devstack.check_java_version(java)
    except devstack.DevstackError as exc:
        pytest.skip(f"needs Java: {exc}")
    keytool = str(Path(java).resolve().parent / "keytool")
    devstack.fetch_jars()
    directory = tmp_path_factory.mktemp("kafka-acls")
    process: subprocess.Popen[bytes] | None = None
    try:
        # Ports are in the properties; devstack's stack fields for them go unused.
        stack = _ThrowAwayStack("acls", 0, 0, 0, kafka_heap="512M", base=directory)
        stack.kafka_dir.mkdir(parents=True)
        tls = directory / "tls"
        tls.mkdir(mode=0o700)
        store_password = _secret()
        keystore, ca_pem = _make_tls(tls, keytool, store_password)
        tls_secrets = _write_private(
            tls / "tls.properties", f"keystore.password={store_password}\n"
        )
        ports = _free_ports(3)
        stack.kafka_properties.write_text(
            _server_properties(stack, ports, keystore, ca_pem, tls_secrets), encoding="utf-8"
        )
        stack.kafka_log4j.write_text(devstack.LOG4J2_YAML, encoding="utf-8")
        admin_password = _secret()
        storage = devstack.kafka_java_command(stack, java, "kafka.tools.StorageTool")
        scram = f"SCRAM-SHA-512=[name={ADMIN},password={admin_password}]"
        format_ = ["format", "--standalone", "-t", _cluster_id(), "-c", str(stack.kafka_properties)]
        devstack.run_checked([*storage, *format_, "--add-scram", scram], "kafka-storage format")
        process = devstack.launch_kafka(stack, java)
        if not devstack.wait_for_port(
            ports[0], BROKER_START_TIMEOUT_S, lambda: process.poll() is None
        ):
            pytest.fail(f"the broker did not start:\n{devstack.tail(stack.kafka_log)}")
        bootstrap = f"127.0.0.1:{ports[0]}"
        admin_config = _write_private(
            directory / "admin.properties",
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
            f'required username="{ADMIN}" password="{admin_password}";\n'
            f"ssl.truststore.type=PEM\nssl.truststore.location={ca_pem}\n",
        )
        routing_password = _secret()
        connection = ["--bootstrap-server", bootstrap, "--command-config", str(admin_config)]
        password_variable = {"COMPLAINTS_ROUTING_KAFKA_PASSWORD": routing_password}
        _acls_tool("users", *connection, "--user", ROUTING, env=password_variable)
        _acls_tool("apply", *connection, "--namespace", NAMESPACE)
        yield SecureKafka(
            bootstrap=bootstrap,
            directory=directory,
            ca_file=ca_pem,
            admin=KafkaSecurity(
                "SASL_SSL", username=ADMIN, password=SecretStr(admin_password), cafile=ca_pem
            ),
            routing=KafkaSecurity(
                "SASL_SSL", username=ROUTING, password=SecretStr(routing_password), cafile=ca_pem
            ),
            routing_password_file=_write_private(
                directory / "routing.password", routing_password + "\n"
            ),
            admin_config=admin_config,
        )
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
async def kafka(secure_broker: SecureKafka) -> SecureKafka:
    """The broker with the platform's topics, created by the administrator."""
    await ensure_topics(
        secure_broker.bootstrap,
        all_topic_partitions(NAMESPACE),
        security=secure_broker.admin,
        wait_seconds=30,
    )
    return secure_broker


@contextlib.asynccontextmanager
async def producer_as(
    kafka: SecureKafka, security: KafkaSecurity
) -> AsyncIterator[AIOKafkaProducer]:
    # As the outbox relay produces: idempotent, acks=all.
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=10_000,
        **security.client_options(),
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def test_a_service_writes_its_own_topic_and_is_denied_anothers(kafka: SecureKafka) -> None:
    async with producer_as(kafka, kafka.routing) as routing:
        # Its own topic, and the dead-letter topic of the topic it consumes.
        await routing.send_and_wait(TOPICS.routing.name, b"assigned", key=b"261122001")
        await routing.send_and_wait(TOPICS.intake.dead_letter, b"poison", key=b"261122001")
        foreign = (TOPICS.intake.name, TOPICS.sla.name, TOPICS.submitted.name)
        for name in (*foreign, TOPICS.routing.dead_letter):
            with pytest.raises(TopicAuthorizationFailedError):
                await routing.send_and_wait(name, b"forged", key=b"261122001")


async def test_a_service_reads_its_input_in_its_own_group_only(kafka: SecureKafka) -> None:
    async with producer_as(kafka, kafka.admin) as admin:
        await admin.send_and_wait(TOPICS.intake.name, b"received", key=b"261122002", partition=0)

    def consumer(*topics: str, group: str | None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *topics,
            bootstrap_servers=kafka.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            request_timeout_ms=10_000,
            **kafka.routing.client_options(),
        )

    allowed = consumer(TOPICS.intake.name, group="routing")
    await allowed.start()
    try:
        record = await asyncio.wait_for(allowed.getone(), 30)
        assert record.value == b"received"
        await allowed.commit()
    finally:
        await allowed.stop()

    # Another service's group, on the very topic routing may read.
    async def join_and_read(consumer: AIOKafkaConsumer) -> None:
        await consumer.start()
        await consumer.getone()

    other_group = consumer(TOPICS.intake.name, group="sla")
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await asyncio.wait_for(join_and_read(other_group), 30)
    finally:
        await other_group.stop()

    # A topic routing does not consume, in its own group.
    other_topic = consumer(TOPICS.sla.name, group="routing")
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(other_topic.start(), 30)
    finally:
        await other_topic.stop()


async def test_the_faststream_broker_of_a_service_has_the_same_rights(
    kafka: SecureKafka,
) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka.bootstrap,
        complaints_topic_namespace=NAMESPACE,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=ROUTING,
        kafka_sasl_password_file=kafka.routing_password_file,
        kafka_ssl_cafile=kafka.ca_file,
    )
    broker = new_broker(settings, "routing", ServiceMetrics("routing"))
    await broker.start()
    try:
        await broker.publish(b"dead letter", topic=TOPICS.intake.dead_letter, key=b"k")
        with pytest.raises(TopicAuthorizationFailedError):
            await broker.publish(b"forged", topic=TOPICS.intake.name, key=b"k")
    finally:
        await broker.stop()


async def _refused(
    kafka: SecureKafka, security: KafkaSecurity | None, caplog: pytest.LogCaptureFixture
) -> str:
    """Why a producer with these settings could not connect (aiokafka logs the cause)."""
    caplog.clear()
    options = security.client_options() if security is not None else {}
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, request_timeout_ms=5_000, **options
    )
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
    return caplog.text


async def test_a_wrong_password_is_refused(
    kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = kafka.as_user(ROUTING, "not-" + _secret())
    assert "Authentication failed" in await _refused(kafka, wrong, caplog)
    unknown = kafka.as_user(f"{NAMESPACE}-nobody", _secret())
    assert "Authentication failed" in await _refused(kafka, unknown, caplog)


async def test_a_plaintext_client_is_refused(
    kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    # The broker hangs up on bytes that are not TLS (a broker that is down would refuse
    # the connection instead).
    why = await _refused(kafka, None, caplog)
    assert "Unable connect" in why
    assert "closed" in why


async def test_a_client_that_does_not_trust_the_cluster_ca_is_refused(
    kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    # The system's trust store: the broker's certificate is signed by no public CA.
    untrusting = KafkaSecurity("SASL_SSL", username=ROUTING, password=kafka.routing.password)
    assert "CERTIFICATE_VERIFY_FAILED" in await _refused(kafka, untrusting, caplog)


async def test_a_rotated_password_replaces_the_old_one(
    kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    connection = [
        "--bootstrap-server",
        kafka.bootstrap,
        "--command-config",
        str(kafka.admin_config),
    ]
    old, new = _secret(), _secret()
    for password in (old, new):
        passwords = _write_private(kafka.directory / "passwords.json", f'{{"{SLA}": "{password}"}}')
        await asyncio.to_thread(
            _acls_tool, "users", *connection, "--passwords-file", str(passwords), "--user", SLA
        )
        # The credential reaches the broker through the metadata log: a moment later.
        for attempt in range(20):
            try:
                async with producer_as(kafka, kafka.as_user(SLA, password)) as sla:
                    await sla.send_and_wait(TOPICS.sla.name, b"clock started", key=b"k")
                break
            except KafkaConnectionError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
    assert "Authentication failed" in await _refused(kafka, kafka.as_user(SLA, old), caplog)
