""""My day" and the team board on 200,000 tasks: p50/p95 of services.my_day and
services.board (and of the pages /tasks/ and /tasks/board) against the bare SQL that loads
the same rows, in the same run, with the ratio.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.tasks_views
    make bench                                   # SQLite file when no PostgreSQL is given

(TEST_DATABASE_URL is used when DATABASE_URL is not set.) On PostgreSQL everything happens
in a new schema that is dropped at the end (BENCH_KEEP=1 keeps it, BENCH_REUSE=<schema>
measures a kept one again). BENCH_TASKS changes the number of tasks, BENCH_ROUNDS the
number of timed calls of each kind.

The company: 500 people on a chart of a director, 5 divisions, 25 departments of 20
posts each (the last post of every other department vacant, held from above). Tasks go
mostly from heads to the people of their department; a fifth of the people carry twice the
load. Old work is mostly
done; recent work is open, in progress, done, requested, cancelled or declined; due times
spread from a year ago to two months ahead; a fifth of the tasks have three steps, some given
to a colleague.

Who is measured: "my day" of the busiest person in a department; the board of that
department's head (about 20 people), of their division's head (about 100) and of the
director (everyone).
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.core import pgschema

ROOT = Path(__file__).resolve().parent.parent
TASKS = int(os.environ.get("BENCH_TASKS", "200000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
DIVISIONS, DEPARTMENTS, POSTS = 5, 5, 20  # departments per division, posts per department
CHUNK = 10_000

TITLES = ["Call the client", "Prepare the offer", "Send the invoice", "Check the contract",
          "Enter the statistics", "Order the materials", "Weekly report", "Fix the complaint",
          "Plan the installation", "Update the price list", "Meet the supplier",
          "Train the new colleague", "Reconcile the payments", "Book the transport"]


def database_url() -> tuple[str, bool]:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
        return f"sqlite:///{tmp / 'tasks.sqlite'}", False
    if url.startswith(("postgresql", "postgres://")):
        return url.replace("postgres://", "postgresql://", 1).replace(
            "postgresql://", "postgresql+psycopg://", 1).replace(
            "postgresql+psycopg+psycopg://", "postgresql+psycopg://", 1), True
    return url, False


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# --- the company ----------------------------------------------------------------------------

def build_chart(db, hashed: str) -> dict:
    """Units, posts, people and their posts; returns who is who."""
    from sqlalchemy import insert, select

    from app.core.models import User
    from app.orgchart.models import Assignment, Post, Unit

    people = 1 + DIVISIONS + DIVISIONS * DEPARTMENTS * POSTS  # staff include the dept heads
    db.session.execute(insert(User), [
        {"email": f"p{i}@bench.test", "name": f"Person {i:03d}", "password_hash": hashed,
         "language": "en", "timezone": "Europe/Moscow", "active": True, "is_admin": False,
         "session_version": 1} for i in range(people)])
    ids = iter(db.session.scalars(select(User.id).order_by(User.id)).all())
    company = Unit(kind="company", name="Bench Co")
    db.session.add(company)
    db.session.flush()
    director_post = Post(unit_id=company.id, title="Director", is_head=True)
    db.session.add(director_post)
    db.session.flush()
    director = next(ids)
    db.session.add(Assignment(post_id=director_post.id, user_id=director))
    departments = []  # (division head, department head, [staff])
    for d in range(DIVISIONS):
        div = Unit(kind="division", name=f"Division {d}", parent_id=company.id, position=d)
        db.session.add(div)
        db.session.flush()
        head_post = Post(unit_id=div.id, title=f"Head of division {d}", is_head=True)
        db.session.add(head_post)
        db.session.flush()
        div_head = next(ids)
        db.session.add(Assignment(post_id=head_post.id, user_id=div_head))
        for k in range(DEPARTMENTS):
            dept = Unit(kind="department", name=f"Department {d}.{k}", parent_id=div.id,
                        position=k)
            db.session.add(dept)
            db.session.flush()
            posts = [Post(unit_id=dept.id, title=f"Post {d}.{k}.{i}", is_head=i == 0, position=i)
                     for i in range(POSTS)]
            db.session.add_all(posts)
            db.session.flush()
            staff = []
            for i, post in enumerate(posts):
                person = next(ids)
                if i == POSTS - 1 and k % 2:  # some posts are vacant: held from above
                    continue
                staff.append(person)
                db.session.add(Assignment(post_id=post.id, user_id=person))
            departments.append((div_head, staff[0], staff[1:], [p.id for p in posts]))
    db.session.commit()
    return {"director": director, "departments": departments}


def generate_tasks(db, who: dict, now: datetime) -> None:
    """TASKS tasks and their steps, inserted with core inserts in chunks."""
    from app.tasks.models import Step, Task

    rng = random.Random(7)
    workers = []  # (person, their head, their division head, their post, weight)
    for div_head, dept_head, staff, posts in who["departments"]:
        workers.append((dept_head, div_head, div_head, posts[0], 1))
        for i, person in enumerate(staff, start=1):
            workers.append((person, dept_head, div_head, posts[i], 2 if person % 5 == 0 else 1))
    weights = [w[4] for w in workers]
    picks = rng.choices(workers, weights=weights, k=TASKS)
    tasks, steps = [], []
    step_id = 0
    for task_id, (person, head, div_head, post_id, _w) in enumerate(picks, start=1):
        created = now - timedelta(days=rng.uniform(0, 400))
        age = (now - created).days
        if age > 60:
            status = rng.choices(("done", "cancelled", "declined", "open", "in_progress"),
                                 (85, 9, 2, 3, 1))[0]
        else:
            status = rng.choices(("open", "in_progress", "done", "requested", "cancelled",
                                  "declined"), (35, 20, 35, 4, 4, 2))[0]
        due = created + timedelta(days=rng.uniform(0.2, 30)) if rng.random() < 0.85 else None
        done_at = None
        if status == "done":  # some time after it was set, before now
            done_at = created + min(timedelta(days=rng.uniform(0.1, 20)),
                                    (now - created) * rng.uniform(0.1, 0.99))
        roll = rng.random()
        creator = head if roll < 0.7 else person if roll < 0.9 else rng.choice(workers)[0]
        tasks.append({
            "id": task_id, "title": f"{rng.choice(TITLES)} #{task_id}", "description": "",
            "description_html": "", "creator_id": creator, "assignee_id": person,
            "post_id": post_id if rng.random() < 0.1 else None, "status": status,
            "priority": rng.choices(("low", "normal", "high", "urgent"), (2, 6, 2, 0.5))[0],
            "start_at": None, "due_at": due, "link_kind": None, "link_id": None,
            "requested_of_id": div_head if status == "requested" else None,
            "decline_reason": "Not now" if status == "declined" else None,
            "needs_attachment": False, "created_at": created, "updated_at": done_at or created,
            "opened_at": created if status not in ("requested", "declined") else None,
            "done_at": done_at, "done_by_id": person if done_at else None,
            "escalated_at": due if status in ("open", "in_progress") and due and due < now
            else None})
        if rng.random() < 0.2:
            for position in (1, 2, 3):
                step_id += 1
                colleague = rng.choice(workers)[0] if rng.random() < 0.1 else None
                step_done = status == "done" or (status == "in_progress" and position == 1)
                steps.append({"id": step_id, "task_id": task_id, "position": position,
                              "title": f"Step {position}", "assignee_id": colleague,
                              "due_at": due, "parallel": False, "required": True,
                              "done_at": (done_at or created) if step_done else None,
                              "done_by_id": person if step_done else None})
    insert_rows(db, [(Task.__table__, tasks), (Step.__table__, steps)])


def insert_rows(db, tables) -> None:
    """Core inserts on the tables (not the ORM's bulk path, which splits rows by the keys
    they leave empty): one executemany per chunk, pipelined by psycopg. On PostgreSQL the
    secondary indexes are dropped first and built again after (as a restore does) and
    foreign keys are not checked while loading."""
    from sqlalchemy import func, insert, select, text

    pg = db.engine.dialect.name == "postgresql"
    names = [table.name for table, _rows in tables]
    with db.engine.connect() as conn:
        indexes = []
        if pg:
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text("SET synchronous_commit = off"))
            indexes = conn.execute(text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = ANY(:names) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname "
                "AND c.connamespace = (SELECT oid FROM pg_namespace "
                "WHERE nspname = i.schemaname))"), {"names": names}).all()
            for name, _definition in indexes:
                conn.execute(text(f'DROP INDEX "{name}"'))
        for table, rows in tables:
            for start in range(0, len(rows), CHUNK):
                conn.execute(insert(table), rows[start:start + CHUNK])
        if pg:
            for _name, definition in indexes:
                conn.execute(text(definition))
            for table, _rows in tables:  # the ids were given: the sequences go past them
                conn.execute(select(func.setval(func.pg_get_serial_sequence(table.name, "id"),
                                                select(func.max(table.c.id)).scalar_subquery())))
            conn.execute(text("RESET session_replication_role"))
            conn.execute(text("RESET synchronous_commit"))
        conn.commit()


# --- the bare SQL ---------------------------------------------------------------------------

PEOPLE_COLUMNS = ('a.id, a.email, a.name, a.language, a.timezone, c.id, c.email, c.name, '
                  'c.language, c.timezone')
# The statements are constants put together here; nothing in them comes from input.
DAY_SQL = [
    # Open work, requests to decide, steps given to one in others' tasks: the rows of my_day.
    f"""SELECT t.*, {PEOPLE_COLUMNS} FROM task t
        LEFT JOIN "user" a ON a.id = t.assignee_id JOIN "user" c ON c.id = t.creator_id
        WHERE t.assignee_id = :uid AND t.status IN ('open', 'in_progress')
        ORDER BY t.due_at IS NULL, t.due_at, t.id LIMIT 800""",  # noqa: S608 - constants
    f"""SELECT t.*, {PEOPLE_COLUMNS} FROM task t
        LEFT JOIN "user" a ON a.id = t.assignee_id JOIN "user" c ON c.id = t.creator_id
        WHERE t.requested_of_id = :uid AND t.status = 'requested'
        ORDER BY t.created_at LIMIT 200""",  # noqa: S608 - constants
    """SELECT s.*, t.* FROM task_step s JOIN task t ON t.id = s.task_id
        WHERE s.assignee_id = :uid AND s.done_at IS NULL
          AND t.status IN ('open', 'in_progress') AND t.assignee_id != :uid
        ORDER BY s.due_at IS NULL, s.due_at LIMIT 200""",
]
# The people of a head's scope: the units below the head's posts and whoever holds a post
# there (the app reads the same from its chart snapshot); then the board's rows for them.
SCOPE_SQL = """WITH RECURSIVE units(id) AS (
        SELECT p.unit_id FROM org_post p JOIN org_assignment x ON x.post_id = p.id
        WHERE x.user_id = :uid AND x.ended_at IS NULL AND p.is_head
        UNION SELECT u.id FROM org_unit u JOIN units ON u.parent_id = units.id)
    SELECT x.user_id FROM org_assignment x JOIN org_post p ON p.id = x.post_id
    WHERE p.unit_id IN (SELECT id FROM units) AND x.ended_at IS NULL
    UNION SELECT :uid"""
BOARD_SQL = [
    """SELECT t.status, count(*) FROM task t
        WHERE t.assignee_id IN (:people) AND t.status IN ('requested', 'open', 'in_progress')
        GROUP BY t.status
       UNION ALL
       SELECT 'done', count(*) FROM task t
        WHERE t.assignee_id IN (:people) AND t.status = 'done' AND t.done_at >= :since""",
    *(f"""SELECT t.*, {PEOPLE_COLUMNS} FROM task t
        LEFT JOIN "user" a ON a.id = t.assignee_id JOIN "user" c ON c.id = t.creator_id
        WHERE t.assignee_id IN (:people) AND t.status = '{status}'{where}
        ORDER BY {order} LIMIT 100"""  # noqa: S608 - constants
      for status, where, order in (
          ("requested", "", "t.due_at ASC NULLS LAST, t.id"),
          ("open", "", "t.due_at ASC NULLS LAST, t.id"),
          ("in_progress", "", "t.due_at ASC NULLS LAST, t.id"),
          ("done", " AND t.done_at >= :since", "t.done_at DESC, t.id DESC"))),
]


class Bare:
    """The same queries sent straight through the driver (psycopg or sqlite3)."""

    def __init__(self, engine):
        self.raw = engine.raw_connection()
        self.pg = engine.dialect.name == "postgresql"

    def run(self, sqls: list[str], params: dict) -> list[list[tuple]]:
        cur = self.raw.cursor()
        out = []
        for sql in sqls:
            if "people" in params:  # a list of integer ids, written out as the app's IN is
                sql = sql.replace(":people", ", ".join(str(int(i)) for i in params["people"]))
            if self.pg:
                sql = re.sub(r":(\w+)", r"%(\1)s", sql)
            else:
                params = {k: (v.replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime)
                              else v) for k, v in params.items()}
            cur.execute(sql, {k: v for k, v in params.items() if k != "people"})
            out.append(cur.fetchall())
        cur.close()
        self.raw.rollback()
        return out

    def close(self):
        self.raw.close()


# --- the measurement ------------------------------------------------------------------------

def timed(pairs: list[tuple[str, object, object]]) -> dict[str, tuple[list[float], list[float]]]:
    """Each (label, app_fn, bare_fn) called ROUNDS times; who goes first alternates."""
    out = {}
    for label, app_fn, bare_fn in pairs:
        t_app, t_bare = [], []
        for n in range(ROUNDS):
            order = ((app_fn, t_app), (bare_fn, t_bare))
            for fn, acc in order if n % 2 else order[::-1]:
                start = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - start)
        out[label] = (t_app, t_bare)
    return out


def measure(app, db, who: dict, now: datetime) -> None:
    import contextvars

    from flask import g
    from sqlalchemy import event, func, select

    from app.core.models import User
    from app.tasks import services
    from app.tasks.models import Task

    heavy_dept = max(who["departments"], key=lambda d: len(d[2]))
    div_head, dept_head, staff, _posts = heavy_dept
    counts = dict(db.session.execute(select(Task.assignee_id, func.count())
                                     .where(Task.assignee_id.in_(staff))
                                     .group_by(Task.assignee_id)).all())
    worker = max(staff, key=lambda uid: counts.get(uid, 0))
    total = db.session.scalar(select(func.count()).select_from(Task))
    since = now - services.DONE_ON_BOARD
    users = {uid: db.session.get(User, uid) for uid in (worker, dept_head, div_head,
                                                        who["director"])}
    for user in users.values():
        db.session.expunge(user)
    db.session.remove()
    bare = Bare(db.engine)

    def fresh():  # what a new request starts from: no chart snapshot, an empty session
        g.pop("_cache_org_chart", None)
        db.session.remove()

    def app_day(uid):
        def run():
            day = services.my_day(users[uid], now)
            rows = [t.id for t in [*day.overdue, *day.today, *day.upcoming, *day.undated]]
            result = (rows, [t.id for t in day.requests], [s.id for s in day.steps])
            fresh()
            return result
        return run

    def bare_day(uid):
        def run():
            rows, requests, steps = bare.run(DAY_SQL, {"uid": uid})
            return [r[0] for r in rows], [r[0] for r in requests], [r[0] for r in steps]
        return run

    def app_board(uid):
        def run():
            columns = services.board(users[uid], now=now)
            result = ({k: c["total"] for k, c in columns.items() if c["total"]},
                      [t.id for c in columns.values() for t in c["tasks"]])
            fresh()
            return result
        return run

    def bare_board(uid):
        def run():
            [people] = bare.run([SCOPE_SQL], {"uid": uid})
            totals, *columns = bare.run(BOARD_SQL, {"people": [r[0] for r in people],
                                                    "since": since})
            return ({k: n for k, n in totals if n}, [r[0] for c in columns for r in c])
        return run

    client = app.test_client()

    def page(path, uid):
        def sign_in():
            with client.session_transaction() as s:
                s["_user_id"], s["_fresh"] = f"{uid}:1", True

        def run():  # each request in its own context, as in a server
            resp = contextvars.Context().run(client.get, path)
            assert resp.status_code == 200, (path, resp.status_code)

        contextvars.Context().run(sign_in)
        return run

    sent: list[tuple[str, object]] = []  # (statement, parameters) as the driver got them
    event.listen(db.engine, "before_cursor_execute",
                 lambda conn, cur, stmt, params, *a: sent.append((stmt, params)))

    def statements_of(fn) -> list[tuple[str, object]]:
        sent.clear()
        fn()
        return list(sent)

    def app_scope(uid):  # the part of the board that is the chart snapshot
        def run():
            result = sorted(services._directed_ids(users[uid]))
            fresh()
            return result
        return run

    def bare_scope(uid):
        def run():
            return sorted(r[0] for r in bare.run([SCOPE_SQL], {"uid": uid})[0])
        return run

    # Warm up, and check that both ways load the same rows.
    scopes = (("department head", dept_head), ("division head", div_head),
              ("director", who["director"]))
    assert app_day(worker)() == bare_day(worker)(), "my day: the rows differ"
    for _name, uid in scopes:
        assert app_board(uid)() == bare_board(uid)(), "board: the rows differ"
        assert app_scope(uid)() == bare_scope(uid)(), "scope: the people differ"
    pairs = [("services.my_day", app_day(worker), bare_day(worker), len(DAY_SQL))]
    pairs += [(f"services.board ({name})", app_board(uid), bare_board(uid), 1 + len(BOARD_SQL))
              for name, uid in scopes]
    pairs.append(("  of which the chart snapshot (division)", app_scope(div_head),
                  bare_scope(div_head), 1))
    rules = {r.rule for r in app.url_map.iter_rules()}
    for path, uid, bare_fn, n in (("/tasks/", worker, bare_day(worker), len(DAY_SQL)),
                                  ("/tasks/board", dept_head, bare_board(dept_head),
                                   1 + len(BOARD_SQL))):
        if path in rules:
            run = page(path, uid)
            run()
            pairs.append((f"page {path}", run, bare_fn, n))
    n_app = {label: len(statements_of(fn)) for label, fn, _b, _n in pairs}
    n_bare = {label: n for label, _a, _b, n in pairs}
    results = timed([(label, a, b) for label, a, b, _n in pairs])

    # Every statement the services send, timed by the database (EXPLAIN ANALYZE), and the
    # plan of the slowest (PostgreSQL).
    explained = []
    if db.engine.dialect.name == "postgresql":
        for label, fn in (("my day", app_day(worker)),
                          ("board of the division head", app_board(div_head)),
                          ("board of the director", app_board(who["director"]))):
            for stmt, params in statements_of(fn):
                cur = bare.raw.cursor()
                cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {stmt}", params)
                plan = [r[0] for r in cur.fetchall()]
                bare.raw.rollback()
                ms = float(plan[-1].split(":")[1].split()[0])
                explained.append((label, ms, " ".join(stmt.split())[:90], plan))
    bare.close()

    day_rows = sum(len(x) for x in app_day(worker)())
    people = db.session.scalar(select(func.count()).select_from(User))
    fresh()
    print(f"\ndatabase: {db.engine.dialect.name}; {total:,} tasks; {people} people; {ROUNDS} "
          f"calls of each; my day of a person with {counts[worker]:,} tasks ({day_rows} rows); "
          f"boards of heads of {len(app_scope(dept_head)())}, {len(app_scope(div_head)())} "
          f"and {len(app_scope(who['director'])())} people")
    print(f"{'':42} {'p50':>9} {'p95':>9}   ratio p50   p95   statements")
    for label, (t_app, t_bare) in results.items():
        a50, a95 = pct(t_app, 50) * 1000, pct(t_app, 95) * 1000
        b50, b95 = pct(t_bare, 50) * 1000, pct(t_bare, 95) * 1000
        print(f"{label:<42} {a50:7.1f}ms {a95:7.1f}ms   {a50 / b50:9.2f} {a95 / b95:5.2f}   "
              f"{n_app[label]}")
        print(f"{'  bare SQL, same rows':<42} {b50:7.1f}ms {b95:7.1f}ms{'':24}{n_bare[label]}")
    if explained:
        print("\nstatements of the services, execution time in the database:")
        for label, ms, text, _plan in explained:
            print(f"  {label:<27} {ms:7.2f} ms  {text}")
        label, ms, text, plan = max((e for e in explained if " task" in e[2]),
                                    key=lambda e: e[1])
        print(f"\nplan of the slowest ({label}, {ms:.2f} ms):")
        for line in plan:
            print(f"  {line}")


def main() -> None:
    url, pg = database_url()
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from app import create_app
    from app.core.passwords import hash_password
    from app.extensions import db

    reuse = os.environ.get("BENCH_REUSE") if pg else None
    schema = reuse or f"crm_bench_tasks_{uuid.uuid4().hex[:8]}"
    options = {}
    admin = None
    if pg:
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        if not reuse:
            with admin.connect() as conn:
                pgschema.prepare(conn)
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        options = {"connect_args": {"options": f"-csearch_path={pgschema.search_path(schema)}"}}
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "CRM_ENV": "production", "INSTANCE_DIR": tmp,
                      "SQLALCHEMY_ENGINE_OPTIONS": options})
    now = datetime.now(UTC)
    try:
        with app.app_context():
            if not reuse:
                from flask_migrate import upgrade

                upgrade()
                t0 = time.perf_counter()
                who = build_chart(db, hash_password("bench-password-1"))
                generate_tasks(db, who, now)
                if pg:
                    with db.engine.connect().execution_options(
                            isolation_level="AUTOCOMMIT") as conn:
                        conn.execute(sa.text("VACUUM ANALYZE task"))
                        conn.execute(sa.text("VACUUM ANALYZE task_step"))
                else:
                    db.session.execute(sa.text("ANALYZE"))
                    db.session.commit()
                print(f"generated {TASKS:,} tasks in {time.perf_counter() - t0:.0f} s "
                      f"(schema {schema})" if pg else f"generated {TASKS:,} tasks in "
                      f"{time.perf_counter() - t0:.0f} s ({url})")
            else:
                who = rebuild_who(db)
            measure(app, db, who, now)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if admin is not None:
            if os.environ.get("BENCH_KEEP") or reuse:
                print(f"schema {schema} kept")
            else:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def rebuild_who(db) -> dict:
    """Who is who in a kept schema: read back from the chart."""
    from app.orgchart import chart as charts

    chart = charts.load()
    director = next(a.user_id for a in chart.assignments if chart.posts[a.post_id].title == "Director")
    departments = []
    for unit in sorted(chart.units.values(), key=lambda u: u.id):
        if unit.kind != "department":
            continue
        posts = chart.unit_posts[unit.id]
        div_head = chart.own[chart.head[unit.parent_id].id][0].user_id
        holders = [chart.own[p.id][0].user_id for p in posts if chart.own[p.id]]
        departments.append((div_head, holders[0], holders[1:], [p.id for p in posts]))
    return {"director": director, "departments": departments}


if __name__ == "__main__":
    main()
