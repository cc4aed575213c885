"""Greeting templates on the client base's administration page: administrators create and
edit them; a refused form keeps what was typed with the reason and changes nothing; others
are refused."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from app.clients import services as clients
from app.clients.models import GreetingTemplate


def signed(app, user):
    c = app.test_client()
    assert c.sign_in(user.email).status_code == 302
    return c


def text(resp) -> str:
    return html.unescape(resp.get_data(as_text=True))


@pytest.fixture
def birthday(db, admin):
    row = clients.save_greeting_template(admin, {"name": "Birthday", "subject": "Happy birthday, {name}!",
                                                 "body": "Dear {name}, all the best from {sender}."})
    db.session.commit()
    return row


def count(db) -> int:
    return db.session.scalar(select(func.count(GreetingTemplate.id)))


def test_the_admin_page_lists_the_templates_with_their_forms(app, db, admin, birthday):
    page = text(signed(app, admin).get("/clients/admin"))
    listed = page.split('data-testid="greetings"')[1].split("</ul>")[0]
    assert "Birthday" in listed and "Happy birthday, {name}!" in listed
    assert f'action="/clients/admin/greetings/{birthday.id}"' in listed
    assert "Dear {name}, all the best from {sender}.</textarea>" in listed
    assert 'action="/clients/admin/greetings"' in page


def test_an_administrator_creates_a_greeting(app, db, admin):
    boss = signed(app, admin)
    resp = boss.form("/clients/admin/greetings", {"name": "New Year", "subject": "Happy New Year, {name}",
                                                  "body": "{company} and {sender} wish you well."})
    row = db.session.scalars(select(GreetingTemplate).where(GreetingTemplate.name == "New Year")).one()
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/clients/admin#greeting-{row.id}")
    assert (row.subject, row.body) == ("Happy New Year, {name}", "{company} and {sender} wish you well.")
    assert "Happy New Year, {name}" in text(boss.get("/clients/admin"))


def test_an_administrator_edits_a_greeting(app, db, admin, birthday):
    resp = signed(app, admin).form(f"/clients/admin/greetings/{birthday.id}", {
        "name": "Birthday (short)", "subject": "Congratulations, {name}",
        "body": "From {sender} at {company}."})
    assert resp.status_code == 302
    db.session.expire_all()
    row = db.session.get(GreetingTemplate, birthday.id)
    assert (row.name, row.subject, row.body) == ("Birthday (short)", "Congratulations, {name}",
                                                  "From {sender} at {company}.")
    assert count(db) == 1


def test_an_unknown_placeholder_is_refused_as_typed_and_nothing_changes(app, db, admin, birthday):
    boss = signed(app, admin)
    bad = boss.form(f"/clients/admin/greetings/{birthday.id}", {
        "name": "Renamed", "subject": "Hello {nmae}", "body": "Typed with care."})
    assert bad.status_code == 422
    page = text(bad)
    assert "Unknown placeholder {nmae}" in page
    assert 'value="Renamed"' in page and 'value="Hello {nmae}"' in page
    assert "Typed with care.</textarea>" in page
    db.session.expire_all()
    row = db.session.get(GreetingTemplate, birthday.id)
    assert (row.name, row.subject) == ("Birthday", "Happy birthday, {name}!")

    new = boss.form("/clients/admin/greetings", {"name": "Spring", "subject": "Hi",
                                                 "body": "Dear {name}, {nmae}"})
    assert new.status_code == 422
    assert "Unknown placeholder {nmae}" in text(new) and 'value="Spring"' in text(new)
    empty = boss.form("/clients/admin/greetings", {"name": "", "subject": "Hi", "body": "Hello"})
    assert empty.status_code == 422
    assert count(db) == 1


def test_an_unknown_template_is_not_found(app, db, admin):
    resp = signed(app, admin).form("/clients/admin/greetings/999999",
                                   {"name": "X", "subject": "Y", "body": "Z"})
    assert resp.status_code == 404


def test_others_may_not_manage_greetings(app, db, office, birthday):
    helen = signed(app, office.Helen)
    new = {"name": "X", "subject": "Y", "body": "Z"}
    assert helen.form("/clients/admin/greetings", new).status_code == 403
    assert helen.form(f"/clients/admin/greetings/{birthday.id}", {
        "name": "Mine", "subject": "Y", "body": "Z"}).status_code == 403
    assert helen.get("/clients/admin").status_code == 403
    db.session.expire_all()
    assert db.session.get(GreetingTemplate, birthday.id).name == "Birthday" and count(db) == 1
