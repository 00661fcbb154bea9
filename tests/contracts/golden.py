"""The golden samples: the exact JSON each producer emits and every consumer parses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"


def golden_samples() -> dict[str, dict[str, Any]]:
    """Each message type's sample at its latest version (``Name.v2.json`` over ``.v1``)."""
    return {
        path.name.split(".")[0]: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(GOLDEN_DIR.glob("*.json"), key=_name_and_version)
    }


def _name_and_version(path: Path) -> tuple[str, int]:
    name, version, _ = path.name.split(".")
    return name, int(version.removeprefix("v"))


def same_shape(document: Any, golden: Any) -> bool:
    """Same keys at every level where both have a value (optional parts may be empty)."""
    if document is None or golden is None:
        return True
    if isinstance(document, dict) and isinstance(golden, dict):
        return set(document) == set(golden) and all(
            same_shape(document[key], golden[key]) for key in document
        )
    if isinstance(document, list) and isinstance(golden, list):
        return not document or not golden or same_shape(document[0], golden[0])
    return isinstance(document, dict | list) == isinstance(golden, dict | list)
