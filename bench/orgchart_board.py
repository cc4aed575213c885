"""Render time of the board for a generated company (2,000 posts, 1,500 people) against
the time of the bare SQL that loads the same rows, in the same run.

    make bench            # SQLite file
    DATABASE_URL=postgresql://postgres@127.0.0.1/crm_bench make bench
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.environ.get("BENCH_REPEAT", "15"))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'board.sqlite'}")
    os.environ.update(INSTANCE_DIR=str(tmp), SECRET_KEY="bench")  # noqa: S106 - a throwaway key
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from app.core.passwords import hash_password
    from app.extensions import db
    from app.orgchart import chart as charts

    app = create_app()
    with app.app_context():
        upgrade()
        viewer = generate(db, hash_password("bench-password-1"))
        sqls = [
            "SELECT * FROM org_unit WHERE archived_at IS NULL",
            "SELECT * FROM org_post WHERE archived_at IS NULL",
            'SELECT * FROM org_assignment a JOIN "user" u ON u.id = a.user_id '
            "WHERE a.ended_at IS NULL",
        ]

        def bare():
            with db.engine.connect() as conn:
                for q in sqls:
                    conn.execute(sa.text(q)).all()

        client = app.test_client()
        with client.session_transaction() as s:
            s["_user_id"] = viewer
            s["_fresh"] = True

        def page():
            resp = client.get("/org/")
            assert resp.status_code == 200, resp.status_code
            charts.forget()

        page()  # warm caches and templates
        t_bare = timed(bare)
        t_page = timed(page)
    db_name = os.environ["DATABASE_URL"].split(":", 1)[0]
    print(f"database: {db_name}; chart of 2,000 posts and 1,500 people; median of {REPEAT}")
    print(f"bare SQL loading the rows : {t_bare * 1000:8.1f} ms")
    print(f"board page /org/          : {t_page * 1000:8.1f} ms")
    print(f"ratio page ÷ bare SQL = {t_page / t_bare:.1f}")


def timed(fn) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generate(db, hashed: str) -> str:
    """Company, 10 divisions, 20 departments each, 10 posts each; every 7th post vacant."""
    from sqlalchemy import insert, select

    from app.core.models import User
    from app.orgchart.models import Assignment, Post, Unit

    db.session.execute(insert(User), [
        {"email": f"b{i}@bench.test", "name": f"Person {i}", "password_hash": hashed,
         "language": "en", "timezone": "UTC", "active": True, "is_admin": False,
         "session_version": 1} for i in range(1500)])
    ids = list(db.session.scalars(select(User.id).order_by(User.id)))
    company = Unit(kind="company", name="Bench Co")
    db.session.add(company)
    db.session.flush()
    db.session.add(Post(unit_id=company.id, title="CEO", is_head=True))
    depts = []
    for d in range(10):
        div = Unit(kind="division", name=f"Division {d}", parent_id=company.id, position=d)
        db.session.add(div)
        db.session.flush()
        db.session.add(Post(unit_id=div.id, title=f"Head of division {d}", is_head=True))
        depts += [Unit(kind="department", name=f"Dept {d}.{k}", parent_id=div.id)
                  for k in range(20)]
    db.session.add_all(depts)
    db.session.flush()
    posts = [Post(unit_id=u.id, title=f"Post {u.id}.{i}", is_head=i == 0)
             for u in depts for i in range(10)]
    db.session.add_all(posts)
    db.session.flush()
    db.session.add_all([Assignment(post_id=p.id, user_id=ids[i % len(ids)])
                        for i, p in enumerate(posts) if i % 7])
    db.session.commit()
    return f"{ids[0]}:1"


if __name__ == "__main__":
    main()
