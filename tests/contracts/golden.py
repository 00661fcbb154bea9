"""The golden samples: the exact JSON each producer emits and every consumer parses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"


def golden_samples() -> dict[str, dict[str, Any]]:
    return {
        path.name.split(".")[0]: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(GOLDEN_DIR.glob("*.json"))
    }


def shape(document: Any) -> Any:
    """The key structure of a JSON document, without its values."""
    if isinstance(document, dict):
        return {key: shape(value) for key, value in document.items()}
    if isinstance(document, list):
        return [shape(value) for value in document[:1]]
    return None
