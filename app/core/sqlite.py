"""SQLite done right: real transactions (so savepoints nest) and enforced foreign keys.

pysqlite otherwise starts transactions lazily and commits on RELEASE SAVEPOINT; see
SQLAlchemy's "Serializable isolation / Savepoints / Transactional DDL" notes for SQLite.
Transactions begin IMMEDIATE: a request that reads and then writes would otherwise fail
with "database is locked" when another request wrote in between; this way requests wait
their turn (busy_timeout). SQLite is for trying the CRM out; production uses PostgreSQL.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection, connection_record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        # SQLite's own lower() folds ASCII only; searches must fold Cyrillic too.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


def _lower(value):
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Engine, "begin")
def _on_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def include_object_for(dialect: str):
    """Alembic's `include_object` for a database: an index built only on another database
    (PostgreSQL's trigram and full-text indexes, `Index(...).ddl_if(dialect=...)`) is neither
    compared nor generated there."""

    def include(obj, name, type_, reflected, compare_to) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return not (type_ == "index" and only is not None and only.dialect
                    and only.dialect != dialect)

    return include
