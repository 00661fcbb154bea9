"""Masking of personal contact details, and of credentials, before they reach a log line
or a shared view."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Phone numbers, but not complaint numbers (YYMMDD + ordinal, which start with 0-2 and
# carry no separators): international numbers, mainland mobiles (1[3-9] and nine digits),
# landlines with a 0 area code, and any digit groups split by spaces or dashes.
# A UUID (correlation and event ids) comes first so that it is consumed whole: its
# all-digit groups would otherwise read as a phone number split by dashes.
_UUID = r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
_PHONE = re.compile(
    rf"(?P<uuid>{_UUID})"
    r"|\+\d[\d \-]{6,}\d"
    r"|(?<!\d)1[3-9]\d{9}(?!\d)"
    r"|(?<!\d)0\d{2,3}[ \-]?\d{7,8}(?!\d)"
    r"|(?<!\d)\d{2,4}(?:[ \-]\d{2,4}){2,}(?!\d)"
)

# Credentials that can turn up in free text: a survey link's token in an access-log line,
# a branch API key or a staff token (a JWT) pasted into an error message.
_CREDENTIAL = re.compile(
    r"(?P<query>(?:token|api_key|access_token)=)[^&\s\"']+"
    r"|(?P<key>cbk_)[0-9a-f]{12}_[A-Za-z0-9_-]+"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return f"***{digits[-4:]}" if len(digits) > 4 else "***"


def redact_text(text: str) -> str:
    """Mask every credential, e-mail address and phone-like digit run in free text."""
    text = _CREDENTIAL.sub(_mask_credential, text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_if_phone_length, text)


def _mask_if_phone_length(match: re.Match[str]) -> str:
    # Dates such as 2026-11-22 have the shape of digit groups but too few digits.
    found = match.group(0)
    if match.group("uuid"):
        return found
    return mask_phone(found) if sum(c.isdigit() for c in found) >= 10 else found


def _mask_credential(match: re.Match[str]) -> str:
    return (match.group("query") or match.group("key") or "") + "***"
