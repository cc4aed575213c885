"""Runs in a PostgreSQL schema of their own (tests, benchmarks): the extensions they need
live in one shared schema, `extensions`, put after the run's schema on the search path.
`public` is kept off that path: a migrated `public` (its alembic_version) would otherwise be
taken for the run's own."""

from __future__ import annotations

import sqlalchemy as sa

EXTENSIONS = "extensions"


def prepare(conn) -> None:
    """Make sure pg_trgm is installed, in the shared `extensions` schema."""
    conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {EXTENSIONS}"))
    conn.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA {EXTENSIONS}"))
    where = conn.execute(sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'")).scalar()
    if where != EXTENSIONS:
        conn.execute(sa.text(f"ALTER EXTENSION pg_trgm SET SCHEMA {EXTENSIONS}"))


def search_path(schema: str) -> str:
    return f"{schema},{EXTENSIONS}"
