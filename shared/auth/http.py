"""Authentication for the FastAPI services: who is calling, from the request's headers.

Branch systems send ``X-Api-Key``; staff send ``Authorization: Bearer <token>``, or the
``staff_token`` cookie the dashboard page sets (a browser's EventSource cannot send
headers). A request with neither, or with one that does not check out, is answered 401
before any handler runs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared.auth.access import Caller
from shared.auth.credentials import BranchKeys, InvalidTokenError, StaffTokens
from shared.settings import AuthSettings

STAFF_COOKIE = "staff_token"

_api_key = APIKeyHeader(
    name="X-Api-Key", auto_error=False, description="A branch system's API key."
)
_bearer = HTTPBearer(auto_error=False, description="A staff member's signed token.")
_cookie = APIKeyCookie(
    name=STAFF_COOKIE, auto_error=False, description="The staff token, for the dashboard page."
)

_PROBLEM = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}


class Authenticator:
    """Turns a request's credentials into a ``Caller``; use as a FastAPI dependency."""

    def __init__(self, keys: BranchKeys, tokens: StaffTokens) -> None:
        self._keys = keys
        self._tokens = tokens

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator:
        return cls(
            BranchKeys.load(settings.auth_branch_keys_file),
            StaffTokens.load(settings.auth_staff_token_public_key_file),
        )

    async def __call__(
        self,
        api_key: Annotated[str | None, Depends(_api_key)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        cookie: Annotated[str | None, Depends(_cookie)],
    ) -> Caller:
        if api_key:
            branch = self._keys.verify(api_key)
            if branch is None:
                raise _unauthorized("the API key is not valid")
            return branch
        token = bearer.credentials if bearer else cookie
        if not token:
            raise _unauthorized("send a branch API key (X-Api-Key) or a staff token (Bearer)")
        try:
            return self._tokens.verify(token)
        except InvalidTokenError as exc:
            raise _unauthorized(f"the staff token is not valid: {exc}") from exc


def header_text(raw: str) -> str:
    """A header's text. HTTP carries header values as bytes, which the server reads as
    Latin-1; a reason typed in Chinese can only arrive as its UTF-8 bytes (the dashboard
    sends it so), so bytes that are valid UTF-8 are read as such. ASCII is unchanged."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def document_auth_refusals(app: FastAPI) -> None:
    """Say on every authenticated operation that it can answer 401 and 403. Call after the
    routes are added."""
    for route in app.routes:
        if isinstance(route, APIRoute) and _authenticated(route):
            route.responses.setdefault(
                401,
                {
                    "description": "No credentials, or ones that do not check out.",
                    "content": _PROBLEM,
                },
            )
            route.responses.setdefault(
                403, {"description": "Authenticated, but not allowed this.", "content": _PROBLEM}
            )


def _authenticated(route: APIRoute) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, Authenticator):
            return True
        pending.extend(dependency.dependencies)
    return False
