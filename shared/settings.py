"""Settings every service reads from its environment, once, at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class ServiceSettings(BaseSettings):
    """Base for each service's settings; fields map to upper-case environment variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
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
    db_pool_max_size: int = Field(default=10, ge=1)
    outbox_retention_hours: float = Field(
        default=168,
        gt=0,
        description="How long a published outbox row is kept before the relay deletes it.",
    )
