"""PostgreSQL connection URLs."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def with_database(url: str, database: str, user: str | None = None) -> str:
    """``url`` naming another database on the same server, and another role if ``user``
    is given (without a password: one in ``url`` belongs to its own role)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))
