"""Development credentials: an API key for every demo branch and a token for every demo
staff member, written into a git-ignored directory (``.local/credentials`` by default).

    python -m shared.auth.dev [--dir DIR] [--packs DIR]

Running it again keeps the signing key and the branch keys already issued (so a running
platform and scripts that saved a key keep working), adds keys for new branches, and
issues fresh tokens. ``dev-credentials.json`` holds the keys and tokens in clear: it is
for the developer, never for a service, which reads only ``branch-keys.json`` (hashes) and
``staff-token-public.pem``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path

from shared.auth.access import ALL, Role
from shared.auth.credentials import BranchKeys, TokenIssuer, new_api_key
from shared.policy import PolicyPack, Staff, load_packs
from shared.settings import DEV_CREDENTIALS_DIR, REPO_ROOT

CLEAR_FILE = "dev-credentials.json"
KEYS_FILE = "branch-keys.json"
PUBLIC_KEY_FILE = "staff-token-public.pem"
PRIVATE_KEY_FILE = "staff-token-private.pem"
TOKEN_LIFETIME = timedelta(days=30)

# Company-wide people the packs do not list: they see every branch and department.
COMPANY_STAFF: dict[str, Role] = {
    "company-manager": Role.MANAGER,
    "auditor": Role.AUDITOR,
    "admin": Role.ADMIN,
}


_BRANCH_WIDE = ("general-manager", "deputy-gm")
_SUPERVISING = ("supervisor", "team-lead", "section-chief", "duty-manager")


def access_of(pack: PolicyPack, member: Staff) -> tuple[Role, tuple[str, ...]]:
    """A pack member's access role and departments, from the business role the pack
    gives them: a general manager or deputy manages the whole branch, supervisors and team
    leads supervise their department, a department's head manages it, everyone else works
    its cases as an agent."""
    if any(title in member.role for title in _BRANCH_WIDE):
        return Role.MANAGER, (ALL,)
    # Before the heads: a supervisor who heads the complaint desk (the hotel's front-office
    # supervisor) works cases and calls customers back, so keeps a supervisor's access.
    if any(title in member.role for title in _SUPERVISING):
        return Role.SUPERVISOR, (member.department,)
    if member.id in {department.head for department in pack.departments}:
        return Role.MANAGER, (member.department,)
    return Role.AGENT, (member.department,)


def generate(directory: Path, packs_dir: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    clear_path = directory / CLEAR_FILE
    private_path = directory / PRIVATE_KEY_FILE
    issuer = TokenIssuer.load(private_path) if private_path.exists() else TokenIssuer.generate()
    previous = json.loads(clear_path.read_text()) if clear_path.exists() else {}
    branch_keys: dict[str, str] = dict(previous.get("branches", {}))

    registry = load_packs(packs_dir)
    staff: dict[str, dict[str, object]] = {}
    for pack in registry.packs.values():
        branches = tuple(branch.id for branch in pack.branches)
        for branch_id in branches:
            branch_keys.setdefault(branch_id, new_api_key()[1])
        for member in pack.staff:
            role, departments = access_of(pack, member)
            staff[f"{pack.pack}/{member.id}"] = _entry(
                issuer, member.id, role, branches, departments
            )
    for subject, role in COMPANY_STAFF.items():
        staff[subject] = _entry(issuer, subject, role, (ALL,), (ALL,))

    _write_private(private_path, issuer.private_pem())
    (directory / PUBLIC_KEY_FILE).write_bytes(issuer.public_pem())
    BranchKeys.write(directory / KEYS_FILE, {key: branch for branch, key in branch_keys.items()})
    _write_private(
        clear_path,
        (
            json.dumps({"branches": branch_keys, "staff": staff}, indent=2, ensure_ascii=False)
            + "\n"
        ).encode(),
    )
    return clear_path


def _entry(
    issuer: TokenIssuer,
    subject: str,
    role: Role,
    branches: tuple[str, ...],
    departments: tuple[str, ...],
) -> dict[str, object]:
    token = issuer.issue(
        subject, (role,), branches=branches, departments=departments, valid_for=TOKEN_LIFETIME
    )
    return {"role": role, "branches": branches, "departments": departments, "token": token}


def _write_private(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


READ_REASON_HEADER = "X-Access-Reason"


class DevCredentials:
    """The clear credentials ``generate`` wrote, for scripts and tests that call the APIs
    (the demo, the benchmark, the fault harness) and the settings of the services they
    start."""

    def __init__(self, directory: Path = DEV_CREDENTIALS_DIR) -> None:
        self.directory = directory
        self._clear = json.loads((directory / CLEAR_FILE).read_text())

    @classmethod
    def ensure(
        cls, directory: Path = DEV_CREDENTIALS_DIR, packs_dir: Path = REPO_ROOT / "policy-packs"
    ) -> DevCredentials:
        if not (directory / CLEAR_FILE).exists():
            generate(directory, packs_dir)
        return cls(directory)

    @classmethod
    def from_environment(cls) -> DevCredentials:
        """The credentials the environment points services at (a test session's), else
        ``make run``'s, generated if need be."""
        keys = os.environ.get("AUTH_BRANCH_KEYS_FILE")
        return cls(Path(keys).parent) if keys else cls.ensure()

    def service_env(self) -> dict[str, str]:
        """What intake and reporting need to check callers against these credentials."""
        return {
            "AUTH_BRANCH_KEYS_FILE": str(self.directory / KEYS_FILE),
            "AUTH_STAFF_TOKEN_PUBLIC_KEY_FILE": str(self.directory / PUBLIC_KEY_FILE),
        }

    def branch_key(self, branch_id: str) -> str:
        return str(self._clear["branches"][branch_id])

    def staff_token(self, name: str) -> str:
        """``admin``, ``auditor``, ``company-manager`` or ``<pack>/<staff id>``."""
        return str(self._clear["staff"][name]["token"])

    def staff_headers(self, name: str, reason: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff_token(name)}", READ_REASON_HEADER: reason}

    def branch_headers(self, branch_id: str, reason: str) -> dict[str, str]:
        return {"X-Api-Key": self.branch_key(branch_id), READ_REASON_HEADER: reason}

    def issuer(self) -> TokenIssuer:
        return TokenIssuer.load(self.directory / PRIVATE_KEY_FILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEV_CREDENTIALS_DIR)
    parser.add_argument("--packs", type=Path, default=REPO_ROOT / "policy-packs")
    args = parser.parse_args()
    path = generate(args.dir, args.packs)
    print(f"development credentials (branch API keys, staff tokens): {path}")


if __name__ == "__main__":
    main()
