"""Fixtures: one app and one migrated schema per run; each test in a rolled-back transaction.

Set TEST_DATABASE_URL (PostgreSQL) and REDIS_URL to run against real servers; without
them the suite uses a SQLite file and in-memory rate limits. Tests marked `live` serve
the app on a real port and commit for real; their rows are wiped afterwards.
"""

from __future__ import annotations

import contextvars
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as SmtpMessageHandler
from flask import g, has_app_context
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from app import create_app
from app.core import clock, pgschema
from app.extensions import db as _db
from app.extensions import limiter
from app.orgchart import services as org

PG_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")
RUN_ID = uuid.uuid4().hex[:8]
PASSWORD = "correct-horse-battery-42"
ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    if os.environ.get("CRM_REQUIRE_SERVICES") and not (PG_URL and REDIS_URL):
        raise pytest.UsageError("CRM_REQUIRE_SERVICES is set: TEST_DATABASE_URL and REDIS_URL "
                                "must both be given")


def _pg_engine() -> sa.Engine:
    """The server's database itself. Each test run works in a schema of its own, with the
    shared `extensions` schema (pg_trgm) behind it on the search path."""
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        pgschema.prepare(conn)
    return engine


@contextmanager
def fresh_database_url(tmp: Path):
    """An empty database for a subprocess: a new PostgreSQL schema, or a SQLite file."""
    if not PG_URL:
        yield f"sqlite:///{tmp / 'fresh.sqlite'}"
        return
    schema = f"crm_fresh_{uuid.uuid4().hex[:8]}"
    engine = _pg_engine()
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{pgschema.search_path(schema)}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def flask_cli(env: dict, *args: str, timeout: int = 120) -> str:
    """Run `flask ...` in a subprocess with the given environment; fail on error."""
    result = subprocess.run([sys.executable, "-m", "flask", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _database_url(tmp: Path) -> tuple[str, dict]:
    if not PG_URL:
        return f"sqlite:///{tmp / 'test.sqlite'}", {}
    schema = f"crm_test_{RUN_ID}"
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = _pg_engine()
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    options = f"-csearch_path={pgschema.search_path(schema)}"
    return url, {"connect_args": {"options": options}, "pool_pre_ping": True, "_schema": schema}


@pytest.fixture(scope="session")
def app():
    tmp = Path(tempfile.mkdtemp(prefix="crm-test-"))
    url, engine_options = _database_url(tmp)
    schema = engine_options.pop("_schema", None)
    application = create_app({
        "CRM_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "INSTANCE_DIR": tmp,
        "UPLOAD_DIR": str(tmp / "uploads"),
        "MAX_UPLOAD_MB": 1,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "RATELIMIT_KEY_PREFIX": f"crm-test-{RUN_ID}",
        "REDIS_KEY_PREFIX": f"crm-test-{RUN_ID}",
        "REDIS_URL": REDIS_URL,
        "RATELIMIT_STORAGE_URI": REDIS_URL or "memory://",
    })
    application.test_client_class = Client
    with application.app_context():
        from flask_migrate import upgrade

        upgrade()
    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()
    if schema:
        engine = _pg_engine()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class Client(FlaskClient):
    """Each request runs in a fresh context, as in a real server, with its own app context,
    `g` and session; the test's own session is expired afterwards so it sees the changes."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)  # read and close file responses at once
        if not has_app_context():  # a redirect followed inside the request's own context
            return super().open(*args, **kwargs)
        response = contextvars.Context().run(super().open, *args, **kwargs)
        _db.session.expire_all()
        for key in [k for k in g if k.startswith("_cache_")]:  # per-request caches
            g.pop(key)
        return response

    def csrf(self, path: str = "/") -> str:
        html = self.get(path, follow_redirects=True).get_data(as_text=True)
        return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)

    def form(self, path: str, data: dict | None = None, **kwargs):
        """POST a form the way a browser does: with this session's CSRF token."""
        payload = dict(data or {})
        payload.setdefault("csrf_token", self.csrf())
        return self.post(path, data=payload, **kwargs)

    def sign_in(self, email: str, password: str = PASSWORD):
        return self.form("/login", {"email": email, "password": password})


def _reset_limits() -> None:
    """This run's rate-limit counters only: other runs may share the Redis server."""
    if not REDIS_URL:
        limiter.reset()
        return
    import redis

    server = redis.Redis.from_url(REDIS_URL)
    keys = list(server.scan_iter(f"LIMITS:LIMITER/crm-test-{RUN_ID}/*", count=1000))
    if keys:
        server.delete(*keys)
    server.close()


@pytest.fixture(autouse=True)
def db(request, app):
    """Every test inside an outer transaction that is rolled back at its end."""
    _reset_limits()
    clock.release()
    if request.node.get_closest_marker("live"):
        ctx = app.app_context()
        ctx.push()
        yield _db
        _db.session.remove()
        wipe()
        ctx.pop()
        return
    ctx = app.app_context()
    ctx.push()
    connection = _db.engine.connect()
    outer = connection.begin()
    _db.session.remove()
    factory_kw = dict(_db.session.session_factory.kw)
    _db.session.configure(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield _db
    finally:
        _db.session.remove()
        _db.session.session_factory.kw.clear()
        _db.session.session_factory.kw.update(factory_kw)
        outer.rollback()
        connection.close()
        ctx.pop()
        clock.release()


def wipe() -> None:
    """Remove every committed row (the audit trigger is lifted for this alone)."""
    engine = _db.engine
    tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            for name in tables:
                conn.execute(sa.text(f'DELETE FROM "{name}"'))
        else:
            triggers = conn.execute(sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type='trigger'")).all()
            for name, _sql in triggers:
                conn.execute(sa.text(f'DROP TRIGGER "{name}"'))
            for name in tables:
                conn.execute(sa.text(f'DELETE FROM "{name}"'))
            for _name, sql in triggers:
                conn.execute(sa.text(sql))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(db):
    from app.core.models import User
    from app.core.passwords import hash_password

    hashed = hash_password(PASSWORD)
    counter = iter(range(1, 10_000))

    def make(name: str | None = None, *, email: str | None = None, is_admin: bool = False,
             active: bool = True, language: str = "en", timezone: str = "UTC") -> User:
        n = next(counter)
        user = User(email=email or f"user{n}-{uuid.uuid4().hex[:6]}@example.test",
                    name=name or f"Person {n}", password_hash=hashed, is_admin=is_admin,
                    active=active, language=language, timezone=timezone)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("Ivan Petrov")


@pytest.fixture
def admin(make_user):
    return make_user("Anna Admin", is_admin=True)


@pytest.fixture
def user_client(app, user):
    c = app.test_client()
    assert c.sign_in(user.email).status_code == 302
    return c


@pytest.fixture
def admin_client(app, admin):
    c = app.test_client()
    assert c.sign_in(admin.email).status_code == 302
    return c


@pytest.fixture
def token_for(db):
    from app.core import services

    def make(user) -> str:
        _token, plain = services.create_token(user, {"name": "test"})
        db.session.commit()
        return plain

    return make


@pytest.fixture
def count_queries(app):
    """Counts the SQL statements run inside the `with` block."""

    @contextmanager
    def counting():
        statements: list[str] = []

        def listener(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(_db.engine, "before_cursor_execute", listener)
        try:
            yield statements
        finally:
            sa.event.remove(_db.engine, "before_cursor_execute", listener)

    return counting


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app):
    with LiveServer(app) as server:
        yield server


def seed_user(name: str, email: str, *, is_admin: bool = False, language: str = "en"):
    """Commit a user for a live test (the server sees only committed rows).

    Returns plain values and ends the transaction, so the test holds no SQLite snapshot
    while the server writes."""

    from app.core.models import User
    from app.core.passwords import hash_password

    user = User(email=email, name=name, password_hash=hash_password(PASSWORD),
                is_admin=is_admin, language=language)
    _db.session.add(user)
    _db.session.commit()
    values = SimpleNamespace(id=user.id, email=user.email, name=user.name, is_admin=is_admin,
                             is_active=True)
    _db.session.close()
    return values


class _SmtpCollector(SmtpMessageHandler):
    """Keeps every message a real local SMTP server receives."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def handle_message(self, message):
        self.messages.append(message)


@pytest.fixture
def smtp_server(app):
    """A real SMTP server (aiosmtpd) on a free local port; the app sends to it."""
    handler = _SmtpCollector()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    yield handler
    controller.stop()
    app.config.update(SMTP_HOST=None, SMTP_PORT=25)


@pytest.fixture
def office(db, admin, make_user):
    """Sales: head Helen with Sam and Sara under her; Finance: head Fred, post Cashier vacant.
    Helen's superior is the Director, Dora."""
    company = org.create_unit(admin, {"name": "Office", "kind": "company"})
    director = org.create_post(admin, {"unit_id": company.id, "title": "Director", "is_head": True})
    sales = org.create_unit(admin, {"name": "Sales", "kind": "division", "parent_id": company.id})
    head = org.create_post(admin, {"unit_id": sales.id, "title": "Head of Sales", "is_head": True})
    seller = org.create_post(admin, {"unit_id": sales.id, "title": "Seller"})
    finance = org.create_unit(admin, {"name": "Finance", "kind": "division",
                                      "parent_id": company.id})
    fhead = org.create_post(admin, {"unit_id": finance.id, "title": "Head of Finance",
                                    "is_head": True})
    cashier = org.create_post(admin, {"unit_id": finance.id, "title": "Cashier"})
    people = {name: make_user(name) for name in ("Dora", "Helen", "Sam", "Sara", "Fred")}
    for name, post in (("Dora", director), ("Helen", head), ("Sam", seller), ("Sara", seller),
                       ("Fred", fhead)):
        org.assign(admin, {"post_id": post.id, "user_id": people[name].id})
    db.session.commit()
    return SimpleNamespace(company=company, sales=sales, finance=finance, director=director,
                           head=head, seller=seller, fhead=fhead, cashier=cashier, **people)
