from __future__ import annotations

import pytest

from docs.asyncapi.generate import OUTPUT, documents


@pytest.mark.parametrize("name", sorted(documents()))
def test_the_committed_asyncapi_document_is_current(name: str) -> None:
    committed = (OUTPUT / name).read_text(encoding="utf-8")
    assert committed == documents()[name], "run `make docs` and commit docs/asyncapi/"


def test_every_consumed_event_has_a_payload_schema() -> None:
    import yaml

    reporting = yaml.safe_load(documents()["reporting.yaml"])
    schemas = reporting["components"]["schemas"]
    for message in reporting["components"]["messages"].values():
        assert message["payload"]["$ref"].rsplit("/", 1)[1] in schemas
    assert set(reporting["components"]["messages"]) == {
        "ComplaintReceived",
        "ComplaintAssigned",
        "ClockStarted",
        "NotificationSent",
        "NotificationFailed",
    }
