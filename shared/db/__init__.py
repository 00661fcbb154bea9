"""PostgreSQL plumbing: a pool bound to one service's schema, and its migrations."""

from shared.db.migrations import apply_migrations
from shared.db.pool import DbConnection, create_pool, is_connection_error

__all__ = ["DbConnection", "apply_migrations", "create_pool", "is_connection_error"]
