from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.logging import configure_logging
from shared.redact import mask_email, mask_phone, redact_text


def test_masks() -> None:
    assert mask_email("zhang.wei@example.com") == "z***@example.com"
    assert mask_phone("+86 138 0013 8000") == "***8000"
    text = redact_text("call 13800138000 or write to li.na@example.cn about 261122001")
    assert "13800138000" not in text
    assert "li.na@" not in text
    assert "***8000" in text
    assert "l***@example.cn" in text


def test_identifiers_are_not_mistaken_for_phone_numbers() -> None:
    # A UUID whose middle groups are all digits looks like "4164-8913-9527".
    correlation_id = "61a56627-4164-8913-9527-c0b7c0d4578e"
    assert redact_text(f"correlation {correlation_id}") == f"correlation {correlation_id}"
    assert redact_text(f"{correlation_id} 138-0013-8000") == f"{correlation_id} ***8000"


def test_credentials_in_free_text_are_masked() -> None:
    access_line = '127.0.0.1:5000 - "GET /survey/261122001?token=3f1c9a&lang=zh HTTP/1.1" 200'
    assert redact_text(access_line) == (
        '127.0.0.1:5000 - "GET /survey/261122001?token=***&lang=zh HTTP/1.1" 200'
    )
    key = "cbk_0123456789ab_Zm9vYmFyYmF6cXV4LWxvbmctc2VjcmV0LXZhbHVl"
    assert redact_text(f"refused {key}") == "refused cbk_***"
    jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJmby1hZ2VudCJ9.c2lnbmF0dXJl"
    assert redact_text(f"Bearer {jwt} expired") == "Bearer *** expired"


def test_log_lines_are_json_and_carry_no_contact_details(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = configure_logging("test", "INFO")
    with structlog.contextvars.bound_contextvars(complaint_no="261122001", correlation_id="corr-1"):
        logger.info(
            "customer called",
            phone="+86 138 0013 8000",
            note="reach me at zhang.wei@example.com",
            password="hunter2",
        )
        logging.getLogger("some.library").warning("retrying 13800138000")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["complaint_no"] == "261122001"
    assert first["correlation_id"] == "corr-1"
    assert first["service"] == "test"
    rendered = json.dumps(lines, ensure_ascii=False)
    for secret in ("13800138000", "138 0013 8000", "zhang.wei@", "hunter2"):
        assert secret not in rendered
    assert second["complaint_no"] == "261122001"
