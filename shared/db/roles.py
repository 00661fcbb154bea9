"""Least privilege in PostgreSQL: a login role per service, owning its schema and nothing
else; BI reads reporting's stable views through the group role ``complaints_bi``.

    python -m shared.db.roles --database-url postgresql://admin@host/complaints \\
        [--passwords-file FILE]

Run once per database as an administrator (and again after adding a service: it is
idempotent). Each service then connects as its own role (its ``DATABASE_URL`` names
``complaints_<service>``). A role can read and write its own schema and run its
migrations there; any other service's schema is ``permission denied``. Reporting's role
may also create schemas, because a projection rebuild fills a fresh schema and swaps it
in. ``complaints_bi`` (NOLOGIN) is created here because reporting's role may not create
roles; reporting's migration 006 grants it the ``bi_*`` views, in the rebuilt schema too.
A BI tool logs in as a member: ``CREATE ROLE metabase LOGIN PASSWORD '…' IN ROLE
complaints_bi`` (docs/reporting.md).

Passwords come from ``--passwords-file`` (JSON: role name to password) or from the
environment, ``COMPLAINTS_<SERVICE>_DB_PASSWORD`` (e.g. ``COMPLAINTS_ROUTING_DB_PASSWORD``);
a role without one is created without a password (it can then log in only where
``pg_hba.conf`` trusts it, as the development stack does). Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

SERVICES = ("intake", "routing", "sla", "notify", "reporting")
BI_ROLE = "complaints_bi"
# Reporting's rebuild creates a fresh schema and renames it into place.
CREATES_SCHEMAS = {"reporting"}


def role_of(service: str) -> str:
    return f"complaints_{service}"


def role_statements(database: str) -> list[str]:
    """The grants, given the roles exist. Idempotent; quoted names only."""
    statements = [
        f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC',
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ]
    for service in SERVICES:
        role = role_of(service)
        statements += [
            f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {role}',
            f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {role}",
            f"ALTER SCHEMA {service} OWNER TO {role}",
        ]
        if service in CREATES_SCHEMAS:
            statements.append(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
    statements.append(f'GRANT CONNECT ON DATABASE "{database}" TO {BI_ROLE}')
    return statements


async def _ensure_role(
    conn: asyncpg.Connection, role: str, password: str | None, *, login: bool = True
) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        can = "LOGIN" if login else "NOLOGIN"
        await conn.execute(f"CREATE ROLE {role} {can} NOSUPERUSER NOCREATEDB NOCREATEROLE")
    if password is not None:
        # A utility statement takes no parameters: the literal is quoted by the server.
        quoted = await conn.fetchval("SELECT quote_literal($1)", password)
        await conn.execute(f"ALTER ROLE {role} PASSWORD {quoted}")


async def _hand_over(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """Give ``role`` what an administrator created in ``schema`` before the roles existed
    (a database the services first migrated as the administrator)."""
    objects = await conn.fetch(
        """SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind,
                  quote_ident(c.relname) AS name
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
             AND pg_get_userbyid(c.relowner) <> $2
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                             AND d.deptype IN ('a', 'i') AND c.relkind = 'S')""",
        schema,
        role,
    )
    for row in objects:
        await conn.execute(f"ALTER {row['kind']} {schema}.{row['name']} OWNER TO {role}")
    functions = await conn.fetch(
        """SELECT p.oid::regprocedure::text AS signature FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2""",
        schema,
        role,
    )
    for row in functions:
        await conn.execute(f"ALTER ROUTINE {row['signature']} OWNER TO {role}")


async def apply_roles(admin_dsn: str, passwords: Mapping[str, str]) -> list[str]:
    """Create or update every role and grant; the roles' names."""
    database = urlsplit(admin_dsn).path.lstrip("/")
    roles = [role_of(service) for service in SERVICES]
    conn = await asyncpg.connect(admin_dsn)
    try:
        async with conn.transaction():
            for role in roles:
                await _ensure_role(conn, role, passwords.get(role))
            await _ensure_role(conn, BI_ROLE, None, login=False)
            for statement in role_statements(database):
                await conn.execute(statement)
            for service in SERVICES:
                await _hand_over(conn, service, role_of(service))
    finally:
        await conn.close()
    return [*roles, BI_ROLE]


def passwords_from(file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    if file is not None:
        loaded = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ValueError(f"{file}: expected a JSON object of role name to password")
        return loaded
    found = {}
    for role in [role_of(service) for service in SERVICES]:
        value = environ.get(f"{role.upper()}_DB_PASSWORD")
        if value:
            found[role] = value
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="an administrator's DSN for the platform's database (default: DATABASE_URL)",
    )
    parser.add_argument("--passwords-file", type=Path)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or DATABASE_URL is required")
    try:
        passwords = passwords_from(args.passwords_file, os.environ)
    except (OSError, ValueError) as exc:
        print(f"roles: {exc}", file=sys.stderr)
        return 2
    roles = asyncio.run(apply_roles(args.database_url, passwords))
    with_password = sorted(set(passwords) & set(roles))
    print(json.dumps({"roles": roles, "with_password": with_password}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
