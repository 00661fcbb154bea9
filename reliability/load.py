"""Steady load that survives the faults: branches that retry until they have an answer.

The benchmark's driver (bench/run.py ``drive``) sends each submission once and counts a
failure as an error; under faults that would make "lost" ambiguous (did the platform lose
it, or did the driver give up?). Here every submission is retried, under its own key,
until intake answers 201 (HTTP) or the broker acknowledges the record (Kafka), as a
branch system would: intake's idempotency then guarantees one complaint per key, and the
reconciliation can hold the platform to every key it was given. The submissions
themselves are the benchmark's (bench/staff.py ``plan``: the demo's planner, every
customer reachable by e-mail, every complaint urgent so quiet hours hold nothing back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bench.run import api_headers
from bench.staff import StaffAtWork, plan
from shared.policy import PackRegistry
from shared.topics import Topics

log = structlog.get_logger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_FIRST_S = 0.2
BACKOFF_CAP_S = 2.0
HTTP_TIMEOUT_S = 10.0
KAFKA_REQUEST_TIMEOUT_MS = 15_000

Path_ = Literal["http", "kafka"]


@dataclass
class Submission:
    """One complaint a branch wants recorded, and what it has heard back so far."""

    key: str
    branch_id: str
    path: Path_
    body: dict[str, Any]
    answered: list[str] = field(default_factory=list)  # complaint numbers in 201s
    sent: bool = False  # Kafka: the broker acknowledged the record at least once
    rejected: str | None = None
    attempts: int = 0
    gave_up: bool = False

    @property
    def confirmed(self) -> bool:
        return bool(self.answered) if self.path == "http" else self.sent


@dataclass
class Outcomes:
    """What intake told Kafka branches: complaint numbers (and rejections) per key."""

    accepted: dict[str, list[str]] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    records: int = 0


def backoff(attempt: int, rng: random.Random) -> float:
    return float(min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2**attempt) * (0.5 + rng.random()))


class LoadDriver:
    """Submits ``rate`` complaints a second over HTTP and Kafka, each until it is taken."""

    def __init__(
        self,
        registry: PackRegistry,
        intake_url: str,
        bootstrap: str,
        topics: Topics,
        *,
        rate: float,
        kafka_share: float,
        run_id: str,
        seed: int = 0,
        staff: StaffAtWork | None = None,
    ) -> None:
        self._packs = [registry.packs[name] for name in sorted(registry.packs)]
        self._intake_url = intake_url
        self._bootstrap = bootstrap
        self._topics = topics
        self._rate = rate
        self._kafka_share = kafka_share
        self._run_id = run_id
        self._rng = random.Random(seed)
        self._staff = staff
        self._tasks: list[asyncio.Task[None]] = []
        self._planned: dict[str, Any] = {}  # what the staff walker needs to work a case
        self._give_up_at = float("inf")
        self.submissions: list[Submission] = []
        self.errors: Counter[str] = Counter()
        self.http_latency_ms: list[float] = []

    async def run(self, seconds: float, *, retry_for: float) -> None:
        """Submit for ``seconds``; then let each submission retry for ``retry_for`` more."""
        self._give_up_at = time.monotonic() + seconds + retry_for
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS,
        )
        await self._start_when_reachable(producer)
        try:
            async with httpx.AsyncClient(
                base_url=self._intake_url, timeout=HTTP_TIMEOUT_S, headers=api_headers()
            ) as http:
                await self._submit_for(seconds, http, producer)
                await asyncio.gather(*self._tasks)
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _start_when_reachable(self, producer: AIOKafkaProducer) -> None:
        for attempt in range(60):
            try:
                await producer.start()
                return
            except KafkaError:
                await asyncio.sleep(backoff(attempt, self._rng))
        await producer.start()

    async def _submit_for(
        self, seconds: float, http: httpx.AsyncClient, producer: AIOKafkaProducer
    ) -> None:
        started = time.monotonic()
        for seq in range(int(seconds * self._rate)):
            await asyncio.sleep(max(0.0, started + seq / self._rate - time.monotonic()))
            submission = self._plan(seq)
            self.submissions.append(submission)
            if submission.path == "http":
                task = self._submit_http(submission, http)
            else:
                task = self._submit_kafka(submission, producer)
            self._tasks.append(asyncio.create_task(task))

    def _plan(self, seq: int) -> Submission:
        pack = self._packs[seq % len(self._packs)]
        planned = plan(pack, self._rng, seq, self._run_id)
        path: Path_ = "kafka" if self._rng.random() < self._kafka_share else "http"
        submission = Submission(planned.key, planned.branch_id, path, planned.body)
        self._planned[planned.key] = planned
        return submission

    async def _submit_http(self, submission: Submission, http: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": submission.key}
        for attempt in range(1_000_000):
            if time.monotonic() > self._give_up_at:
                submission.gave_up = True
                return
            submission.attempts += 1
            began = time.perf_counter()
            try:
                answer = await http.post("/v1/complaints", json=submission.body, headers=headers)
            except httpx.HTTPError as exc:
                self.errors[f"http {type(exc).__name__}"] += 1
                await asyncio.sleep(backoff(attempt, self._rng))
                continue
            self.http_latency_ms.append((time.perf_counter() - began) * 1000)
            if answer.status_code == 201:
                self._accepted(submission, answer.json()["complaint_no"])
                return
            self.errors[f"http {answer.status_code}"] += 1
            if answer.status_code not in RETRYABLE_STATUS:
                submission.rejected = f"{answer.status_code}: {answer.text[:300]}"
                return
            await asyncio.sleep(backoff(attempt, self._rng))

    def _accepted(self, submission: Submission, complaint_no: str) -> None:
        first = not submission.answered
        submission.answered.append(complaint_no)
        if first and self._staff is not None:
            self._staff.accepted(complaint_no, self._planned[submission.key])

    async def _submit_kafka(self, submission: Submission, producer: AIOKafkaProducer) -> None:
        message = json.dumps({**submission.body, "submission_id": submission.key}).encode()
        for attempt in range(1_000_000):
            if time.monotonic() > self._give_up_at:
                submission.gave_up = True
                return
            submission.attempts += 1
            try:
                await producer.send_and_wait(
                    self._topics.submitted.name, message, key=submission.branch_id.encode()
                )
            except KafkaError as exc:
                self.errors[f"kafka {type(exc).__name__}"] += 1
                await asyncio.sleep(backoff(attempt, self._rng))
                continue
            submission.sent = True
            return

    def report(self) -> dict[str, Any]:
        by_path = Counter(s.path for s in self.submissions)
        return {
            "submitted": len(self.submissions),
            "submitted_http": by_path["http"],
            "submitted_kafka": by_path["kafka"],
            "confirmed": sum(s.confirmed for s in self.submissions),
            "attempts": sum(s.attempts for s in self.submissions),
            "rejected": sum(s.rejected is not None for s in self.submissions),
            "gave_up": sum(s.gave_up for s in self.submissions),
            "errors_retried": dict(self.errors),
        }


async def read_topic(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    """Every record on ``topic`` so far: a plain read from the start, no consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=500)
            values.extend(r.value or b"" for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return values


async def read_outcomes(bootstrap: str, topics: Topics) -> Outcomes:
    """What intake told the Kafka branches, from ``…submission-outcomes``."""
    topic = topics.submission_outcomes
    outcomes = Outcomes()
    for raw in await read_topic(bootstrap, topic.name, topic.partitions):
        _take_outcome(outcomes, raw)
    return outcomes


def _take_outcome(outcomes: Outcomes, raw: bytes) -> None:
    outcomes.records += 1
    document = json.loads(raw)
    key = str(document.get("submission_id"))
    if document.get("event_type") == "SubmissionAccepted":
        outcomes.accepted.setdefault(key, []).append(str(document["complaint_no"]))
    elif document.get("event_type") == "SubmissionRejected":
        outcomes.rejected.setdefault(key, []).append(json.dumps(document.get("errors"))[:300])
