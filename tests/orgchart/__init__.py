"""Tests of the organisation chart; helpers shared by the service and API tests."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import func, select

from app.core.models import AuditEvent
from app.extensions import db
from app.orgchart import services
from app.orgchart.models import Assignment, Capability, Post, Unit


def build_chart(admin) -> SimpleNamespace:
    """A small chart built through the services, no one assigned yet.

    Acme (company; post CEO, head)
      Sales (division 2; Head of Sales)
        Direct (department; Head of Direct, Seller A, Seller B)
          Key accounts (section; Head of Key, Key seller)
      Finance (division 3; Head of Finance)
        Disbursements (department; Head of Disbursements, Cashier)
      Communications (division 1; Head of Communications)
        Routing (department; Head of Routing, Chart keeper)
    """
    u, p = {}, {}

    def unit(key, kind, name, parent=None, number=None, position=0):
        u[key] = services.create_unit(admin, {
            "kind": kind, "name": name, "parent_id": u[parent].id if parent else None,
            "number": number, "position": position})
        return u[key]

    def post(key, unit_key, title, head=False, position=0):
        p[key] = services.create_post(admin, {"unit_id": u[unit_key].id, "title": title,
                                              "is_head": head, "position": position})
        return p[key]

    unit("company", "company", "Acme")
    post("ceo", "company", "CEO", head=True)
    unit("sales", "division", "Sales", "company", "2", 1)
    post("head_sales", "sales", "Head of Sales", head=True)
    unit("direct", "department", "Direct", "sales")
    post("head_direct", "direct", "Head of Direct", head=True)
    post("seller_a", "direct", "Seller A", position=1)
    post("seller_b", "direct", "Seller B", position=2)
    unit("key", "section", "Key accounts", "direct")
    post("head_key", "key", "Head of Key", head=True)
    post("key_seller", "key", "Key seller", position=1)
    unit("finance", "division", "Finance", "company", "3", 2)
    post("head_finance", "finance", "Head of Finance", head=True)
    unit("disb", "department", "Disbursements", "finance")
    post("head_disb", "disb", "Head of Disbursements", head=True)
    post("cashier", "disb", "Cashier", position=1)
    unit("comms", "division", "Communications", "company", "1", 0)
    post("head_comms", "comms", "Head of Communications", head=True)
    unit("routing", "department", "Routing", "comms")
    post("head_routing", "routing", "Head of Routing", head=True)
    post("chart_keeper", "routing", "Chart keeper", position=1)
    db.session.commit()
    return SimpleNamespace(units=SimpleNamespace(**u), posts=SimpleNamespace(**p))


def assign(admin, post, user, **extra) -> Assignment:
    a = services.assign(admin, {"post_id": post.id, "user_id": user.id, **extra})
    db.session.commit()
    return a


def staff(admin, make_user, chart, names: dict[str, str]) -> SimpleNamespace:
    """Assign a new person to each post key given: {post_key: person name}."""
    people = {}
    for key, name in names.items():
        person = make_user(name)
        assign(admin, getattr(chart.posts, key), person)
        people[key] = person
    return SimpleNamespace(**people)


def row_counts() -> dict[str, int]:
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Unit, Post, Assignment, Capability, AuditEvent)}
