"""The board drawn as SVG and PNG: content, zoom, the cache, and a large chart."""

from __future__ import annotations

import pytest
from defusedxml import ElementTree

import app.orgchart.io_views  # noqa: F401 - the routes, as registering the module does
from app.core.errors import NotFound, ValidationError
from app.core.models import User
from app.orgchart import chart as charts
from app.orgchart import drawing, services, template
from app.orgchart.models import Assignment, Post, Unit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def fresh_cache():
    drawing.clear_cache()
    yield
    drawing.clear_cache()


@pytest.fixture
def acme(admin, make_user, db):
    company = template.apply(admin, {"company": "Acme", "language": "en"})
    chart = charts.load()
    head = chart.head[next(u.id for u in chart.units.values() if u.name == "Dissemination")]
    services.assign(admin, {"post_id": head.id, "user_id": make_user("Dora Dissem").id})
    db.session.commit()
    return company


def svg_text(data: bytes) -> str:
    root = ElementTree.fromstring(data)  # parses as XML
    assert root.tag.endswith("svg")
    return " ".join(root.itertext())


def unit_named(name: str) -> Unit:
    return next(u for u in charts.load().units.values() if u.name == name)


def test_svg_shows_divisions_posts_and_holders(acme):
    text = svg_text(drawing.render("svg"))
    assert "7 · Executive" in text and "2 · Dissemination" in text and "Acme" in text
    assert "Head of the Dissemination division: Dora Dissem" in text
    assert "Sales manager: vacant — held by Dora Dissem" in text  # held from above
    assert "Cashier: vacant" in text  # nobody above holds it either


def test_png_is_a_png(acme):
    data = drawing.render("png")
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_second_call_comes_from_the_cache(admin, acme, make_user, db):
    first = drawing.render("svg")
    renders, hits = drawing.stats["renders"], drawing.stats["hits"]
    assert drawing.render("svg") is first
    assert (drawing.stats["renders"], drawing.stats["hits"]) == (renders, hits + 1)
    png = drawing.render("png")
    assert drawing.render("png") is png and drawing.stats["renders"] == renders + 1

    # a change to what is drawn draws again
    cashier = next(p for p in charts.load().posts.values() if p.title == "Cashier")
    services.assign(admin, {"post_id": cashier.id, "user_id": make_user("Carl Cash").id})
    db.session.commit()
    again = drawing.render("svg")
    assert again is not first and "Cashier: Carl Cash" in svg_text(again)


def test_the_cache_keeps_at_most_32_pictures(acme, monkeypatch):
    monkeypatch.setattr(drawing, "_draw", lambda fmt, layout: b"<svg/>")
    ids = list(charts.load().units)
    for unit_id in ids[:20]:
        for fmt in ("svg", "png"):
            drawing.render(fmt, unit_id)
    assert len(drawing._cache) == drawing.CACHE_SIZE == 32


def test_zoom_into_a_unit(acme):
    text = svg_text(drawing.render("svg", unit_named("Dissemination").id))
    assert "Sales" in text and "Publications" in text
    assert "Executive" not in text and "Cashier" not in text
    leaf = svg_text(drawing.render("svg", unit_named("Sales").id))
    assert "Sales manager" in leaf


def test_bad_requests(acme):
    with pytest.raises(NotFound):
        drawing.render("svg", 999_999)
    with pytest.raises(ValidationError):
        drawing.render("pdf")


def test_names_are_text_not_markup_or_math(admin, db):
    company = services.create_unit(admin, {"kind": "company", "name": "<b>Acme</b> & $x^2$ Ltd"})
    services.create_post(admin, {"unit_id": company.id, "title": "Boss $5", "is_head": True})
    db.session.commit()
    text = svg_text(drawing.render("svg"))
    assert "<b>Acme</b> & $x^2$ Ltd" in text and "Boss $5: vacant" in text


def test_empty_chart(db):
    assert "The chart is empty." in svg_text(drawing.render("svg"))


def test_image_routes(user_client, acme):
    svg = user_client.get("/org/export.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert "Dissemination" in svg_text(svg.data)
    png = user_client.get(f"/org/export.png?unit={unit_named('Finance').id}")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(PNG_SIGNATURE)
    assert user_client.get("/org/export.png?unit=999999").status_code == 404
    assert user_client.get("/org/export.gif").status_code == 404


def test_a_chart_of_2000_posts_draws_whole(admin, db):
    company = Unit(kind="company", name="Big")
    db.session.add(company)
    db.session.flush()
    people = [User(email=f"big{i}@example.test", name=f"Person {i}", password_hash="x")
              for i in range(500)]
    db.session.add_all(people)
    units, posts = [], []
    for d in range(7):
        division = Unit(kind="division", name=f"Division {d}", parent_id=company.id, position=d)
        db.session.add(division)
        db.session.flush()
        for k in range(10):
            units.append(Unit(kind="department", name=f"Department {d}.{k}", parent_id=division.id,
                              position=k))
    db.session.add_all(units)
    db.session.flush()
    for i in range(2000):
        posts.append(Post(unit_id=units[i % len(units)].id, title=f"Specialist in area number {i}",
                          position=i))
    db.session.add_all(posts)
    db.session.flush()
    db.session.add_all(Assignment(post_id=posts[i].id, user_id=people[i % 500].id)
                       for i in range(0, 2000, 2))
    db.session.commit()
    charts.forget()

    svg = drawing.render("svg")
    png = drawing.render("png")
    assert "Specialist in area number 1999: vacant" in svg_text(svg)
    assert png.startswith(PNG_SIGNATURE)
