"""A service's Prometheus metrics, in a registry of its own (services built side by side in
one test process must not share one).

Besides the service's business counters and FastStream's consumer and publisher metrics
(``KafkaPrometheusMiddleware``, on every broker), two readings are taken at scrape time:
``outbox_depth``, the outbox rows not yet published, and ``consumer_lag`` per consumed
partition. docs/operations.md ("Observability") lists them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import asyncpg
import structlog
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

# A scrape must answer within Prometheus's default 10 s timeout, however slow the readings.
READING_TIMEOUT_S = 1.0

PoolGetter = Callable[[], asyncpg.Pool | None]


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self._readings: list[Callable[[], Awaitable[None]]] = []

    def counter(self, name: str, documentation: str, label: str) -> Counter:
        """A counter with one label, whose values must be few: ids from the policy packs,
        channel names; never a complaint number or a customer's contact."""
        return Counter(name, documentation, [label], registry=self.registry)

    def broker_middleware(self) -> KafkaPrometheusMiddleware:
        return KafkaPrometheusMiddleware(registry=self.registry, app_name=self.service)

    def watch_outbox(self, pool: PoolGetter) -> None:
        depth = Gauge(
            "outbox_depth", "Outbox rows not yet published to Kafka.", registry=self.registry
        )

        async def read() -> None:
            current = pool()
            if current is None:
                return
            # The partial index on unpublished rows keeps this an index-only count.
            count = await current.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                timeout=READING_TIMEOUT_S,
            )
            depth.set(count)

        self._readings.append(read)

    def watch_consumers(self, subscribers: Callable[[], Sequence[object]]) -> None:
        lag = _ConsumerLag(subscribers)
        self.registry.register(lag)
        self._readings.append(lag.read)

    async def exposition(self) -> bytes:
        """The text format, with the readings taken now; one that fails keeps its last
        value (the database or broker being down shows on /ready)."""
        for outcome in await asyncio.gather(
            *(asyncio.wait_for(read(), READING_TIMEOUT_S) for read in self._readings),
            return_exceptions=True,
        ):
            if isinstance(outcome, Exception):
                log.debug("metric reading failed", error=repr(outcome))
        return generate_latest(self.registry)


@runtime_checkable
class _Consuming(Protocol):
    """A FastStream Kafka subscriber: ``consumer`` is its aiokafka consumer while it runs."""

    @property
    def consumer(self) -> Any: ...


def partition_lag(end_offset: int, position: int) -> int:
    """Records on the partition that the consumer has not yet been given."""
    return max(end_offset - position, 0)


class _ConsumerLag(Collector):
    """``consumer_lag``: per assigned partition, its end offset (asked of the broker at the
    scrape) less the consumer's position. The position moves when a batch is handed to
    the handler, so the batch being handled (up to 500 records) is not counted."""

    def __init__(self, subscribers: Callable[[], Sequence[object]]) -> None:
        self._subscribers = subscribers
        self._lags: dict[tuple[str, int], int] = {}

    async def read(self) -> None:
        lags: dict[tuple[str, int], int] = {}
        for subscriber in self._subscribers():
            if isinstance(subscriber, _Consuming) and subscriber.consumer is not None:
                lags.update(await _lags(subscriber.consumer))
        self._lags = lags

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "consumer_lag",
            "Records on a consumed partition not yet handed to this consumer.",
            labels=["topic", "partition"],
        )
        for (topic, partition), lag in sorted(self._lags.items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


async def _lags(consumer: Any) -> dict[tuple[str, int], int]:
    assigned = list(consumer.assignment())
    if not assigned:
        return {}
    ends = await consumer.end_offsets(assigned)

    async def position(partition: Any) -> int | None:
        # Right after an assignment the position waits for the committed offset.
        try:
            return int(await asyncio.wait_for(consumer.position(partition), 0.2))
        except Exception:  # unassigned meanwhile, or not known yet
            return None

    positions = await asyncio.gather(*(position(partition) for partition in assigned))
    return {
        (partition.topic, partition.partition): partition_lag(ends[partition], at)
        for partition, at in zip(assigned, positions, strict=True)
        if at is not None and partition in ends
    }
