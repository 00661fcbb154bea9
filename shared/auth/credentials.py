"""Branch API keys and staff tokens: issuing, storing and checking them.

A branch API key is 32 random bytes behind a short public id (``cbk_<id>_<secret>``).
Services keep only its SHA-256: a key that random cannot be guessed from its hash, so the
slow password hashes (argon2, bcrypt), built for low-entropy passwords, would only add
their tens of milliseconds to every request.

Staff tokens are JWTs signed with Ed25519 by whoever issues them (``python -m
shared.auth.dev`` in development, the company's identity provider in production). The
services hold only the public key: none of them can mint a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.auth.access import ALL, BranchCaller, Role, StaffCaller

KEY_PREFIX = "cbk"
TOKEN_ISSUER = "complaints-platform"  # noqa: S105 (a name, not a secret)
TOKEN_AUDIENCE = "complaints-platform"  # noqa: S105 (a name, not a secret)
_ALGORITHM = "EdDSA"
_VERIFIED_TOKENS_KEPT = 1024
_PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class CredentialsError(ValueError):
    """A credentials file or key that cannot be used; the message says why."""


class InvalidTokenError(ValueError):
    """A staff token that is malformed, forged, expired or for another audience."""


def new_api_key() -> tuple[str, str]:
    """A fresh key id and the key itself, to hand to the branch once."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class _StoredKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=r"^[0-9a-f]{12}$")
    branch_id: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _KeyFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: tuple[_StoredKey, ...]


class BranchKeys:
    """The hashed API keys of every branch, from a JSON file (``{"keys": [...]}``)."""

    def __init__(self, stored: tuple[_StoredKey, ...]) -> None:
        self._by_id = {key.key_id: key for key in stored}
        if len(self._by_id) != len(stored):
            raise CredentialsError("a key id appears twice in the branch keys file")

    @classmethod
    def load(cls, path: Path) -> BranchKeys:
        try:
            return cls(_KeyFile.model_validate_json(path.read_bytes()).keys)
        except OSError as exc:
            raise CredentialsError(f"cannot read branch keys {path}: {exc.strerror}") from exc
        except ValidationError as exc:
            raise CredentialsError(f"branch keys {path} are not valid: {exc}") from exc

    @staticmethod
    def write(path: Path, keys: dict[str, str]) -> None:
        """Store the hashes of ``keys`` (key → branch id)."""
        stored = [
            _StoredKey(key_id=key.split("_")[1], branch_id=branch, sha256=hash_api_key(key))
            for key, branch in keys.items()
        ]
        path.write_text(_KeyFile(keys=tuple(stored)).model_dump_json(indent=2) + "\n")

    def verify(self, key: str) -> BranchCaller | None:
        prefix, _, rest = key.partition("_")
        key_id = rest.partition("_")[0]
        stored = self._by_id.get(key_id) if prefix == KEY_PREFIX else None
        # Compare a hash even for an unknown id, so that timing tells nothing.
        expected = stored.sha256 if stored else "0" * 64
        if hmac.compare_digest(hash_api_key(key), expected) and stored is not None:
            return BranchCaller(branch_id=stored.branch_id, key_id=key_id)
        return None


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: str = Field(min_length=1, max_length=100)
    roles: tuple[Role, ...] = Field(min_length=1)
    branches: tuple[str, ...] = Field(min_length=1)
    departments: tuple[str, ...] = Field(min_length=1)


class StaffTokens:
    """Checks staff tokens against the issuer's public keys. The file may hold several
    PEM keys, one after another: while the issuer rotates its signing key, tokens signed
    with the old key and with the new one are both accepted (docs/operations.md)."""

    def __init__(self, public_keys_pem: bytes) -> None:
        blocks = _PEM_PUBLIC_KEY.findall(public_keys_pem)
        if not blocks:
            raise CredentialsError("the staff token public key file holds no PEM public key")
        try:
            self._keys = [serialization.load_pem_public_key(block) for block in blocks]
        except ValueError as exc:
            raise CredentialsError(f"the staff token public key is not valid: {exc}") from exc
        # A client sends the same token with every request: its signature is checked once,
        # then trusted until the token expires (the profile of a busy intake had the check
        # at 2 % of its time). Oldest first out.
        self._verified: dict[str, tuple[StaffCaller, float]] = {}

    @classmethod
    def load(cls, path: Path) -> StaffTokens:
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise CredentialsError(f"cannot read {path}: {exc.strerror}") from exc

    def verify(self, token: str) -> StaffCaller:
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        caller, expires_at = self._check(token)
        self._verified[token] = (caller, expires_at)
        if len(self._verified) > _VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]
        return caller

    def _check(self, token: str) -> tuple[StaffCaller, float]:
        wrong_key: jwt.InvalidSignatureError | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,  # type: ignore[arg-type]
                    algorithms=[_ALGORITHM],
                    audience=TOKEN_AUDIENCE,
                    issuer=TOKEN_ISSUER,
                    options={"require": ["exp", "sub", "iss", "aud"]},
                )
                break
            except jwt.InvalidSignatureError as exc:
                wrong_key = exc
            except jwt.PyJWTError as exc:
                raise InvalidTokenError(str(exc)) from exc
        else:
            raise InvalidTokenError(str(wrong_key)) from wrong_key
        try:
            parsed = _Claims.model_validate(claims)
        except ValidationError as exc:
            raise InvalidTokenError(f"the token's claims are not valid: {exc}") from exc
        caller = StaffCaller(
            subject=parsed.sub,
            roles=frozenset(parsed.roles),
            branches=frozenset(parsed.branches),
            departments=frozenset(parsed.departments),
        )
        return caller, float(claims["exp"])


@dataclass(frozen=True)
class TokenIssuer:
    """Signs staff tokens: the development stand-in for an identity provider."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> TokenIssuer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> TokenIssuer:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CredentialsError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def issue(
        self,
        subject: str,
        roles: tuple[Role, ...],
        *,
        branches: tuple[str, ...] = (ALL,),
        departments: tuple[str, ...] = (ALL,),
        valid_for: timedelta = timedelta(hours=12),
        now: datetime | None = None,
    ) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "sub": subject,
            "roles": [str(role) for role in roles],
            "branches": list(branches),
            "departments": list(departments),
            "iss": TOKEN_ISSUER,
            "aud": TOKEN_AUDIENCE,
            "iat": issued,
            "exp": issued + valid_for,
        }
        return jwt.encode(claims, self.private_key, algorithm=_ALGORITHM)
