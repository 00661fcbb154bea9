"""Back up and restore the platform: every service schema in one consistent PostgreSQL
snapshot, with the committed offsets of the platform's consumer groups that go with it.

    python deploy/local/backup.py backup  --to DIR
    python deploy/local/backup.py restore --from DIR [--no-offsets] [--rewind] [--accept-gaps]
    python deploy/local/backup.py verify  --from DIR

The database, broker and topic namespace are the services' own settings (DATABASE_URL,
KAFKA_BOOTSTRAP_SERVERS, COMPLAINTS_TOPIC_NAMESPACE) unless --database-url,
--bootstrap-servers or --namespace say otherwise. pg_dump and pg_restore are the embedded
PostgreSQL's (devstack.py's ``pg_bin``) unless --pg-bin names another folder; they must be
of the server's major version or newer.

A backup directory holds ``database.dump`` (pg_dump's custom format: the schemas of
every service, from one snapshot) and ``manifest.json`` (when, the schemas, the row count
of every table in that same snapshot, each consumer group's committed offsets, the topics'
offsets, tool versions, the dump's SHA-256). The manifest is written last, so a directory
without one is not a backup. Why the offsets are read before the snapshot, and what a
restore gives back and what it cannot: docs/operations.md.

Progress goes to stderr, a JSON summary to stdout; the exit status is 0 only on success.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import platform as python_platform
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiokafka
import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared.db.urls import with_database  # noqa: E402
from shared.settings import ServiceSettings  # noqa: E402
from shared.topics import Topics, consumer_group  # noqa: E402

FORMAT = 1
DUMP_FILE = "database.dump"
MANIFEST_FILE = "manifest.json"
# Each service consumes its SUBSCRIBES_TO topics in a consumer group named after itself,
# except intake's Kafka submissions, which have a group of their own
# (services/intake/kafka_submissions.py).
SEPARATE_GROUPS = {"submitted": "intake-submissions"}
COMMIT_ATTEMPT_SECONDS = 30.0
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class BackupError(Exception):
    """A refusal or failure worth one clear message; the CLI exits non-zero."""


def say(message: str) -> None:
    print(f"backup: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the platform


@dataclass(frozen=True)
class Platform:
    """What the code says the platform is: the schemas, and the consumer groups with the
    topic roles each reads, and the roles the platform itself produces."""

    schemas: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    produced: tuple[str, ...]


def discover_platform() -> Platform:
    """Every service with migrations owns a schema; read it and its topics from its app
    module, so that a new service is backed up without anyone remembering to add it."""
    schemas: list[str] = []
    groups: dict[str, list[str]] = {}
    produced: set[str] = set()
    for folder in sorted((REPO / "services").glob("*/migrations")):
        service = folder.parent.name
        module = importlib.import_module(f"services.{service}.app")
        schemas.append(str(module.SCHEMA))
        for role in module.SUBSCRIBES_TO:
            groups.setdefault(SEPARATE_GROUPS.get(role, service), []).append(str(role))
        produced.update(str(role) for role in getattr(module, "PUBLISHES", ()))
    if not schemas:
        raise BackupError(f"no service with migrations under {REPO / 'services'}")
    return Platform(
        tuple(schemas),
        {group: tuple(roles) for group, roles in sorted(groups.items())},
        tuple(sorted(produced)),
    )


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    bootstrap_servers: str
    namespace: str

    @classmethod
    def from_environment(cls) -> Endpoints:
        settings = ServiceSettings()
        return cls(
            settings.database_url,
            settings.kafka_bootstrap_servers,
            settings.complaints_topic_namespace,
        )


# --------------------------------------------------------------------------- PostgreSQL


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it: a password on a
    command line is visible to every user of the machine (ps)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}@{host}")
    return urlunsplit(parts), env


def masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _devstack() -> ModuleType:
    """deploy/local is scripts, not a package: load devstack.py by its path."""
    path = Path(__file__).resolve().parent / "devstack.py"
    spec = importlib.util.spec_from_file_location("complaints_devstack", path)
    if spec is None or spec.loader is None:
        raise BackupError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("complaints_devstack", module)
    spec.loader.exec_module(module)
    return module


def pg_tool(program: str, pg_bin: Path | None) -> str:
    """--pg-bin's program, else the embedded PostgreSQL's (the server's own version in
    development), else the one on PATH."""
    if pg_bin is not None:
        candidate = pg_bin / program
        if not candidate.is_file():
            raise BackupError(f"no {program} in {pg_bin}")
        return str(candidate)
    with contextlib.suppress(Exception):
        embedded = Path(_devstack().pg_bin(program))
        if embedded.is_file():
            return str(embedded)
    found = shutil.which(program)
    if found is None:
        raise BackupError(f"{program} not found: install the PostgreSQL client or pass --pg-bin")
    return found


async def run_tool(command: list[str], env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-2000:]
        raise BackupError(f"{Path(command[0]).name} failed ({process.returncode}): {tail}")
    return out.decode("utf-8", "replace").strip()


def major_version(text: str) -> int:
    """18 from "pg_dump (PostgreSQL) 18.6", "15.18 (Debian …)" or "18.6"."""
    match = re.search(r"(?:\)\s*|^)(\d+)", text)
    if match is None:
        raise BackupError(f"cannot read a version from {text!r}")
    return int(match.group(1))


async def table_counts(conn: asyncpg.Connection, schemas: list[str]) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT n.nspname AS schema, c.relname AS name
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])
           ORDER BY 1, 2""",
        schemas,
    )
    counts: dict[str, int] = {}
    for row in rows:
        # Identifiers come from the catalog and are quoted: nothing user-supplied here.
        sql = f"SELECT count(*) FROM {quoted(row['schema'])}.{quoted(row['name'])}"  # noqa: S608
        counts[f"{row['schema']}.{row['name']}"] = int(await conn.fetchval(sql))
    return counts


# Owners of, and grantees on, anything in the schemas: pg_restore recreates ownership and
# grants, which fail on a server that lacks the role (roles are the cluster's, not the
# database's, so no per-database dump holds them).
_ROLES = """
WITH ns AS (SELECT oid, nspowner, nspacl FROM pg_namespace WHERE nspname = ANY($1::text[])),
ids AS (
    SELECT nspowner AS id FROM ns
    UNION SELECT (aclexplode(nspacl)).grantee FROM ns
    UNION SELECT relowner FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns)
    UNION SELECT (aclexplode(relacl)).grantee FROM pg_class
          WHERE relnamespace IN (SELECT oid FROM ns)
    UNION SELECT proowner FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ns)
    UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc
          WHERE pronamespace IN (SELECT oid FROM ns)
    UNION SELECT typowner FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns)
    UNION SELECT defaclrole FROM pg_default_acl WHERE defaclnamespace IN (SELECT oid FROM ns)
)
SELECT rolname FROM pg_roles WHERE oid IN (SELECT id FROM ids) ORDER BY 1
"""

_OTHER_SCHEMAS = """
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname <> ALL($1::text[])
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND (n.nspname <> 'public' OR EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = n.oid))
ORDER BY 1
"""


@dataclass(frozen=True)
class Snapshot:
    taken_at: str
    server_version: str
    tables: dict[str, int]
    roles: list[str]
    other_schemas: list[str]


async def dump_database(url: str, schemas: list[str], pg_dump: str, path: Path) -> Snapshot:
    """pg_dump every schema from one snapshot, and count each table's rows in that same
    snapshot, so that the manifest describes exactly what the dump holds."""
    target, env = libpq_target(url)
    dump_major = major_version(await run_tool([pg_dump, "--version"]))
    conn = await asyncpg.connect(url, timeout=30)
    try:
        server_version = str(await conn.fetchval("SHOW server_version"))
        if dump_major < major_version(server_version):
            raise BackupError(
                f"pg_dump {dump_major} cannot dump a PostgreSQL {server_version} server: "
                "pass --pg-bin with the server's major version or newer"
            )
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot_id = await conn.fetchval("SELECT pg_export_snapshot()")
            taken_at = datetime.now(UTC).isoformat()
            present = {
                row["nspname"]
                for row in await conn.fetch(
                    "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", schemas
                )
            }
            missing = [schema for schema in schemas if schema not in present]
            if missing:
                raise BackupError(
                    f"schema(s) {', '.join(missing)} missing from {database_name(url)}: "
                    "each service creates its schema when it first starts"
                )
            tables = await table_counts(conn, schemas)
            roles = [row["rolname"] for row in await conn.fetch(_ROLES, schemas)]
            others = [row["nspname"] for row in await conn.fetch(_OTHER_SCHEMAS, schemas)]
            # The exporting transaction must stay open until pg_dump has taken the snapshot
            # up; it does so before anything else, and we wait for it to finish anyway.
            await run_tool(
                [
                    pg_dump,
                    f"--dbname={target}",
                    "--format=custom",
                    f"--file={path}",
                    f"--snapshot={snapshot_id}",
                    "--strict-names",
                    "--no-password",
                    "--lock-wait-timeout=60000",
                    *(f"--schema={schema}" for schema in schemas),
                ],
                env,
            )
    finally:
        await conn.close()
    return Snapshot(taken_at, server_version, tables, roles, others)


async def database_exists(url: str, name: str) -> bool:
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=30)
    try:
        return bool(await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def create_database(url: str, name: str) -> None:
    if _IDENTIFIER.match(name) is None:
        raise BackupError(f"will not create a database named {name!r}: use a-z, 0-9 and _")
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=30)
    try:
        await conn.execute(f"CREATE DATABASE {quoted(name)}")
    finally:
        await conn.close()


async def drop_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=30)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted(name)} WITH (FORCE)")
    finally:
        await conn.close()


async def check_target(url: str, schemas: list[str]) -> None:
    """The target database, if it exists, must hold none of the schemas."""
    name = database_name(url)
    if not await database_exists(url, name):
        return
    conn = await asyncpg.connect(url, timeout=30)
    try:
        taken = [
            row["nspname"]
            for row in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", schemas
            )
        ]
    finally:
        await conn.close()
    if taken:
        raise BackupError(
            f"{name} already has schema(s) {', '.join(sorted(taken))}: restore into a "
            "database without them (a new one, or after dropping them deliberately)"
        )


async def restore_database(
    url: str, manifest: dict[str, Any], dump: Path, pg_restore: str
) -> dict[str, Any]:
    """Into a database holding none of the schemas (created when missing), in one
    transaction; then every table must hold the rows the manifest counted."""
    schemas: list[str] = manifest["schemas"]
    name = database_name(url)
    created = False
    if not await database_exists(url, name):
        await create_database(url, name)
        created = True
    await check_target(url, schemas)
    conn = await asyncpg.connect(url, timeout=30)
    try:
        existing = {row["rolname"] for row in await conn.fetch("SELECT rolname FROM pg_roles")}
        roles_created = []
        for role in manifest["roles"]:
            if role not in existing:
                try:
                    await conn.execute(f"CREATE ROLE {quoted(role)} NOLOGIN")
                except asyncpg.InsufficientPrivilegeError as exc:
                    raise BackupError(
                        f"role {role} is missing and cannot be created here: create it first"
                    ) from exc
                roles_created.append(role)
        target, env = libpq_target(url)
        await run_tool(
            [
                pg_restore,
                f"--dbname={target}",
                "--exit-on-error",
                "--single-transaction",
                "--no-password",
                str(dump),
            ],
            env,
        )
        restored = await table_counts(conn, schemas)
    finally:
        await conn.close()
    expected: dict[str, int] = manifest["tables"]
    if restored != expected:
        differing = sorted(
            f"{table}: {expected.get(table)} in the backup, {restored.get(table)} restored"
            for table in set(expected) | set(restored)
            if expected.get(table) != restored.get(table)
        )
        raise BackupError("restored rows differ from the manifest: " + "; ".join(differing))
    return {
        "database": name,
        "database_created": created,
        "roles_created": roles_created,
        "tables": len(restored),
        "rows": sum(restored.values()),
    }


# --------------------------------------------------------------------------- Kafka

Offsets = dict[str, dict[int, int]]  # topic -> partition -> offset
Commit = dict[TopicPartition, tuple[int, str]]  # what to commit: offset and metadata


class Kafka:
    """The broker as the backup sees it: topics, their offsets, groups and theirs."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, request_timeout_ms=30_000
        )
        self.reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
        )

    @classmethod
    @asynccontextmanager
    async def connected(cls, bootstrap_servers: str) -> AsyncIterator[Kafka]:
        kafka = cls(bootstrap_servers)
        await kafka.admin.start()
        try:
            await kafka.reader.start()
            try:
                yield kafka
            finally:
                await kafka.reader.stop()
        finally:
            await kafka.admin.close()

    async def partitions(self, topics: list[str]) -> dict[str, int]:
        described = await self.admin.describe_topics(topics)
        found = {
            str(topic["topic"]): len(topic["partitions"])
            for topic in described
            if topic["error_code"] == 0 and topic["partitions"]
        }
        missing = sorted(set(topics) - set(found))
        if missing:
            raise BackupError(f"topic(s) missing on the broker: {', '.join(missing)}")
        return found

    async def watermarks(self, partitions: dict[str, int]) -> tuple[Offsets, Offsets]:
        """(first offset still held, next offset to be written) of every partition."""
        tps = [TopicPartition(t, p) for t, count in partitions.items() for p in range(count)]
        starts = await self.reader.beginning_offsets(tps)
        ends = await self.reader.end_offsets(tps)
        first: Offsets = {topic: {} for topic in partitions}
        last: Offsets = {topic: {} for topic in partitions}
        for tp in tps:
            first[tp.topic][tp.partition] = int(starts[tp])
            last[tp.topic][tp.partition] = int(ends[tp])
        return first, last

    async def committed(self, group: str, topics: tuple[str, ...]) -> Offsets:
        found = await self.admin.list_consumer_group_offsets(group)
        offsets: Offsets = {topic: {} for topic in topics}
        for tp, meta in found.items():
            if tp.topic in offsets and meta.offset >= 0:
                offsets[tp.topic][tp.partition] = int(meta.offset)
        return offsets

    async def committed_as_is(self, group: str, topics: tuple[str, ...]) -> Commit:
        """The group's committed offsets on ``topics`` with their metadata, to commit again."""
        found = await self.admin.list_consumer_group_offsets(group)
        return {
            tp: (int(meta.offset), str(meta.metadata or ""))
            for tp, meta in found.items()
            if tp.topic in topics and meta.offset >= 0
        }

    async def commit(self, group: str, wanted: Commit, seconds: float) -> None:
        """Commit as a consumer that never joins the group (a manual assignment has no
        generation), which the broker accepts only while the group has no members: a
        member would go on from its own positions and overwrite ours. Retried until
        ``seconds`` have passed, for members that are still leaving.

        aiokafka 0.14's describe_consumer_groups cannot be used to ask first: it reads a
        v3 answer with the v2 layout and fails on Kafka 4, so the commit is the question."""
        if not wanted:
            return
        deadline = time.monotonic() + seconds
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            try:
                consumer.assign(list(wanted))
                await asyncio.wait_for(consumer.commit(wanted), COMMIT_ATTEMPT_SECONDS)
                return
            except (CommitFailedError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"consumer group {group} refuses offsets set from outside: it still "
                        "has members. Stop every instance of the services first"
                    ) from exc
            finally:
                await consumer.stop()
            await asyncio.sleep(1.0)


# --------------------------------------------------------------------------- manifest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_offsets(offsets: Offsets) -> dict[str, dict[str, int]]:
    return {
        topic: {str(p): o for p, o in sorted(partitions.items())}
        for topic, partitions in offsets.items()
    }


def as_commit(offsets: Offsets, metadata: str) -> Commit:
    return {
        TopicPartition(topic, p): (offset, metadata)
        for topic, partitions in offsets.items()
        for p, offset in partitions.items()
    }


def _offsets(document: dict[str, dict[str, int]]) -> Offsets:
    return {topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in document.items()}


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, once the files it names are there with their checksums."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise BackupError(f"{directory} holds no {MANIFEST_FILE}: not a (complete) backup")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')}, this tool reads {FORMAT}")
    for name, described in manifest["files"].items():
        if sha256(directory / name) != described["sha256"]:
            raise BackupError(f"{directory / name} does not match its checksum: damaged")
    return manifest


# --------------------------------------------------------------------------- backup


def beyond(committed: Offsets, first: Offsets, last: Offsets) -> int:
    """Events on the group's topics past its saved offsets when the snapshot was done: an
    upper bound (some were handled before the snapshot) of what a restore onto a new,
    empty cluster cannot replay."""
    return sum(
        max(0, end - committed[topic].get(p, first[topic][p]))
        for topic in committed
        for p, end in last[topic].items()
    )


def prepare_directory(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: back up into a new directory")
    directory.mkdir(parents=True, exist_ok=True)


async def backup(
    directory: Path,
    endpoints: Endpoints,
    *,
    pg_bin: Path | None = None,
    before_snapshot: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Offsets first, then the snapshot (docs/operations.md says why). ``before_snapshot``
    runs between the two: tests use it to have work done in that window."""
    prepare_directory(directory)
    started = time.monotonic()
    found = discover_platform()
    topics = Topics.in_namespace(endpoints.namespace)
    consumed = {
        consumer_group(endpoints.namespace, group): tuple(
            topics.by_role(role).name for role in roles
        )
        for group, roles in found.groups.items()
    }
    produced = [topics.by_role(role).name for role in found.produced]
    names = sorted({*produced, *(name for names in consumed.values() for name in names)})
    pg_dump = pg_tool("pg_dump", pg_bin)
    dump = directory / DUMP_FILE

    async with Kafka.connected(endpoints.bootstrap_servers) as kafka:
        partitions = await kafka.partitions(names)
        offsets_read_at = datetime.now(UTC).isoformat()
        offsets = {group: await kafka.committed(group, read) for group, read in consumed.items()}
        say(f"offsets of {len(offsets)} consumer groups read")
        if before_snapshot is not None:
            await before_snapshot()
        snapshot = await dump_database(endpoints.database_url, list(found.schemas), pg_dump, dump)
        say(f"{len(found.schemas)} schemas dumped: {sum(snapshot.tables.values())} rows")
        # Read after the snapshot: a restore refuses when the platform's own topics have
        # grown past these, which means the platform has run on since the backup.
        first, last = await kafka.watermarks(partitions)

    if snapshot.other_schemas:
        say(f"not backed up (not a service's schema): {', '.join(snapshot.other_schemas)}")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "offsets_read_at": offsets_read_at,
        "snapshot_at": snapshot.taken_at,
        "namespace": endpoints.namespace,
        "database": database_name(endpoints.database_url),
        "schemas": list(found.schemas),
        "schemas_not_backed_up": snapshot.other_schemas,
        "tables": snapshot.tables,
        "roles": snapshot.roles,
        "groups": {
            group: {
                "topics": list(consumed[group]),
                "offsets": _json_offsets(offsets[group]),
                "events_beyond_offsets": beyond(offsets[group], first, last),
            }
            for group in sorted(offsets)
        },
        "produced_topics": produced,
        "topics": {
            name: {
                "partitions": partitions[name],
                "start": _json_offsets(first)[name],
                "end": _json_offsets(last)[name],
            }
            for name in names
        },
        "files": {DUMP_FILE: {"bytes": dump.stat().st_size, "sha256": sha256(dump)}},
        "tools": {
            "pg_dump": await run_tool([pg_dump, "--version"]),
            "postgresql_server": snapshot.server_version,
            "python": python_platform.python_version(),
            "aiokafka": aiokafka.__version__,
            "asyncpg": asyncpg.__version__,
        },
        "seconds": round(time.monotonic() - started, 2),
    }
    partial = directory / (MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    partial.replace(directory / MANIFEST_FILE)
    return manifest


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class OffsetPlan:
    offsets: dict[str, Offsets]  # group -> what to commit
    notes: list[str]


async def plan_offsets(
    kafka: Kafka, manifest: dict[str, Any], *, rewind: bool, accept_gaps: bool
) -> OffsetPlan:
    """What each group's offsets become, checked against the broker as it is now."""
    names = sorted(manifest["topics"])
    partitions = await kafka.partitions(names)
    first, last = await kafka.watermarks(partitions)
    grown = {
        f"{topic}[{p}]": last[topic][p] - end
        for topic in manifest["produced_topics"]
        for p, end in _offsets({topic: manifest["topics"][topic]["end"]})[topic].items()
        if p in last[topic] and last[topic][p] > end
    }
    if grown and not rewind:
        raise BackupError(
            f"the platform has published {sum(grown.values())} event(s) since this backup "
            f"(on {', '.join(sorted(grown)[:6])}{'…' if len(grown) > 6 else ''}): a restore "
            "would rewind it and redo that work; read docs/operations.md, then pass --rewind"
        )
    notes: list[str] = []
    gaps: list[str] = []
    plan: dict[str, Offsets] = {}
    held_then = _offsets({topic: held["start"] for topic, held in manifest["topics"].items()})
    for group, described in manifest["groups"].items():
        saved = _offsets(described["offsets"])
        plan[group] = {}
        for topic in described["topics"]:
            plan[group][topic] = {}
            for p in range(partitions[topic]):
                start, end = first[topic][p], last[topic][p]
                offset = saved.get(topic, {}).get(p)
                if offset is None:
                    # Never committed at the backup: from what the partition held then, as
                    # the services' auto_offset_reset=earliest would have read it.
                    offset = held_then.get(topic, {}).get(p, start)
                if offset > end:
                    notes.append(
                        f"{group}: {topic}[{p}] is shorter than at the backup "
                        "(topic recreated?): from its beginning"
                    )
                    offset = start
                elif offset < start:
                    gaps.append(f"{group}: {topic}[{p}] {offset}..{start - 1}")
                    offset = start
                plan[group][topic][p] = offset
    if gaps and not accept_gaps:
        raise BackupError(
            "events the restored services would need are gone from the topics (retention): "
            + "; ".join(gaps[:10])
            + ". Restoring would lose them; pass --accept-gaps to restore anyway"
        )
    notes.extend(f"lost to retention: {gap}" for gap in gaps)
    return OffsetPlan(plan, notes)


async def restore(
    directory: Path,
    endpoints: Endpoints,
    *,
    pg_bin: Path | None = None,
    offsets: bool = True,
    rewind: bool = False,
    accept_gaps: bool = False,
    group_wait: float = 60.0,
) -> dict[str, Any]:
    """Every schema into an empty database, then each group's offsets as they were.

    The broker is checked first (topics there, no gap, groups idle) so that a refusal
    leaves nothing half done; the offsets are set last, once the rows are all in."""
    manifest = read_manifest(directory)
    pg_restore = pg_tool("pg_restore", pg_bin)
    restore_major = major_version(await run_tool([pg_restore, "--version"]))
    if restore_major < major_version(manifest["tools"]["pg_dump"]):
        raise BackupError(
            f"pg_restore {restore_major} cannot read a dump of {manifest['tools']['pg_dump']}"
        )
    await check_target(endpoints.database_url, manifest["schemas"])
    metadata = f"restored from the backup of {manifest['created_at']}"
    plan: OffsetPlan | None = None
    if offsets:
        if endpoints.namespace != manifest["namespace"]:
            raise BackupError(
                f"the backup's offsets are for namespace {manifest['namespace']!r}, not "
                f"{endpoints.namespace!r}: use that namespace, or --no-offsets"
            )
        async with Kafka.connected(endpoints.bootstrap_servers) as kafka:
            plan = await plan_offsets(kafka, manifest, rewind=rewind, accept_gaps=accept_gaps)
            # Only an idle group takes the commit, so ask now rather than after the database
            # is restored: a group's own offsets committed again change nothing. A group
            # that has none on these topics gets the restored ones already: its consumers
            # would start at the beginning anyway, which is no later than those.
            for group, wanted in plan.offsets.items():
                as_is = await kafka.committed_as_is(group, tuple(wanted))
                await kafka.commit(group, as_is or as_commit(wanted, metadata), group_wait)

    report: dict[str, Any] = {
        "backup_created_at": manifest["created_at"],
        **await restore_database(
            endpoints.database_url, manifest, directory / DUMP_FILE, pg_restore
        ),
    }
    say(f"{report['tables']} tables restored, {report['rows']} rows, as the manifest counted")

    if plan is not None:
        async with Kafka.connected(endpoints.bootstrap_servers) as kafka:
            for group, wanted in plan.offsets.items():
                await kafka.commit(group, as_commit(wanted, metadata), group_wait)
                now = await kafka.committed(group, tuple(wanted))
                if now != wanted:
                    raise BackupError(f"group {group}: committed {now}, wanted {wanted}")
        say(f"offsets of {len(plan.offsets)} consumer groups set")
        report["groups"] = {group: _json_offsets(o) for group, o in plan.offsets.items()}
        report["notes"] = plan.notes
    return report


async def verify(
    directory: Path, endpoints: Endpoints, *, pg_bin: Path | None = None
) -> dict[str, Any]:
    """Restore the schemas into a scratch database beside the live one (the offsets are
    left alone), compare every table's rows with the manifest, drop the scratch database."""
    name = f"{database_name(endpoints.database_url)}_verify_{int(time.time())}"
    scratch = with_database(endpoints.database_url, name)
    try:
        report = await restore(
            directory, replace(endpoints, database_url=scratch), pg_bin=pg_bin, offsets=False
        )
    finally:
        await drop_database(endpoints.database_url, name)
    return {**report, "verified": True, "scratch_database_dropped": name}


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="backup.py",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--database-url", help="default: DATABASE_URL")
        sub.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
        sub.add_argument("--namespace", help="default: COMPLAINTS_TOPIC_NAMESPACE")
        sub.add_argument("--pg-bin", type=Path, help="folder of pg_dump/pg_restore to use")

    taking = commands.add_parser("backup", help="back up every schema and the group offsets")
    taking.add_argument("--to", type=Path, required=True, help="a new or empty directory")
    common(taking)
    giving = commands.add_parser("restore", help="restore a backup into an empty database")
    giving.add_argument("--from", dest="source", type=Path, required=True)
    giving.add_argument("--no-offsets", action="store_true", help="leave consumer groups alone")
    giving.add_argument(
        "--rewind", action="store_true", help="restore although the platform ran on since"
    )
    giving.add_argument(
        "--accept-gaps", action="store_true", help="restore although retention lost events"
    )
    giving.add_argument("--group-wait", type=float, default=60.0, help="seconds for idle groups")
    common(giving)
    checking = commands.add_parser("verify", help="restore into a scratch database and compare")
    checking.add_argument("--from", dest="source", type=Path, required=True)
    common(checking)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    defaults = Endpoints.from_environment()
    endpoints = Endpoints(
        args.database_url or defaults.database_url,
        args.bootstrap_servers or defaults.bootstrap_servers,
        args.namespace or defaults.namespace,
    )
    say(
        f"database {masked(endpoints.database_url)}, Kafka {endpoints.bootstrap_servers}, "
        f"namespace {endpoints.namespace}"
    )
    if args.command == "backup":
        manifest = await backup(args.to, endpoints, pg_bin=args.pg_bin)
        return {
            "backup": str(args.to),
            "schemas": manifest["schemas"],
            "rows": sum(manifest["tables"].values()),
            "groups": sorted(manifest["groups"]),
            "bytes": manifest["files"][DUMP_FILE]["bytes"],
            "seconds": manifest["seconds"],
        }
    if args.command == "restore":
        return await restore(
            args.source,
            endpoints,
            pg_bin=args.pg_bin,
            offsets=not args.no_offsets,
            rewind=args.rewind,
            accept_gaps=args.accept_gaps,
            group_wait=args.group_wait,
        )
    return await verify(args.source, endpoints, pg_bin=args.pg_bin)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A refused commit (a group still has members) is logged by aiokafka once per
    # partition and attempt; the one line this tool prints says it better.
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.CRITICAL)
    try:
        summary = asyncio.run(run(args))
    except BackupError as exc:
        say(f"error: {exc}")
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
