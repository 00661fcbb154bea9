"""Settings every service reads from its environment, once, at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class ServiceSettings(BaseSettings):
    """Base for each service's settings; fields map to upper-case environment variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    # Kafka authentication (shared/kafka_security.py, deploy/kafka/README.md).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT (the local stacks) or SASL_SSL: SCRAM over TLS, the "
        "production brokers' listener (deploy/kafka/).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512", description="The SASL mechanism with SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="The service's own Kafka user with SASL_SSL."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="That user's password (or KAFKA_SASL_PASSWORD_FILE)."
    )
    kafka_sasl_password_file: Path | None = Field(
        default=None,
        description="A file holding the password instead (a mounted secret); a trailing "
        "newline is not part of it.",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the brokers' certificates; the "
        "system's trust store when unset.",
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5433/complaints",
        description="PostgreSQL DSN; each service uses its own schema in this database.",
    )
    complaints_topic_namespace: str = Field(
        default="complaints",
        pattern=r"^[a-z][a-z0-9-]*$",
        description="Prefix of every topic name, so environments can share a cluster.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    policy_packs_dir: Path = Field(
        default=REPO_ROOT / "policy-packs", description="Folder of policy-pack YAML files."
    )
    db_pool_max_size: int = Field(
        default=10, ge=1, description="Database connections the service keeps at most, per process."
    )
    outbox_retention_hours: float = Field(
        default=168,
        gt=0,
        description="How long a published outbox row is kept before the relay deletes it.",
    )
    kafka_max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1_000,
        description="Kafka's max.poll.interval.ms for every consumer: the longest one batch "
        "may take before the consumer is put out of its group. The default is Kafka's; the "
        "fault harness lowers it to provoke that rebalance (reliability/faults.py).",
    )
    ops_host: str = Field(
        default="127.0.0.1",
        description="Address routing's, sla's and notify's ops endpoints (/health, /ready, "
        "/metrics) bind to; intake and reporting answer them on their API port instead.",
    )
    ops_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Their port; unset, the service's own (routing 8002, sla 8003, notify "
        "8004); 0 takes a free one (several instances on one machine, tests).",
    )


DEV_CREDENTIALS_DIR = REPO_ROOT / ".local" / "credentials"


class AuthSettings(BaseSettings):
    """Where an HTTP service finds the credentials it checks callers against. The defaults
    are what ``make run`` generates (``python -m shared.auth.dev``); a service whose files
    are missing refuses to start rather than serve unauthenticated."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    auth_branch_keys_file: Path = Field(
        default=DEV_CREDENTIALS_DIR / "branch-keys.json",
        description="JSON of each branch's hashed API keys.",
    )
    auth_staff_token_public_key_file: Path = Field(
        default=DEV_CREDENTIALS_DIR / "staff-token-public.pem",
        description="PEM public key (Ed25519) that staff tokens are signed with.",
    )
