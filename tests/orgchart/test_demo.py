"""The demo company has a full chart, and loading it again changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from app.core.demo import load_all
from app.orgchart import chart as charts
from app.orgchart.models import Assignment, Post, Unit


def test_demo_chart(db):
    load_all()
    chart = charts.load()
    divisions = [u for u in chart.units.values() if u.kind == "division"]
    assert sorted(u.number for u in divisions) == ["1", "2", "3", "4", "5", "6", "7"]
    people = chart.people()
    assert 35 <= len(people) <= 50
    posts_per_person = [len(chart.own_posts(uid)) for uid in people]
    assert sum(1 for n in posts_per_person if n >= 2) >= 3
    vacant = [p for p in chart.posts.values() if chart.holding(p).from_post is not None]
    assert vacant and all(chart.holding(p).users for p in vacant)
    counts = [db.session.scalar(select(func.count(m.id))) for m in (Unit, Post, Assignment)]
    load_all()
    assert [db.session.scalar(select(func.count(m.id))) for m in (Unit, Post, Assignment)] == counts
