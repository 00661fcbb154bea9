"""A contract that has changed twice, registered only while a test needs it.

``ParcelWeighed`` v1 carried ``weight_kg`` (a float); v2 replaced it by ``weight_grams``
(an int), a change old documents cannot be read under, so v1 → v2 has an upcaster; v3
added ``scale_id`` with a default, an additive change that needs none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from shared.contracts import Event, base, upcaster

EVENT_TYPE = "ContractTestParcelWeighed"


def v1_document(**changes: Any) -> dict[str, Any]:
    """A document as the v1 producer wrote it (stored on a topic before the change)."""
    return {
        "event_id": "0b7f8f5e-2d59-4f4c-9f0e-3c3d2a6c7a10",
        "event_type": EVENT_TYPE,
        "schema_version": 1,
        "occurred_at": "2026-11-22T08:30:00Z",
        "complaint_no": "261122042",
        "branch_id": "furniture-demo",
        "correlation_id": "corr-evolution",
        "producer": "intake",
        "weight_kg": 2.5,
        **changes,
    }


@contextmanager
def evolved_contract() -> Iterator[type[Event]]:
    """``ParcelWeighed`` at v3 with its upcaster, in the registries until the block ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
        patch.setattr(base, "_UPCASTERS", dict(base._UPCASTERS))

        class ParcelWeighed(Event):
            EVENT_TYPE: ClassVar[str] = EVENT_TYPE
            schema_version: int = 3
            weight_grams: int
            scale_id: str = "unknown"

        @upcaster(EVENT_TYPE, from_version=1)
        def grams_not_kilograms(document: dict[str, Any]) -> dict[str, Any]:
            document["weight_grams"] = round(document.pop("weight_kg") * 1000)
            return document

        yield ParcelWeighed
