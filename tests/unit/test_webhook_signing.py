from __future__ import annotations

import hashlib
import hmac

import pytest

from services.notify.channels.webhook import sign, verify_signature

SECRET = "whsec-test"
BODY = b'{"complaint_no":"261122001","text":"\xe5\xb7\xb2\xe5\x8f\x97\xe7\x90\x86"}'
NOW = 1_795_000_000.0
TIMESTAMP = str(int(NOW))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{TIMESTAMP}.".encode() + BODY, hashlib.sha256)
    assert sign(SECRET, TIMESTAMP, BODY) == f"sha256={expected.hexdigest()}"


def test_a_genuine_post_verifies() -> None:
    signature = sign(SECRET, TIMESTAMP, BODY)
    assert verify_signature(SECRET, TIMESTAMP, BODY, signature, 300, NOW + 299)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        pytest.param(SECRET, TIMESTAMP, BODY.replace(b"001", b"002"), NOW, id="tampered body"),
        pytest.param(SECRET, TIMESTAMP, BODY + b" ", NOW, id="body with a byte added"),
        pytest.param("another-secret", TIMESTAMP, BODY, NOW, id="wrong secret"),
        pytest.param(SECRET, str(int(NOW) + 1), BODY, NOW, id="timestamp changed"),
        pytest.param(SECRET, TIMESTAMP, BODY, NOW + 301, id="too old: a replay"),
        pytest.param(SECRET, TIMESTAMP, BODY, NOW - 301, id="from the future"),
    ],
)
def test_anything_changed_fails(secret: str, timestamp: str, body: bytes, now: float) -> None:
    signature = sign(SECRET, TIMESTAMP, BODY)
    assert not verify_signature(secret, timestamp, body, signature, 300, now)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        pytest.param("yesterday", sign(SECRET, "yesterday", BODY), id="timestamp not a number"),
        pytest.param(
            TIMESTAMP, sign(SECRET, TIMESTAMP, BODY).removeprefix("sha256="), id="no scheme"
        ),
        pytest.param(TIMESTAMP, sign(SECRET, TIMESTAMP, BODY).upper(), id="case changed"),
        pytest.param(TIMESTAMP, "", id="empty"),
        pytest.param(TIMESTAMP, "sha256=é", id="not ASCII"),
    ],
)
def test_malformed_headers_fail(timestamp: str, signature: str) -> None:
    assert not verify_signature(SECRET, timestamp, BODY, signature, 300, NOW)
