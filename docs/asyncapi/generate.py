"""Write docs/asyncapi/<service>.yaml from each service's declared topics and the contracts.

Run with `make docs`; a test fails when the committed documents are out of date.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import yaml

from shared.asyncapi import service_document
from shared.topics import Topics

SERVICES = ("intake", "routing", "sla", "notify", "reporting")
OUTPUT = Path(__file__).resolve().parent
TOPICS = Topics.in_namespace()  # documents name the default namespace


class _PlainDumper(yaml.SafeDumper):
    """Writes shared sub-documents out in full instead of as YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def documents() -> dict[str, str]:
    rendered: dict[str, str] = {}
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.app")
        document: dict[str, Any] = service_document(
            service,
            (module.__doc__ or service).strip().splitlines()[0],
            publishes=tuple(TOPICS.by_role(role) for role in module.PUBLISHES),
            subscribes=tuple(TOPICS.by_role(role) for role in module.SUBSCRIBES_TO),
        )
        rendered[f"{service}.yaml"] = yaml.dump(
            document, Dumper=_PlainDumper, allow_unicode=True, sort_keys=False, width=100
        )
    return rendered


def main() -> int:
    for name, text in documents().items():
        (OUTPUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
