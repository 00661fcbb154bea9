from __future__ import annotations

from typing import Any

from services.intake.app import build_app
from services.intake.settings import IntakeSettings

OPENAPI: dict[str, Any] = build_app(IntakeSettings()).openapi()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = OPENAPI["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def test_every_request_body_has_an_example() -> None:
    bodies = 0
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            bodies += 1
            media = body["content"]["application/json"]
            schema = _resolve(media["schema"])
            examples = (
                media.get("examples") or media["schema"].get("examples") or schema.get("examples")
            )
            assert examples, f"{method.upper()} {path} has no example"
    assert bodies == 20  # submission, 17 staff actions, feedback, service volume


def test_refusals_are_documented() -> None:
    acknowledge = OPENAPI["paths"]["/v1/complaints/{complaint_no}/acknowledge"]["post"]
    assert {"200", "404", "409", "422"} <= set(acknowledge["responses"])
    submit = OPENAPI["paths"]["/v1/complaints"]["post"]
    assert {"201", "409", "413", "422", "503"} <= set(submit["responses"])
