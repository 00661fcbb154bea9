"""Submissions that branch systems produce to the ``…submitted`` topic.

The same validation and the same outcome as over HTTP. Each outcome, accepted with
its number or rejected with reasons, goes to ``…submission-outcomes`` keyed by
branch id, through the outbox; a rejected message also goes to the dead-letter topic
with the reason in its headers, so its partition keeps flowing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.intake.cases import (
    Accepted,
    Intake,
    SubmissionConflictError,
    SubmissionRefusedError,
)
from shared.consumer import subscribe
from shared.contracts import RejectedMessageError
from shared.contracts.base import json_object
from shared.contracts.submissions import (
    FieldError,
    SubmissionAccepted,
    SubmissionRejected,
    SubmitComplaint,
)
from shared.topics import Topic

_OUTCOMES = uuid.UUID("1d0f7a52-2c4b-4d7e-9b1a-3e5c7f9a0b2d")


def decode_submission(raw: bytes) -> dict[str, Any]:
    return json_object(raw, "a submission")


def _context(document: dict[str, Any]) -> dict[str, str]:
    return {
        "branch_id": str(document.get("branch_id"))[:100],
        "submission_id": str(document.get("submission_id"))[:100],
    }


def _text_id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 100 else None


def subscribe_submissions(broker: KafkaBroker, topic: Topic, intake: Callable[[], Intake]) -> None:
    async def handle(document: dict[str, Any]) -> None:
        branch_id = _text_id(document.get("branch_id"))
        submission_id = _text_id(document.get("submission_id"))
        content = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
        correlation_id = str(uuid.uuid5(_OUTCOMES, f"{branch_id}/{submission_id}"))

        async def reject(errors: list[dict[str, Any]]) -> None:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            if branch_id is not None and submission_id is not None:
                await intake().publish_outcome(
                    SubmissionRejected(
                        event_id=uuid.uuid5(
                            _OUTCOMES, f"{branch_id}/{submission_id}/{content}/rejected"
                        ),
                        event_type=SubmissionRejected.EVENT_TYPE,
                        submission_id=submission_id,
                        branch_id=branch_id,
                        correlation_id=correlation_id,
                        errors=tuple(FieldError(loc=e["loc"], msg=e["msg"]) for e in errors),
                    )
                )
            raise RejectedMessageError(f"submission rejected: {reasons}")

        try:
            submission = SubmitComplaint.model_validate(document)
        except ValidationError as exc:
            await reject([{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()])
            return
        if submission.submission_id is None:
            await reject([{"loc": ["submission_id"], "msg": "required on Kafka"}])
            return
        key = submission.submission_id

        def accepted_outcome(accepted: Accepted) -> SubmissionAccepted:
            return SubmissionAccepted(
                event_id=uuid.uuid5(
                    _OUTCOMES, f"{submission.branch_id}/{key}/{submission.fingerprint()}/accepted"
                ),
                event_type=SubmissionAccepted.EVENT_TYPE,
                submission_id=key,
                branch_id=submission.branch_id,
                correlation_id=accepted.correlation_id,
                complaint_no=accepted.complaint_no,
                duplicate=accepted.duplicate,
            )

        try:
            await intake().accept(
                submission,
                correlation_id=correlation_id,
                submission_key=key,
                outcome=accepted_outcome,
            )
        except SubmissionRefusedError as exc:
            await reject([{"loc": e["loc"][1:], "msg": e["msg"]} for e in exc.errors])
        except SubmissionConflictError as exc:
            await reject([{"loc": ["submission_id"], "msg": str(exc)}])

    subscribe(
        broker,
        [topic],
        group_id="intake-submissions",
        decode=decode_submission,
        handle=handle,
        log_context=_context,
    )
