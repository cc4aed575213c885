"""Migrations: one head, upgrade/downgrade/upgrade on a fresh database, models match."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.core.sqlite import include_object_for
from app.extensions import db
from tests.conftest import ROOT, flask_cli, fresh_database_url


def test_single_head():
    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
def test_models_match_migrations(app):
    """(SQLite has not the PostgreSQL-only indexes; PostgreSQL compares them.)"""
    conn = db.session.connection()
    opts = {"compare_type": True, "include_object": include_object_for(conn.dialect.name)}
    diff = compare_metadata(MigrationContext.configure(conn, opts=opts), db.metadata)
    assert diff == []


def test_round_trip_on_a_fresh_database(tmp_path):
    with fresh_database_url(tmp_path) as url:
        env = {**os.environ, "FLASK_APP": "app:create_app", "INSTANCE_DIR": str(tmp_path),
               "SECRET_KEY": "x", "DATABASE_URL": url}
        flask_cli(env, "db", "upgrade")
        flask_cli(env, "db", "downgrade", "base")
        flask_cli(env, "db", "upgrade")
        check = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with check.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        check.dispose()
        assert {"user", "audit_event", "attachment", "notification", "api_token"} <= tables
