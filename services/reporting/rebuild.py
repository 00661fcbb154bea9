"""Rebuild every projection from the topics, from offset 0, and swap it in live.

    python -m services.reporting.rebuild

1. A fresh schema gets reporting's migrations; every event on the topics reporting
   reads, from the beginning to the current end, is applied to it (its indexes but the
   unique ones are built afterwards, and the rollups are counted once at the end instead
   of kept up event by event).
2. Under an exclusive lock that live projecting takes shared (so the consumer pauses for
   a moment and the API keeps answering from the old tables), the events that arrived
   meanwhile are applied too, then the old schema is dropped and the new one takes its
   name, in one transaction.
3. The consumer goes on where its group's offsets are; what it re-reads is skipped by the
   new schema's inbox, which the rebuild filled.

The audit trail of record reads is not all on the topics: reporting's own case-file reads
are only in its table (and intake's may outlive the topic's retention). It is carried
over into the fresh schema, all of it before the lock and what was added since under it
(case-file reads take the lock shared, so none lands in the old schema afterwards).

Undecodable records (they went to the dead-letter topic when first read) are skipped.

Speed: records are read in large batches, each applied in one transaction with set-based
statements (``EventBatch``), while the next batch is fetched, decoded and folded into rows;
no NOTIFY per batch (the swap sends one) and no wait for the WAL flush of each batch's
commit (the swap's commit flushes it all; a crash before it leaves only the abandoned
fresh schema).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from services.reporting import rollups
from services.reporting.app import MIGRATIONS, SCHEMA, SUBSCRIBES_TO
from services.reporting.projections import CHANGED_CHANNEL, SWAP_LOCK, EventBatch
from services.reporting.settings import ReportingSettings
from shared.contracts import Event, RejectedMessageError, current_version, decode_event
from shared.contracts.base import registered_event_types
from shared.db import apply_migrations
from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.logging import configure_logging
from shared.topics import Topics

# Records per transaction: large enough that statements and commits cost little per event,
# small enough that a batch and the next one being decoded stay a few MB.
BATCH = 5000
# The relay's event_type header names the model, so the body is validated straight from
# its JSON (pydantic's core parses it; no dict in between).
MODELS = {name.encode(): model for name, model in registered_event_types().items()}
VERSIONS = {model: str(current_version(model)).encode() for model in MODELS.values()}
log = structlog.get_logger("reporting.rebuild")
# The second copy of the audit trail goes back this far before the first one began: a
# case-file read's transaction, begun before it and committed after, lasts far less, and
# the service's clock, which stamps the entries, is nowhere near that far from the
# database's.
TRAIL_OVERLAP = timedelta(hours=1)
_TRAIL = (
    "event_id, read_at, service, reader, reader_roles, reason, outcome, contacts_shown, "
    "complaint_no, branch_id"
)


@dataclass(frozen=True)
class Rebuilt:
    events: int
    skipped: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(settings: ReportingSettings) -> Rebuilt:
    started = time.monotonic()
    fresh = f"{SCHEMA}_rebuild_{int(time.time())}"
    await apply_migrations(settings.database_url, fresh, MIGRATIONS)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    names = [topics.by_role(role).name for role in SUBSCRIBES_TO]
    security = KafkaSecurity.from_settings(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # At the ends a fetch waits this long for records, and the end offsets asked for
        # under the swap lock wait behind it: short, so live projecting pauses only briefly.
        fetch_max_wait_ms=50,
        **security.client_options(),
    )
    await consumer.start()
    target = await asyncpg.connect(
        settings.database_url,
        server_settings={"search_path": fresh, "synchronous_commit": "off"},
    )
    swap = await asyncpg.connect(settings.database_url)
    try:
        partitions = await _partitions(settings.kafka_bootstrap_servers, names, security)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        indexes = await _set_indexes_aside(swap, fresh)
        triggers = await _rollup_triggers(swap, fresh)
        await _set_triggers(swap, triggers, enabled=False)
        applied, skipped = await _apply_until_end(consumer, partitions, target, bulk=True)
        trail_copied_at: datetime = await swap.fetchval("SELECT now()")
        await _carry_trail_over(swap, fresh)
        for definition in indexes:
            await swap.execute(definition)
        async with target.transaction():
            await rollups.refresh(target, settings.report_timezone)
        # From here on the rollups follow each event, as they do live.
        await _set_triggers(swap, triggers, enabled=True)
        async with swap.transaction():
            # Live projecting holds this shared: from here it waits until the swap is done.
            await swap.execute("SELECT pg_advisory_xact_lock($1)", SWAP_LOCK)
            more, more_skipped = await _apply_until_end(consumer, partitions, target, bulk=False)
            applied, skipped = applied + more, skipped + more_skipped
            await _carry_trail_over(swap, fresh, since=trail_copied_at - TRAIL_OVERLAP)
            await swap.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await swap.execute(f"ALTER SCHEMA {fresh} RENAME TO {SCHEMA}")
            # Dashboards read the rebuilt projections once this commits.
            await swap.execute("SELECT pg_notify($1, '')", CHANGED_CHANNEL)
    except BaseException:
        await swap.execute(f"DROP SCHEMA IF EXISTS {fresh} CASCADE")
        raise
    finally:
        await consumer.stop()
        await target.close()
        await swap.close()
    result = Rebuilt(applied, skipped, time.monotonic() - started)
    log.info(
        "projections rebuilt",
        events=result.events,
        skipped=result.skipped,
        events_per_second=round(result.per_second),
    )
    return result


async def _carry_trail_over(
    conn: asyncpg.Connection, fresh: str, since: datetime | None = None
) -> None:
    """Copy the live schema's audit trail (the reads at or after ``since``; None: all)
    into ``fresh``; an entry it has already (intake's, from the topic) is kept once."""
    if await conn.fetchval("SELECT to_regclass($1)", f"{SCHEMA}.record_reads") is None:
        return  # a schema from before the trail
    window, params = ("", []) if since is None else ("WHERE read_at >= $1", [since])
    await conn.execute(
        f"""INSERT INTO {fresh}.record_reads ({_TRAIL})
            SELECT {_TRAIL} FROM {SCHEMA}.record_reads {window}
            ON CONFLICT (event_id) DO NOTHING""",  # noqa: S608 -- our schema names
        *params,
    )


async def _set_indexes_aside(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Drop the schema's indexes but those of primary keys and unique constraints (which
    the writes need); their definitions, to build them again once the bulk is in: one
    pass over the rows costs the database less than keeping them up row by row."""
    indexes = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name,
                  pg_get_indexdef(i.indexrelid) AS definition
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE c.relnamespace = $1::regnamespace AND NOT i.indisunique""",
        schema,
    )
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    return [index["definition"] for index in indexes]


async def _rollup_triggers(conn: asyncpg.Connection, schema: str) -> list[tuple[str, str]]:
    """(table, trigger) of the schema's triggers: those that keep the rollups."""
    rows = await conn.fetch(
        """SELECT t.tgrelid::regclass::text AS table_name, t.tgname
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal""",
        schema,
    )
    return [(row["table_name"], row["tgname"]) for row in rows]


async def _set_triggers(
    conn: asyncpg.Connection, triggers: list[tuple[str, str]], *, enabled: bool
) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    for table, trigger in triggers:
        await conn.execute(f'ALTER TABLE {table} {action} TRIGGER "{trigger}"')


async def _partitions(
    bootstrap: str, names: list[str], security: KafkaSecurity = PLAINTEXT
) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        TopicPartition(str(topic["topic"]), int(partition["partition"]))
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    ]


async def _apply_until_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    target: asyncpg.Connection,
    *,
    bulk: bool,
) -> tuple[int, int]:
    """Apply every record up to the partitions' end offsets as they are now (``bulk``:
    the cases' derived columns left to one recount at the end, see ``EventBatch.apply``)."""
    ends = await consumer.end_offsets(partitions)
    applied = skipped = 0
    # The next batch is fetched, decoded and folded while the database applies this one.
    reading = asyncio.create_task(_read(consumer, ends))
    try:
        while (read := await reading) is not None:
            batch, undecodable = read
            skipped += undecodable
            reading = asyncio.create_task(_read(consumer, ends))
            async with target.transaction():
                applied += await batch.apply(target, notify=False, bulk=bulk)
    finally:
        reading.cancel()
    return applied, skipped


async def _read(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> tuple[EventBatch, int] | None:
    """The next records, decoded and folded, and how many could not be decoded; None once
    at the ends."""
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            break
    else:
        return None
    batches = await consumer.getmany(*ends, timeout_ms=1000, max_records=BATCH)
    events: list[Event] = []
    undecodable = 0
    for records in batches.values():
        for record in records:
            # Records past the end fetched along are applied too: they are events.
            if record.value is None:
                continue
            event = _decode(record)
            if event is None:
                undecodable += 1
            else:
                events.append(event)
    return EventBatch(events), undecodable


def _decode(record: ConsumerRecord[bytes, bytes]) -> Event | None:
    """The record's event; None for what every consumer rejects or does not know."""
    assert record.value is not None
    headers = dict(record.headers)
    model = MODELS.get(headers.get("event_type", b""))
    # Straight to the model only for its own version: an older one may need upcasting.
    if model is not None and headers.get("schema_version") == VERSIONS[model]:
        try:
            return model.model_validate_json(record.value)
        except ValidationError:
            pass  # a header the body belies, or a bad body: judged as every consumer does
    try:
        return decode_event(record.value)
    except RejectedMessageError:
        return None


def main() -> int:
    settings = ReportingSettings()
    configure_logging("reporting", settings.log_level)
    # A rebuild makes millions of short-lived, acyclic objects (events, rows): with the
    # default thresholds the collector's passes over them and over every imported module's
    # objects took a third of its CPU. Those are frozen out; young passes run less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    result = asyncio.run(rebuild(settings))
    print(
        f"rebuilt the reporting projections from {result.events} events "
        f"({result.skipped} skipped) in {result.seconds:.1f} s, "
        f"{result.per_second:.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
