"""Kafka client security settings (shared/kafka_security.py) and the ACL plan
(deploy/kafka/acls.py), without a broker; tests/integration/test_kafka_acls.py runs both
against one."""

from __future__ import annotations

import importlib.util
import re
import ssl
import sys
from pathlib import Path
from types import ModuleType

import certifi
import pytest
from faststream.kafka.security import parse_security
from faststream.security import SASLScram256, SASLScram512
from pydantic import SecretStr

from shared.kafka_security import PLAINTEXT, KafkaSecurity, KafkaSecurityError
from shared.settings import ServiceSettings
from shared.topics import DEAD_LETTER_SUFFIX, SERVICE_GROUPS, Topics

REPO = Path(__file__).resolve().parents[2]
VARIABLES = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "KAFKA_SSL_CAFILE",
)
PASSWORD = "s3cret-Passw0rd"


def load_acls() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_acls", REPO / "deploy/kafka/acls.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


acls = load_acls()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def sasl_settings(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "complaints-routing",
        "kafka_sasl_password": SecretStr(PASSWORD),
        "kafka_ssl_cafile": Path(certifi.where()),
    }
    values.update(overrides)
    return ServiceSettings.model_validate(values)


def test_the_default_is_plaintext_and_changes_no_client() -> None:
    security = KafkaSecurity.from_settings(ServiceSettings())
    assert security == PLAINTEXT
    assert security.client_options() == {}
    assert security.faststream() is None


def test_sasl_ssl_gives_aiokafka_scram_over_verified_tls() -> None:
    options = KafkaSecurity.from_settings(sasl_settings()).client_options()
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "complaints-routing",
        "sasl_plain_password": PASSWORD,
    }
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.get_ca_certs(), "the CA file is loaded"


def test_faststream_security_maps_to_the_same_client_arguments() -> None:
    security = KafkaSecurity.from_settings(sasl_settings())
    broker_security = security.faststream()
    assert isinstance(broker_security, SASLScram512)
    assert broker_security.use_ssl
    # What FastStream's KafkaBroker hands aiokafka from it: the same as our own clients get.
    parsed = parse_security(broker_security)
    assert isinstance(parsed.pop("ssl_context"), ssl.SSLContext)
    expected = dict(security.client_options())
    expected.pop("ssl_context")
    assert parsed == expected


def test_scram_sha_256_is_available() -> None:
    security = KafkaSecurity.from_settings(sasl_settings(kafka_sasl_mechanism="SCRAM-SHA-256"))
    assert security.client_options()["sasl_mechanism"] == "SCRAM-SHA-256"
    assert isinstance(security.faststream(), SASLScram256)


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "complaints-sla")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("KAFKA_SSL_CAFILE", certifi.where())
    options = KafkaSecurity.from_settings(ServiceSettings()).client_options()
    assert options["sasl_plain_username"] == "complaints-sla"
    assert options["sasl_plain_password"] == PASSWORD, "the file's newline is not the password's"


def test_the_password_is_never_in_a_repr(tmp_path: Path) -> None:
    settings = sasl_settings()
    security = KafkaSecurity.from_settings(settings)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(security)
    assert PASSWORD not in str(security)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kafka_sasl_username": None}, "KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_password": None}, "KAFKA_SASL_PASSWORD"),
        ({"kafka_ssl_cafile": Path("/nonexistent/ca.pem")}, "KAFKA_SSL_CAFILE"),
        ({"kafka_security_protocol": "PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"kafka_sasl_password_file": Path("/nonexistent/pw")}, "not both"),
    ],
)
def test_settings_that_do_not_fit_together_are_refused(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(KafkaSecurityError, match=re.escape(message)) as refused:
        KafkaSecurity.from_settings(sasl_settings(**overrides)).client_options()
    assert PASSWORD not in str(refused.value)


def test_a_password_file_that_is_missing_or_empty_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(KafkaSecurityError, match="KAFKA_SASL_PASSWORD_FILE"):
        KafkaSecurity.from_settings(
            sasl_settings(kafka_sasl_password=None, kafka_sasl_password_file=missing)
        )
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(KafkaSecurityError, match="empty"):
        KafkaSecurity.from_settings(
            sasl_settings(kafka_sasl_password=None, kafka_sasl_password_file=empty)
        )


# --------------------------------------------------------------------------- the ACL plan


def acl_rows(namespace: str = "complaints") -> list[tuple[str, str, str, str, str]]:
    return [row for grant in acls.plan(namespace) for row in grant.rows()]


def allowed(user: str, operation: str, kind: str = "TOPIC") -> set[str]:
    return {name for u, op, k, name, _ in acl_rows() if (u, op, k) == (user, operation, kind)}


def test_the_groups_in_the_plan_are_the_groups_in_the_code() -> None:
    for service, groups in SERVICE_GROUPS.items():
        in_code = {
            match
            for path in (REPO / "services" / service).glob("*.py")
            for match in re.findall(r'group_id="([^"]+)"', path.read_text(encoding="utf-8"))
        }
        assert set(groups) == in_code, service


def test_each_service_writes_only_its_own_topics_and_its_inputs_dead_letters() -> None:
    topics = Topics.in_namespace("complaints")
    for service in acls.SERVICES:
        app = importlib.import_module(f"services.{service}.app")
        user = f"complaints-{service}"
        own = {topics.by_role(role).name for role in app.PUBLISHES}
        assert own == {t.name for t in topics.all() if t.producer == service}
        inputs = {topics.by_role(role) for role in app.SUBSCRIBES_TO}
        assert allowed(user, "WRITE") == own | {t.dead_letter for t in inputs}
        assert allowed(user, "READ") == {t.name for t in inputs}
        assert allowed(user, "READ", "GROUP") == set(SERVICE_GROUPS[service])
        # Nobody else's topic: every topic written is produced by this service or is
        # a dead-letter topic of an input.
        for name in allowed(user, "WRITE"):
            topic = next(t for t in topics.all() if name in (t.name, t.dead_letter))
            assert topic.producer == service or (
                name.endswith(DEAD_LETTER_SUFFIX) and topic in inputs
            ), (service, name)


def test_no_grant_creates_alters_or_touches_the_cluster() -> None:
    rows = acl_rows()
    assert {op for _, op, _, _, _ in rows} == {"READ", "WRITE", "DESCRIBE"}
    assert {kind for _, _, kind, _, _ in rows} == {"TOPIC", "GROUP"}
    prefixed = {(user, name) for user, _, _, name, pattern in rows if pattern == "PREFIXED"}
    assert prefixed == {
        ("complaints-dlq-replay", "dlq-replay.complaints."),
        ("complaints-branches", "branch-"),
    }


def test_the_plan_follows_the_namespace() -> None:
    rows = acl_rows("staging")
    topics = {name for _, _, kind, name, _ in rows if kind == "TOPIC"}
    assert all(name.startswith("staging.") for name in topics)
    assert {user for user, *_ in rows} == set(acls.users("staging"))


def test_acl_command_arguments() -> None:
    grant = acls.Grant("complaints-routing", ("Write", "Describe"), topics=("complaints.routing",))
    assert grant.acl_arguments() == [
        "--add",
        "--allow-principal",
        "User:complaints-routing",
        "--operation",
        "Write",
        "--operation",
        "Describe",
        "--topic",
        "complaints.routing",
    ]


def test_passwords_for_users(tmp_path: Path) -> None:
    assert (
        acls.password_variable("complaints", "complaints-dlq-replay")
        == "COMPLAINTS_DLQ_REPLAY_KAFKA_PASSWORD"
    )
    file = tmp_path / "passwords.json"
    file.write_text('{"admin": "a-1"}', encoding="utf-8")
    environ = {"COMPLAINTS_ROUTING_KAFKA_PASSWORD": "r-1"}
    assert acls.passwords_from(file, environ) == {"complaints-routing": "r-1", "admin": "a-1"}
    assert acls.scram_config("r-1,=[]") == "SCRAM-SHA-512=password=r-1,=[]\n"
    for bad in ("", " a", "a ", "a\\b", "a\nb", "a\rb"):
        with pytest.raises(ValueError, match="Kafka password"):
            acls.scram_config(bad)


def test_in_another_namespace_each_service_may_read_only_its_own_namespaced_groups() -> None:
    rows = acl_rows("staging")
    for service in acls.SERVICES:
        user = acls.user_name("staging", service)
        groups = {name for u, op, kind, name, _ in rows if (u, op, kind) == (user, "READ", "GROUP")}
        assert groups == {f"staging.{group}" for group in SERVICE_GROUPS[service]}, service
