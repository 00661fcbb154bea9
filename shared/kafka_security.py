"""How the platform's Kafka clients authenticate: PLAINTEXT locally, SASL/SCRAM over TLS
in production.

The default (``KAFKA_SECURITY_PROTOCOL=PLAINTEXT``, what the local stacks run) adds
nothing to any client's arguments. With ``SASL_SSL`` each service logs in as its own
SCRAM user, whose ACLs let it write only its own topics (deploy/kafka/README.md), and
verifies the brokers' certificates against ``KAFKA_SSL_CAFILE``.

``KafkaSecurity.from_settings`` is called at every place a Kafka client is created:
``client_options()`` gives aiokafka's producer, consumer and admin client their keyword
arguments and ``faststream()`` gives ``KafkaBroker`` its ``security=``. The password is
held as a ``SecretStr`` until the moment a client is built, so a settings or security
object that reaches a log line shows ``**********``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from pydantic import SecretStr

from shared.settings import ServiceSettings

SecurityProtocol = Literal["PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


class KafkaSecurityError(ValueError):
    """The Kafka security settings do not fit together; the message names the variables."""


class ClientOptions(TypedDict, total=False):
    """Keyword arguments of AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""

    security_protocol: str
    sasl_mechanism: str
    sasl_plain_username: str
    sasl_plain_password: str
    ssl_context: ssl.SSLContext


@dataclass(frozen=True)
class KafkaSecurity:
    """How to connect to the brokers: PLAINTEXT, or SASL_SSL as ``username``."""

    protocol: SecurityProtocol = "PLAINTEXT"
    mechanism: Mechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    cafile: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol == "SASL_SSL" and not (self.username and self.password):
            raise KafkaSecurityError(
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"
            )
        # Credentials with PLAINTEXT are almost certainly a forgotten protocol setting:
        # refusing to start beats connecting unauthenticated and in the clear.
        if self.protocol == "PLAINTEXT" and (self.username or self.password or self.cafile):
            raise KafkaSecurityError(
                "Kafka credentials or a CA file are set but KAFKA_SECURITY_PROTOCOL is "
                "PLAINTEXT: set KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> KafkaSecurity:
        password = settings.kafka_sasl_password
        path = settings.kafka_sasl_password_file
        if password is not None and path is not None:
            raise KafkaSecurityError(
                "set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both"
            )
        if path is not None:
            password = SecretStr(_read_secret(path))
        return cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=password,
            cafile=settings.kafka_ssl_cafile,
        )

    @property
    def is_plaintext(self) -> bool:
        return self.protocol == "PLAINTEXT"

    def ssl_context(self) -> ssl.SSLContext:
        """Certificate and host name verification on, against ``cafile`` (else the
        system's trust store)."""
        try:
            return ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(f"KAFKA_SSL_CAFILE={self.cafile}: {exc}") from exc

    def _credentials(self) -> tuple[str, str]:
        # __post_init__ guarantees both for SASL_SSL; the checks are for mypy.
        if self.username is None or self.password is None:
            raise KafkaSecurityError("no Kafka credentials")
        return self.username, self.password.get_secret_value()

    def client_options(self) -> ClientOptions:
        """Keyword arguments for aiokafka's clients; none at all for PLAINTEXT."""
        if self.is_plaintext:
            return {}
        username, password = self._credentials()
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
            "ssl_context": self.ssl_context(),
        }

    def faststream(self) -> BaseSecurity | None:
        """``KafkaBroker(security=...)``; None for PLAINTEXT."""
        if self.is_plaintext:
            return None
        username, password = self._credentials()
        scram = SASLScram512 if self.mechanism == "SCRAM-SHA-512" else SASLScram256
        return scram(username, password, ssl_context=self.ssl_context())


PLAINTEXT = KafkaSecurity()


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        # The path, never the content.
        raise KafkaSecurityError(f"KAFKA_SASL_PASSWORD_FILE={path}: {exc.strerror}") from exc
    # Secret files written by editors, `echo` or Kubernetes often end with a newline
    # that is not part of the password.
    secret = text.rstrip("\r\n")
    if not secret:
        raise KafkaSecurityError(f"KAFKA_SASL_PASSWORD_FILE={path} is empty")
    return secret
