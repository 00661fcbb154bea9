"""Credentials for the test session: generated once, like ``make run``'s, into a temporary
directory that every service built or started by a test is pointed at (the environment)."""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from pathlib import Path

from shared.auth.access import ALL, Role
from shared.auth.credentials import TokenIssuer
from shared.auth.dev import KEYS_FILE, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate
from shared.settings import REPO_ROOT

READ_REASON = "automated test"


@cache
def credentials_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="complaints-credentials-"))
    generate(directory, REPO_ROOT / "policy-packs")
    os.environ["AUTH_BRANCH_KEYS_FILE"] = str(directory / KEYS_FILE)
    os.environ["AUTH_STAFF_TOKEN_PUBLIC_KEY_FILE"] = str(directory / PUBLIC_KEY_FILE)
    return directory


@cache
def _clear() -> dict[str, dict[str, object]]:
    loaded: dict[str, dict[str, object]] = json.loads(
        (credentials_dir() / "dev-credentials.json").read_text()
    )
    return loaded


def branch_key(branch_id: str) -> str:
    """The API key of a branch in the repository's packs."""
    return str(_clear()["branches"][branch_id])


def branch_headers(branch_id: str) -> dict[str, str]:
    return {"X-Api-Key": branch_key(branch_id), "X-Access-Reason": READ_REASON}


def staff_token(name: str) -> str:
    """A demo staff member's token: ``admin``, ``auditor``, ``company-manager``, or
    ``<pack>/<staff id>`` for someone in a pack."""
    entry = _clear()["staff"][name]
    assert isinstance(entry, dict)
    return str(entry["token"])


def issue(
    subject: str,
    *roles: Role,
    branches: tuple[str, ...] = (ALL,),
    departments: tuple[str, ...] = (ALL,),
) -> str:
    """A token for anyone at all, signed with the session's key."""
    issuer = TokenIssuer.load(credentials_dir() / PRIVATE_KEY_FILE)
    return issuer.issue(subject, roles, branches=branches, departments=departments)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Access-Reason": READ_REASON}


def admin_headers() -> dict[str, str]:
    """What the tests that are not about access send: an administrator, who may do
    anything in any branch (including branches a test's own pack adds)."""
    return bearer(staff_token("admin"))
