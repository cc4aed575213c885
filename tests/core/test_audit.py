"""The audit log: recorded by services, filtered by administrators, never changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, select, update

from app.core import audit, clock
from app.core.errors import PermissionDenied
from app.core.models import AuditEvent


@pytest.fixture
def event(db, admin):
    ev = audit.record(admin, "test.thing", "thing", 7, before={"a": 1}, after={"a": 2})
    db.session.commit()
    return ev


def test_orm_cannot_change_or_delete_an_event(db, event):
    event.action = "forged"
    with pytest.raises(PermissionDenied):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(AuditEvent, event.id))
    with pytest.raises(PermissionDenied):
        db.session.flush()
    db.session.rollback()
    assert db.session.get(AuditEvent, event.id).action == "test.thing"


def test_sql_cannot_change_or_delete_an_event(db, event):
    for stmt in (update(AuditEvent).values(action="forged"), delete(AuditEvent),
                 sa.text("UPDATE audit_event SET action = 'forged'")):
        with pytest.raises(sa.exc.DatabaseError), db.session.begin_nested():
            db.session.execute(stmt)
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.id == event.id)) \
        == "test.thing"


def test_no_route_changes_the_log(app):
    audit_rules = [r for r in app.url_map.iter_rules() if "audit" in r.rule]
    assert audit_rules
    for rule in audit_rules:
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule


def test_audit_page_filters(admin_client, admin, user, db):
    clock.freeze(datetime(2026, 1, 10, 12, tzinfo=UTC))
    audit.record(admin, "alpha.done", "widget", 1)
    clock.freeze(datetime(2026, 2, 10, 12, tzinfo=UTC))
    audit.record(user, "beta.done", "widget", 2)
    audit.record(user, "beta.done", "gadget", 3)
    db.session.commit()
    clock.release()

    def rows(query):
        html = admin_client.get(f"/admin/audit?{query}").get_data(as_text=True)
        return {a for a in ("alpha.done", "beta.done") if f"<code>{a}</code>" in html}, html

    assert rows(f"actor_id={user.id}")[0] == {"beta.done"}
    assert rows("action=alpha.done")[0] == {"alpha.done"}
    found, html = rows("entity_type=gadget")
    assert found == {"beta.done"} and "gadget #3" in html and "widget #2" not in html
    assert rows("entity_type=widget&entity_id=1")[0] == {"alpha.done"}
    assert rows("since=2026-02-01&until=2026-02-28")[0] == {"beta.done"}
    assert rows("until=2026-01-31")[0] == {"alpha.done"}


def test_audit_api_filters_and_is_for_admins(client, admin, user, token_for, db):
    audit.record(user, "gamma.done", "widget", 5, after={"x": 1})
    db.session.commit()
    admin_token, user_token = token_for(admin), token_for(user)
    resp = client.get("/api/v1/audit?action=gamma.done",
                      headers={"Authorization": f"Bearer {admin_token}"})
    items = resp.get_json()["items"]
    assert [(i["action"], i["entity_id"], i["after"]) for i in items] == [
        ("gamma.done", "5", {"x": 1})]
    assert client.get("/api/v1/audit", headers={
        "Authorization": f"Bearer {user_token}"}).status_code == 403
    bad = client.get("/api/v1/audit?since=yesterday", headers={
        "Authorization": f"Bearer {admin_token}"})
    assert bad.status_code == 422 and "since" in bad.get_json()["error"]["fields"]


def test_audit_page_query_count_does_not_grow(admin_client, make_user, count_queries, db):
    def events_by_new_people(n):
        for p in [make_user() for _ in range(n)]:
            audit.record(p, "x.y", "thing", p.id)
        db.session.commit()
        with count_queries() as statements:
            admin_client.get("/admin/audit")
        return statements

    assert len(events_by_new_people(20)) == len(events_by_new_people(3))
