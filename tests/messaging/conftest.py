"""Fixtures for the mail: a small chart with people on posts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.orgchart import services as org


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
