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


def test_every_operation_but_the_customers_feedback_asks_who_is_calling() -> None:
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            by_customer = path == "/v1/complaints/{complaint_no}/feedback"
            assert ("security" in operation) is not by_customer, f"{method} {path}"
            assert ("401" in operation["responses"]) is not by_customer, f"{method} {path}"
            assert "403" in operation["responses"], f"{method} {path}"


def test_a_record_read_needs_a_reason_and_an_action_is_taken_as_the_caller() -> None:
    read = OPENAPI["paths"]["/v1/complaints/{complaint_no}"]["get"]
    reason = next(p for p in read["parameters"] if p["name"] == "x-access-reason")
    assert reason["in"] == "header"
    assert reason["required"] is True
    for name in ("Acknowledge", "AddNote", "Reassign"):
        schema = OPENAPI["components"]["schemas"][name]
        assert "actor" not in schema.get("required", [])
        assert all("actor" not in example for example in schema["examples"])
