"""JSON API of the chart: units, posts, assignments, workload; errors; OpenAPI; permissions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.core import services as core
from app.core.models import AuditEvent
from app.extensions import db
from app.orgchart import services
from app.orgchart.models import Assignment, Post, Unit
from tests.orgchart import assign, build_chart, row_counts, staff

API = "/api/v1/orgchart"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def error_of(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


@pytest.fixture
def chart(admin):
    return build_chart(admin)


@pytest.fixture
def people(admin, make_user, chart):
    return staff(admin, make_user, chart, {
        "ceo": "Carla Ceo", "head_sales": "Hugo Sales", "head_direct": "Dora Direct",
        "seller_a": "Sam Seller", "cashier": "Cass Cashier"})


@pytest.fixture
def admin_token(admin, token_for):
    return bearer(token_for(admin))


# --- units ------------------------------------------------------------------------------------

def test_units_list_create_update_archive(client, admin, admin_token, chart, people):
    u = chart.units
    listed = client.get(f"{API}/units", headers=admin_token)
    assert listed.status_code == 200
    assert {x["name"] for x in listed.get_json()} == {x.name for x in vars(u).values()}
    one = client.get(f"{API}/units/{u.sales.id}", headers=admin_token).get_json()
    assert (one["name"], one["kind"], one["parent_id"], one["number"]) == (
        "Sales", "division", u.company.id, "2")

    created = client.post(f"{API}/units", headers=admin_token, json={
        "parent_id": u.sales.id, "kind": "department", "name": "Online", "position": 4})
    assert created.status_code == 201
    new_id = created.get_json()["id"]
    row = db.session.get(Unit, new_id)
    assert (row.name, row.parent_id, row.kind, row.position) == ("Online", u.sales.id, "department", 4)
    assert db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "org.unit.create", AuditEvent.entity_id == str(new_id))) is not None

    patched = client.patch(f"{API}/units/{new_id}", headers=admin_token,
                           json={"name": "E-commerce", "parent_id": u.finance.id})
    assert patched.status_code == 200 and patched.get_json()["name"] == "E-commerce"
    assert (row.name, row.parent_id) == ("E-commerce", u.finance.id)

    # archiving takes everything below with it; the holders leave their posts
    archived = client.delete(f"{API}/units/{u.direct.id}", headers=admin_token)
    assert archived.status_code == 200 and archived.get_json()["archived_at"]
    assert u.direct.archived and u.key.archived
    assert chart.posts.seller_a.archived and chart.posts.head_key.archived
    a = db.session.scalar(select(Assignment).where(Assignment.user_id == people.seller_a.id))
    assert a.ended_at is not None
    names = {x["name"] for x in client.get(f"{API}/units", headers=admin_token).get_json()}
    assert "Direct" not in names and "Key accounts" not in names and "Sales" in names
    error_of(client.get(f"{API}/units/{u.direct.id}", headers=admin_token), 404, "not_found")
    error_of(client.delete(f"{API}/units/{u.direct.id}", headers=admin_token), 404, "not_found")


def test_unit_errors(client, admin_token, chart):
    u = chart.units
    before = row_counts()
    err = error_of(client.post(f"{API}/units", headers=admin_token,
                               json={"parent_id": u.sales.id, "kind": "tribe"}), 422, "validation_error")
    assert {"kind", "name"} <= set(err["fields"])
    err = error_of(client.post(f"{API}/units", headers=admin_token,
                               json={"kind": "department", "name": "Floating"}), 422, "validation_error")
    assert "parent_id" in err["fields"]
    error_of(client.post(f"{API}/units", headers=admin_token, json={
        "parent_id": 10_000_000, "kind": "department", "name": "Nowhere"}), 404, "not_found")
    err = error_of(client.patch(f"{API}/units/{u.sales.id}", headers=admin_token,
                                json={"parent_id": u.key.id}), 422, "validation_error")
    assert "parent_id" in err["fields"]
    error_of(client.patch(f"{API}/units/{u.sales.id}", headers=admin_token,
                          json={"parent_id": u.sales.id}), 422, "validation_error")
    error_of(client.patch(f"{API}/units/{u.sales.id}", headers=admin_token, json={"name": ""}),
             422, "validation_error")
    error_of(client.patch(f"{API}/units/10000000", headers=admin_token, json={"name": "X"}),
             404, "not_found")
    assert row_counts() == before
    assert (u.sales.name, u.sales.parent_id) == ("Sales", u.company.id)


# --- posts ------------------------------------------------------------------------------------

def test_posts_list_create_update_archive(client, admin_token, chart, people):
    c, p = chart.posts, people
    listed = {x["id"]: x for x in client.get(f"{API}/posts", headers=admin_token).get_json()}
    assert set(listed) == {x.id for x in vars(c).values()}
    assert [h["id"] for h in listed[c.seller_a.id]["holders"]] == [p.seller_a.id]
    assert listed[c.seller_a.id]["held_from_above_by_post_id"] is None
    # a vacant post shows who holds it from above
    assert [h["name"] for h in listed[c.seller_b.id]["holders"]] == ["Dora Direct"]
    assert listed[c.seller_b.id]["held_from_above_by_post_id"] == c.head_direct.id
    one = client.get(f"{API}/posts/{c.head_disb.id}", headers=admin_token).get_json()
    assert [h["id"] for h in one["holders"]] == [p.ceo.id]  # Finance is vacant up to the CEO
    assert one["held_from_above_by_post_id"] == c.ceo.id and one["is_head"] is True

    created = client.post(f"{API}/posts", headers=admin_token, json={
        "unit_id": chart.units.direct.id, "title": "Seller C", "duties": "Sell", "position": 3})
    assert created.status_code == 201
    post = db.session.get(Post, created.get_json()["id"])
    assert (post.title, post.unit_id, post.duties, post.is_head) == ("Seller C", chart.units.direct.id,
                                                                    "Sell", False)
    patched = client.patch(f"{API}/posts/{post.id}", headers=admin_token,
                           json={"title": "Senior seller", "product": "Signed deals"})
    assert patched.status_code == 200
    assert (post.title, post.product, post.duties) == ("Senior seller", "Signed deals", "Sell")

    archived = client.delete(f"{API}/posts/{c.seller_a.id}", headers=admin_token)
    assert archived.status_code == 200 and archived.get_json()["archived_at"]
    a = db.session.scalar(select(Assignment).where(Assignment.post_id == c.seller_a.id))
    assert a.ended_at is not None  # the holder left; the row stays as history
    ids = {x["id"] for x in client.get(f"{API}/posts", headers=admin_token).get_json()}
    assert c.seller_a.id not in ids and post.id in ids
    error_of(client.get(f"{API}/posts/{c.seller_a.id}", headers=admin_token), 404, "not_found")


def test_post_errors(client, admin, admin_token, chart):
    c = chart.posts
    services.archive_unit(admin, chart.units.routing.id)
    db.session.commit()
    before = row_counts()
    err = error_of(client.post(f"{API}/posts", headers=admin_token,
                               json={"unit_id": chart.units.direct.id, "title": "Co-head", "is_head": True}),
                   409, "conflict")
    assert "is_head" in err["fields"]
    error_of(client.patch(f"{API}/posts/{c.seller_a.id}", headers=admin_token, json={"is_head": True}),
             409, "conflict")
    err = error_of(client.post(f"{API}/posts", headers=admin_token,
                               json={"unit_id": chart.units.routing.id, "title": "Ghost"}),
                   422, "validation_error")
    assert "unit_id" in err["fields"]
    err = error_of(client.post(f"{API}/posts", headers=admin_token, json={"title": 5}),
                   422, "validation_error")
    assert {"unit_id", "title"} <= set(err["fields"])
    error_of(client.post(f"{API}/posts", headers=admin_token,
                         json={"unit_id": 10_000_000, "title": "Nowhere"}), 404, "not_found")
    error_of(client.get(f"{API}/posts/10000000", headers=admin_token), 404, "not_found")
    error_of(client.delete(f"{API}/posts/10000000", headers=admin_token), 404, "not_found")
    assert row_counts() == before
    assert (c.seller_a.is_head, c.seller_a.title) == (False, "Seller A")


# --- assignments ------------------------------------------------------------------------------

def test_assignments_list_create_update_end(client, admin_token, chart, people, make_user):
    c, p = chart.posts, people
    listed = client.get(f"{API}/assignments", headers=admin_token).get_json()
    assert {(x["post_id"], x["user_id"]) for x in listed} == {
        (c.ceo.id, p.ceo.id), (c.head_sales.id, p.head_sales.id), (c.head_direct.id, p.head_direct.id),
        (c.seller_a.id, p.seller_a.id), (c.cashier.id, p.cashier.id)}
    newcomer = make_user("Nora Newcomer")
    created = client.post(f"{API}/assignments", headers=admin_token,
                          json={"post_id": c.seller_b.id, "user_id": newcomer.id, "acting": True})
    assert created.status_code == 201
    body = created.get_json()
    assert (body["post_id"], body["user_id"], body["acting"], body["ended_at"]) == (
        c.seller_b.id, newcomer.id, True, None)
    assert [u.id for u in services.holders_of(c.seller_b).users] == [newcomer.id]

    patched = client.patch(f"{API}/assignments/{body['id']}", headers=admin_token, json={"acting": False})
    assert patched.status_code == 200 and patched.get_json()["acting"] is False
    assert db.session.get(Assignment, body["id"]).acting is False

    ended = client.delete(f"{API}/assignments/{body['id']}", headers=admin_token)
    assert ended.status_code == 200 and ended.get_json()["ended_at"]
    assert db.session.get(Assignment, body["id"]).ended_at is not None
    listed = client.get(f"{API}/assignments", headers=admin_token).get_json()
    assert body["id"] not in {x["id"] for x in listed}
    assert [u.id for u in services.holders_of(c.seller_b).users] == [p.head_direct.id]
    # an ended assignment cannot be changed any more
    error_of(client.patch(f"{API}/assignments/{body['id']}", headers=admin_token, json={"acting": True}),
             422, "validation_error")


def test_assignment_errors(client, admin, admin_token, chart, people, make_user):
    c = chart.posts
    gone = make_user("Gone Person")
    core.set_active(admin, gone, False)
    db.session.commit()
    before = row_counts()
    err = error_of(client.post(f"{API}/assignments", headers=admin_token,
                               json={"post_id": c.seller_b.id, "user_id": gone.id}), 422, "validation_error")
    assert "user_id" in err["fields"]
    error_of(client.post(f"{API}/assignments", headers=admin_token,
                         json={"post_id": c.seller_a.id, "user_id": people.seller_a.id}), 409, "conflict")
    error_of(client.post(f"{API}/assignments", headers=admin_token,
                         json={"post_id": c.seller_b.id, "user_id": 10_000_000}), 404, "not_found")
    error_of(client.post(f"{API}/assignments", headers=admin_token,
                         json={"post_id": 10_000_000, "user_id": people.seller_a.id}), 404, "not_found")
    err = error_of(client.post(f"{API}/assignments", headers=admin_token, json={"post_id": "x"}),
                   422, "validation_error")
    assert {"post_id", "user_id"} <= set(err["fields"])
    error_of(client.patch(f"{API}/assignments/10000000", headers=admin_token, json={"acting": True}),
             404, "not_found")
    error_of(client.patch(f"{API}/assignments/10000000", headers=admin_token, json={}),
             422, "validation_error")
    error_of(client.delete(f"{API}/assignments/10000000", headers=admin_token), 404, "not_found")
    assert row_counts() == before


# --- workload ---------------------------------------------------------------------------------

def test_workload_endpoint(client, admin, admin_token, token_for, chart, people):
    services.set_thresholds(admin, {"overloaded_at": 3, "underloaded_at": 2})
    db.session.commit()
    body = client.get(f"{API}/workload", headers=admin_token).get_json()
    assert body["thresholds"] == {"overloaded_at": 3, "underloaded_at": 2}
    rows = {r["id"]: r for r in body["people"]}
    assert set(rows) == {u.id for u in vars(people).values()}
    ceo = rows[people.ceo.id]
    assert ceo["kind"] == "user" and ceo["name"] == "Carla Ceo" and ceo["flag"] == "overloaded"
    assert ceo["load"] == ceo["parts"]["posts_held"] > 3
    assert rows[people.seller_a.id]["flag"] == "underloaded"
    assert {r["id"] for r in body["posts"]} == {p.id for p in vars(chart.posts).values()}
    # a manager sees only their own people
    mine = client.get(f"{API}/workload", headers=bearer(token_for(people.head_direct))).get_json()
    assert {r["id"] for r in mine["people"]} == {people.head_direct.id, people.seller_a.id}
    assert {r["id"] for r in mine["posts"]} == {chart.posts.head_direct.id, chart.posts.seller_a.id,
                                               chart.posts.seller_b.id, chart.posts.head_key.id,
                                               chart.posts.key_seller.id}


# --- OpenAPI ----------------------------------------------------------------------------------

def test_openapi_lists_the_chart_paths(client, user, token_for):
    assert client.get("/api/v1/openapi.json").status_code == 401
    doc = client.get("/api/v1/openapi.json", headers=bearer(token_for(user))).get_json()
    paths = doc["paths"]
    expected = {
        f"{API}/units": {"get", "post"}, f"{API}/units/{{unit_id}}": {"get", "patch", "delete"},
        f"{API}/posts": {"get", "post"}, f"{API}/posts/{{post_id}}": {"get", "patch", "delete"},
        f"{API}/assignments": {"get", "post"},
        f"{API}/assignments/{{assignment_id}}": {"patch", "delete"},
        f"{API}/workload": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))


def test_the_chart_api_registers_without_warnings(app):
    import warnings

    from flask import Flask

    from app.core.api_base import CrmApi
    from app.orgchart import api as org_api

    probe = Flask("probe")
    probe.config.update(API_TITLE="probe", API_VERSION="v1", OPENAPI_VERSION="3.0.3")
    docs = CrmApi()
    docs.init_app(probe)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for blp in org_api.ALL:
            docs.register_blueprint(blp)


# --- permission matrix ------------------------------------------------------------------------

@pytest.fixture
def world(admin, make_user, token_for, chart):
    """Five actors and a spare unit, post and assignment that writes may change."""
    c, u = chart.posts, chart.units
    keeper, manager, employee, gone = (make_user(n) for n in ("Kim Keeper", "Max Manager",
                                                             "Eve Employee", "Gus Gone"))
    assign(admin, c.chart_keeper, keeper)
    services.set_capability(admin, c.chart_keeper.id, {"name": "manage_chart"})
    assign(admin, c.head_direct, manager)
    assign(admin, c.seller_a, employee)
    assign(admin, c.seller_b, gone)
    spare_unit = services.create_unit(admin, {"parent_id": u.finance.id, "kind": "department",
                                              "name": "Spare"})
    spare_post = services.create_post(admin, {"unit_id": spare_unit.id, "title": "Spare post"})
    spare_person, newcomer = make_user("Sue Spare"), make_user("Ned Newcomer")
    spare_assignment = assign(admin, spare_post, spare_person)
    tokens = {"admin": token_for(admin), "chart_keeper": token_for(keeper),
              "manager": token_for(manager), "employee": token_for(employee), "deactivated": token_for(gone)}
    core.set_active(admin, gone, False)
    db.session.commit()
    assert not core.is_admin(keeper) and services.can_edit_chart(keeper)
    assert not services.can_edit_chart(manager) and services.subordinates_of(manager)
    return SimpleNamespace(chart=chart, tokens=tokens, unit=spare_unit, post=spare_post,
                           assignment=spare_assignment, newcomer=newcomer, division=u.finance)


def _snapshot(w) -> tuple:
    return (db.session.scalar(select(func.count()).select_from(Unit)),
            db.session.scalar(select(func.count()).select_from(Post)),
            db.session.scalar(select(func.count()).select_from(Assignment)),
            w.unit.name, w.unit.archived_at, w.post.title, w.post.archived_at,
            w.assignment.acting, w.assignment.ended_at)


# (method, path, json body, success status); paths and bodies are filled from the world
ENDPOINTS = {
    "GET units": ("get", "/units", None, 200),
    "POST units": ("post", "/units", lambda w: {"parent_id": w.division.id, "kind": "department",
                                                "name": "Brand new"}, 201),
    "GET unit": ("get", "/units/{unit}", None, 200),
    "PATCH unit": ("patch", "/units/{unit}", lambda w: {"name": "Renamed"}, 200),
    "DELETE unit": ("delete", "/units/{unit}", None, 200),
    "GET posts": ("get", "/posts", None, 200),
    "POST posts": ("post", "/posts", lambda w: {"unit_id": w.unit.id, "title": "Brand new"}, 201),
    "GET post": ("get", "/posts/{post}", None, 200),
    "PATCH post": ("patch", "/posts/{post}", lambda w: {"title": "Renamed"}, 200),
    "DELETE post": ("delete", "/posts/{post}", None, 200),
    "GET assignments": ("get", "/assignments", None, 200),
    "POST assignments": ("post", "/assignments",
                         lambda w: {"post_id": w.post.id, "user_id": w.newcomer.id}, 201),
    "PATCH assignment": ("patch", "/assignments/{assignment}", lambda w: {"acting": True}, 200),
    "DELETE assignment": ("delete", "/assignments/{assignment}", None, 200),
    "GET workload": ("get", "/workload", None, 200),
}
ACTORS = ["admin", "chart_keeper", "manager", "employee", "deactivated"]
EDITORS = {"admin", "chart_keeper"}


def test_the_matrix_covers_every_chart_endpoint(app):
    """Every route of the chart API, with every method, is a row of the matrix."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(f"{API}/"):
            path = rule.rule.removeprefix(API)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((method.lower(), path))
    covered = {(m, path.replace("{unit}", "<int:unit_id>").replace("{post}", "<int:post_id>")
                .replace("{assignment}", "<int:assignment_id>").rstrip("/"))
               for m, path, _b, _s in ENDPOINTS.values()}
    assert routes == covered


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_permission_matrix(client, world, endpoint, actor):
    method, path, body, ok = ENDPOINTS[endpoint]
    url = API + path.format(unit=world.unit.id, post=world.post.id, assignment=world.assignment.id)
    kwargs = {"headers": bearer(world.tokens[actor])}
    if body is not None:
        kwargs["json"] = body(world)
    before = _snapshot(world)
    resp = getattr(client, method)(url, **kwargs)
    if actor == "deactivated":
        error_of(resp, 401, "unauthorized")
    elif method == "get" or actor in EDITORS:
        assert resp.status_code == ok, resp.get_data(as_text=True)
        if method != "get":
            assert _snapshot(world) != before  # the write happened
        return
    else:
        error_of(resp, 403, "permission_denied")
    assert _snapshot(world) == before
