from __future__ import annotations

import pytest

from docs.asyncapi.generate import OUTPUT, documents
from shared.asyncapi import message_name
from shared.contracts import MESSAGES_BY_TOPIC_ROLE


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
    expected = {
        message_name(model)
        for role in ("intake", "routing", "sla", "notify", "record-reads")
        for model in MESSAGES_BY_TOPIC_ROLE[role]
    }
    assert set(reporting["components"]["messages"]) == expected
    assert {"ComplaintReceived", "ComplaintClosed", "ClockStarted"} <= expected


def test_intake_documents_the_submission_contract_for_branch_systems() -> None:
    import yaml

    intake = yaml.safe_load(documents()["intake.yaml"])
    assert intake["operations"]["receive_complaints_submitted"]["action"] == "receive"
    assert "SubmitComplaint" in intake["components"]["schemas"]
    outcomes = intake["channels"]["complaints_submission-outcomes"]["messages"]
    assert set(outcomes) == {"SubmissionAccepted", "SubmissionRejected"}
