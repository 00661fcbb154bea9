"""Credentials for the test session: generated once, like ``make run``'s, into a temporary
directory that every service built or started by a test is pointed at (the environment)."""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

from shared.auth.access import ALL, Role
from shared.auth.dev import DevCredentials

READ_REASON = "automated test"


@cache
def credentials() -> DevCredentials:
    found = DevCredentials.ensure(Path(tempfile.mkdtemp(prefix="complaints-credentials-")))
    os.environ.update(found.service_env())
    return found


def branch_key(branch_id: str) -> str:
    """The API key of a branch in the repository's packs."""
    return credentials().branch_key(branch_id)


def branch_headers(branch_id: str) -> dict[str, str]:
    return credentials().branch_headers(branch_id, READ_REASON)


def staff_token(name: str) -> str:
    """A demo staff member's token: ``admin``, ``auditor``, ``company-manager``, or
    ``<pack>/<staff id>`` for someone in a pack."""
    return credentials().staff_token(name)


def issue(
    subject: str,
    *roles: Role,
    branches: tuple[str, ...] = (ALL,),
    departments: tuple[str, ...] = (ALL,),
) -> str:
    """A token for anyone at all, signed with the session's key."""
    return credentials().issuer().issue(subject, roles, branches=branches, departments=departments)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Access-Reason": READ_REASON}


def admin_headers() -> dict[str, str]:
    """What the tests that are not about access send: an administrator, who may do
    anything in any branch (including branches a test's own pack adds)."""
    return bearer(staff_token("admin"))
