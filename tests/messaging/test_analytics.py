"""Mail analytics (figures on a known set of messages, who may read whose), the weekly trend
picture, the overdue replies page and their JSON API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.core import clock
from app.core.errors import NotFound, ValidationError
from app.messaging import analytics, charts, services
from app.orgchart import chart as org_chart
from tests.conftest import PASSWORD

T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)  # a Wednesday
HOUR = 3600


def _send(db, sender, to, subject, **extra):
    msg = services.send(sender, {"to": [f"user:{u.id}" for u in to], "subject": subject,
                                 "body": "Text.", **extra})
    db.session.commit()
    return msg


def _reply(db, sender, parent, to):
    return _send(db, sender, [to], f"Re: {parent.subject}", parent_id=parent.id)


@pytest.fixture
def traffic(office, db):
    """Fred asks Sam three things due in a day: one answered in 2 h (on time), one in 28 h
    (late), one never (overdue). Helen writes Sam an ordinary message; Sara asks Helen
    something she answers in 6 h. The clock ends two days after the start."""
    clock.freeze(T0)
    on_time = _send(db, office.Fred, [office.Sam], "On time", kind="request",
                    reply_due_at=(T0 + timedelta(days=1)).isoformat())
    late = _send(db, office.Fred, [office.Sam], "Late", kind="request",
                 reply_due_at=(T0 + timedelta(days=1)).isoformat())
    never = _send(db, office.Fred, [office.Sam], "Never answered", kind="request",
                  reply_due_at=(T0 + timedelta(days=1)).isoformat())
    _send(db, office.Helen, [office.Sam], "Just so you know")
    question = _send(db, office.Sara, [office.Helen], "A question", kind="request",
                     reply_due_at=(T0 + timedelta(days=1)).isoformat())
    clock.advance(timedelta(hours=2))
    _reply(db, office.Sam, on_time, office.Fred)
    clock.advance(timedelta(hours=4))
    _reply(db, office.Helen, question, office.Sara)
    clock.advance(timedelta(hours=22))
    _reply(db, office.Sam, late, office.Fred)
    clock.freeze(T0 + timedelta(days=2))
    return SimpleNamespace(on_time=on_time, late=late, never=never, question=question)


def _client(app, user):
    c = app.test_client()
    assert c.sign_in(user.email, PASSWORD).status_code == 302
    return c


def _figures(rep) -> dict:
    return rep.total.as_dict()


# --- figures --------------------------------------------------------------------------------

def test_figures_of_a_person(office, traffic, db):
    rep = analytics.report(office.Sam, {})
    assert rep.subject.token == f"user:{office.Sam.id}"
    assert _figures(rep) == {"sent": 2, "received": 4, "requests": 3, "answered_on_time": 1,
                             "answered_late": 1, "overdue": 1,
                             "median_response_seconds": pytest.approx(15 * HOUR)}
    assert len(rep.bounds) == 13  # 12 weeks by default
    assert rep.received_by_week == [0] * 11 + [4] and rep.sent_by_week == [0] * 11 + [2]
    fred = analytics.report(office.Dora, {"user_id": office.Fred.id, "weeks": 2})
    assert _figures(fred) == {"sent": 3, "received": 2, "requests": 0, "answered_on_time": 0,
                              "answered_late": 0, "overdue": 0, "median_response_seconds": None}
    assert fred.trend[-1]["week_start"] == datetime(2026, 5, 2, tzinfo=UTC)
    assert fred.end == datetime(2026, 5, 9, tzinfo=UTC)


def test_figures_of_a_unit_and_a_post(office, traffic, db):
    sales = analytics.report(office.Helen, {"unit_id": office.sales.id})
    assert [u.name for u, _f in sales.people] == ["Helen", "Sam", "Sara"]
    assert _figures(sales) == {"sent": 2 + 2 + 1, "received": 4 + 1 + 1, "requests": 4,
                               "answered_on_time": 2, "answered_late": 1, "overdue": 1,
                               "median_response_seconds": pytest.approx(6 * HOUR)}
    by_name = {u.name: f for u, f in sales.people}
    assert by_name["Helen"].median_seconds == pytest.approx(6 * HOUR)
    assert by_name["Sara"].sent == 1 and by_name["Sara"].requests == 0
    seller = analytics.report(office.Helen, {"post_id": office.seller.id})
    assert [u.name for u, _f in seller.people] == ["Sam", "Sara"]
    assert seller.total.received == 5 and seller.total.sent == 3
    company = analytics.report(office.Dora, {"unit_id": office.company.id})
    assert company.total.sent == 8 and company.total.received == 8


def test_range_leaves_out_other_weeks(office, traffic, db):
    before = analytics.report(office.Sam, {"end": "2026-05-01", "weeks": 4})
    assert _figures(before)["received"] == 0 and before.total.median_seconds is None
    assert len(before.trend) == 4
    clock.advance(timedelta(days=21))
    rep = analytics.report(office.Sam, {"weeks": 2})
    assert rep.total.received == 0 and rep.total.overdue == 0
    rep = analytics.report(office.Sam, {"weeks": 4})
    assert rep.total.received == 4 and rep.total.overdue == 1
    assert rep.received_by_week == [4, 0, 0, 0]


def test_vacant_post_has_no_people(office, db):
    clock.freeze(T0)
    rep = analytics.report(office.Fred, {"post_id": office.cashier.id})
    assert rep.people == [] and rep.total.received == 0 and rep.sent_by_week == [0] * 12


def test_each_figure_is_one_query_whatever_the_number_of_people(office, traffic, count_queries,
                                                                 make_user, admin, db):
    from app.orgchart import services as org

    for n in range(6):
        org.assign(admin, {"post_id": office.seller.id, "user_id": make_user(f"Extra {n}").id})
    db.session.commit()
    org_chart.forget()
    subject = analytics.subject_for(office.Dora, "unit", office.company.id)
    assert len(subject.people) == 11
    bounds = analytics.week_bounds(office.Dora, 12)
    with count_queries() as statements:
        rep = analytics.compute(subject, bounds)
    assert len(statements) == 3  # received, sent, median
    assert rep.total.sent == 8


# --- who may see what -----------------------------------------------------------------------

def test_who_may_read_whose_analytics(office, traffic, db):
    def may(actor, kind, target) -> bool:
        try:
            analytics.subject_for(actor, kind, target.id)
        except NotFound:
            return False
        return True

    assert may(office.Sam, "user", office.Sam)
    assert not may(office.Sam, "user", office.Dora)
    assert not may(office.Sam, "user", office.Sara)
    assert not may(office.Sam, "post", office.seller)  # Sara holds it too
    assert not may(office.Sam, "unit", office.sales)
    assert may(office.Helen, "user", office.Sam)
    assert may(office.Helen, "post", office.seller) and may(office.Helen, "unit", office.sales)
    assert not may(office.Helen, "user", office.Dora)
    assert not may(office.Helen, "user", office.Fred)
    assert not may(office.Helen, "unit", office.finance)
    assert not may(office.Helen, "unit", office.company)
    for target in (office.Helen, office.Fred, office.Sam):
        assert may(office.Dora, "user", target)
    assert may(office.Dora, "unit", office.company)
    choices = analytics.choices(office.Helen)
    assert [name for _id, name in choices["user"]] == ["Helen", "Sam", "Sara"]
    assert {name for _id, name in choices["post"]} == {"Head of Sales · Sales", "Seller · Sales"}
    assert [name for _id, name in choices["unit"]] == ["Office / Sales"]
    assert analytics.choices(office.Sam) == {"user": [(office.Sam.id, "Sam")], "post": [],
                                             "unit": []}


def test_seller_cannot_read_the_directors_analytics(app, office, traffic, token_for, client, db):
    sam = _client(app, office.Sam)
    for url in (f"/mail/analytics?user_id={office.Dora.id}",
                f"/mail/analytics?subject=user:{office.Dora.id}",
                f"/mail/analytics?subject=unit:{office.company.id}",
                f"/mail/analytics/chart.png?user_id={office.Dora.id}",
                "/mail/analytics?user_id=999999"):
        assert sam.get(url).status_code == 404, url
    headers = {"Authorization": f"Bearer {token_for(office.Sam)}"}
    resp = client.get(f"/api/v1/messages/analytics?user_id={office.Dora.id}", headers=headers)
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"
    resp = client.get(f"/api/v1/messages/analytics?post_id={office.director.id}", headers=headers)
    assert resp.status_code == 404


def test_bad_input_is_refused_clearly(app, office, traffic, token_for, client, db):
    headers = {"Authorization": f"Bearer {token_for(office.Helen)}"}
    for query, field in (("user_id=abc", "user_id"), ("weeks=0", "weeks"), ("weeks=105", "weeks"),
                         (f"user_id={office.Sam.id}&unit_id={office.sales.id}", "unit_id"),
                         ("end=2026-13-01", "end")):
        resp = client.get(f"/api/v1/messages/analytics?{query}", headers=headers)
        assert resp.status_code == 422, query
        assert field in resp.get_json()["error"]["fields"], query
    helen = _client(app, office.Helen)
    for query in ("subject=nobody:1", "subject=user:", "weeks=-1", "subject=user:x"):
        resp = helen.get(f"/mail/analytics?{query}")
        assert resp.status_code == 422, query
    with pytest.raises(ValidationError):
        analytics.report(office.Helen, {"user_id": office.Sam.id, "post_id": office.seller.id})
    resp = client.get("/api/v1/messages/overdue?scope=everyone", headers=headers)
    assert resp.status_code == 422 and "scope" in resp.get_json()["error"]["fields"]
    assert helen.get("/mail/overdue?scope=everyone").status_code == 422
    assert client.get("/api/v1/messages/analytics").status_code == 401


# --- API --------------------------------------------------------------------------------------

def test_analytics_api(office, traffic, token_for, client, db):
    headers = {"Authorization": f"Bearer {token_for(office.Helen)}"}
    body = client.get(f"/api/v1/messages/analytics?unit_id={office.sales.id}&weeks=2",
                      headers=headers).get_json()
    assert body["subject"] == {"kind": "unit", "id": office.sales.id, "name": "Sales"}
    assert body["weeks"] == 2 and len(body["trend"]) == 2
    assert body["totals"]["answered_on_time"] == 2 and body["totals"]["overdue"] == 1
    assert body["trend"][1] == {"week_start": "2026-05-02T00:00:00+00:00", "sent": 5, "received": 6}
    sam = next(p for p in body["people"] if p["name"] == "Sam")
    assert sam["median_response_seconds"] == pytest.approx(15 * HOUR)
    own = client.get("/api/v1/messages/analytics", headers=headers).get_json()
    assert own["subject"]["id"] == office.Helen.id and own["totals"]["received"] == 1


def test_overdue_api(office, traffic, token_for, client, db):
    def overdue(user, scope):
        headers = {"Authorization": f"Bearer {token_for(user)}"}
        return client.get(f"/api/v1/messages/overdue?scope={scope}", headers=headers).get_json()

    mine = overdue(office.Sam, "mine")
    assert mine["meta"]["total"] == 1
    item = mine["items"][0]
    assert item["subject"] == "Never answered" and item["message_id"] == traffic.never.id
    assert item["sender"] == {"id": office.Fred.id, "name": "Fred"}
    assert item["late_seconds"] == 24 * HOUR and item["url"] == f"/mail/{traffic.never.id}"
    assert item["reminded_at"] is None
    assert [i["message_id"] for i in overdue(office.Fred, "sent")["items"]] == [traffic.never.id]
    assert [i["recipient"]["name"] for i in overdue(office.Helen, "team")["items"]] == ["Sam"]
    assert overdue(office.Helen, "mine")["items"] == []
    assert overdue(office.Sara, "team")["items"] == []


# --- the chart --------------------------------------------------------------------------------

def test_chart_png_svg_and_not_modified(app, office, traffic, db):
    charts.clear_cache()
    helen = _client(app, office.Helen)
    png = helen.get(f"/mail/analytics/chart.png?unit_id={office.sales.id}")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert "private" in png.headers["Cache-Control"] and png.headers["ETag"]
    svg = helen.get(f"/mail/analytics/chart.svg?unit_id={office.sales.id}")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert b"<svg" in svg.data and b"Sales" in svg.data
    assert svg.headers["ETag"] != png.headers["ETag"]
    again = helen.get(f"/mail/analytics/chart.svg?unit_id={office.sales.id}",
                      headers={"If-None-Match": svg.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == svg.headers["ETag"]
    renders = charts.stats["renders"]
    assert helen.get(f"/mail/analytics/chart.svg?unit_id={office.sales.id}").data == svg.data
    assert charts.stats["renders"] == renders  # served from the cache

    # New data draws a new picture: the old tag no longer matches.
    _send(db, office.Fred, [office.Sam], "One more")
    changed = helen.get(f"/mail/analytics/chart.svg?unit_id={office.sales.id}",
                        headers={"If-None-Match": svg.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != svg.headers["ETag"]
    assert helen.get("/mail/analytics/chart.gif").status_code == 404


# --- pages ------------------------------------------------------------------------------------

def test_analytics_page_renders_figures(app, office, traffic, db):
    helen = _client(app, office.Helen)
    page = helen.get(f"/mail/analytics?subject=unit:{office.sales.id}&weeks=4")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-testid="analytics-subject">Sales<' in html
    assert f'value="unit:{office.sales.id}" selected' in html
    assert f"/mail/analytics/chart.svg?unit_id={office.sales.id}&amp;weeks=4" in html
    total = html[html.index('data-testid="analytics-total"'):]
    cells = [c.split("<")[0] for c in total.split('<td class="text-end')[1:8]]
    assert [c.split(">", 1)[1] for c in cells] == ["5", "6", "4", "2", "1", "1", "6 hours"]
    own = _client(app, office.Sam).get("/mail/analytics").get_data(as_text=True)
    assert 'data-testid="analytics-subject">Sam<' in own and "Dora" not in own


def test_overdue_page_tabs(app, office, traffic, db):
    from app.core import jobs

    jobs.run_due(clock.utcnow(), only="mail_escalate")  # Sam is reminded of the late one
    sam = _client(app, office.Sam)
    html = sam.get("/mail/overdue").get_data(as_text=True)
    assert "Never answered" in html and f'href="/mail/{traffic.never.id}"' in html
    assert 'data-testid="reminded"' in html and 'data-testid="escalated"' not in html
    assert "1 day" in html  # how late
    assert html.count('data-testid="overdue-row"') == 1
    helen = _client(app, office.Helen)
    team = helen.get("/mail/overdue?scope=team").get_data(as_text=True)
    assert "Never answered" in team and ">Sam<" in team
    assert f'href="/mail/{traffic.never.id}"' not in team  # Helen has no copy to open
    assert helen.get("/mail/overdue").get_data(as_text=True).count('data-testid="overdue-row"') == 0
    sent = _client(app, office.Fred).get("/mail/overdue?scope=sent").get_data(as_text=True)
    assert "Never answered" in sent and ">Sam<" in sent
