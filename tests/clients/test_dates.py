"""Significant dates remind the responsible manager ahead of each occurrence, once; a greeting
goes by e-mail from a template to a contact who agreed to be contacted."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from app.clients import services as clients
from app.clients.models import Interaction
from app.core import clock, jobs
from app.core.errors import NotFound, PermissionDenied, ValidationError
from app.core.models import AuditEvent, Notification, OutboundEmail
from app.extensions import db


def run_on(day: date, hour: int = 8) -> str:
    now = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    clock.freeze(now)
    return jobs.run_due(now, only="clients_significant_dates")["clients_significant_dates"]


def told(user) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(
        Notification.user_id == user.id, Notification.kind == "client_date")
        .order_by(Notification.id)))


@pytest.fixture
def dates(office):
    clock.freeze(datetime(2026, 3, 1, 8, tzinfo=UTC))
    alpha = clients.create_company(office.Sam, {"legal_name": "Alpha LLC", "short_name": "Alpha"})
    gamma = clients.create_company(office.Sara, {"legal_name": "Gamma"})
    gone = clients.create_company(office.Sam, {"legal_name": "Gone"})
    ivan = clients.create_contact(office.Helen, {
        "name": "Ivan Petrov", "consent": True, "emails": ["ivan@alpha.test"],
        "companies": [{"company_id": alpha.id}, {"company_id": gamma.id}]})
    private = clients.create_contact(office.Sam, {"name": "Pavel Private"})
    add = clients.add_date
    rows = {
        "founding": add(office.Sam, {"company_id": alpha.id, "kind": "founding",
                                     "on": "1998-03-10", "remind_days": 3}),
        "birthday": add(office.Helen, {"contact_id": ivan.id, "kind": "birthday",
                                       "on": "1985-03-12", "remind_days": 2}),
        "contract": add(office.Sam, {"company_id": alpha.id, "kind": "contract_end",
                                     "title": "Service contract", "on": "2026-03-20",
                                     "yearly": False, "remind_days": 5}),
        "leap": add(office.Sam, {"contact_id": private.id, "kind": "birthday",
                                 "on": "2000-02-29", "remind_days": 0}),
        "gone": add(office.Sam, {"company_id": gone.id, "kind": "founding", "on": "2001-03-08",
                                 "remind_days": 1}),
    }
    clients.archive_company(office.Sam, gone.id)
    db.session.commit()
    return rows


def test_a_reminder_comes_remind_days_ahead_once_per_occurrence(office, dates):
    assert run_on(date(2026, 3, 6)) == "reminded 0"
    assert told(office.Sam) == []
    run_on(date(2026, 3, 7))  # three days before the founding day
    [note] = told(office.Sam)
    assert note.title == "Founding day: Alpha, 10 March" and note.body.startswith("In 3 days")
    assert note.url == f"/clients/companies/{dates['founding'].company_id}"
    assert dates["founding"].reminded_for == date(2026, 3, 10)
    run_on(date(2026, 3, 7), hour=20)
    run_on(date(2026, 3, 9))
    assert len(told(office.Sam)) == 1  # once per occurrence
    # a contact at two companies: both managers are told; nobody is told of an archived one
    run_on(date(2026, 3, 10))
    assert [n.title for n in told(office.Sara)] == ["Birthday: Ivan Petrov, 12 March"]
    assert [n.title for n in told(office.Sam)][-1] == "Birthday: Ivan Petrov, 12 March"
    assert told(office.Helen) == []
    assert dates["gone"].reminded_for == date(2026, 3, 8)  # passed over, told to nobody
    assert not any("Gone" in n.title for n in told(office.Sam))
    # a one-off date, five days ahead
    run_on(date(2026, 3, 15))
    assert told(office.Sam)[-1].title == "Contract ends: Alpha, 20 March"
    assert told(office.Sam)[-1].body == "In 5 days. Service contract"
    assert len(told(office.Sam)) == 3
    # next year, the yearly dates again; the contract's end is past for good
    run_on(date(2027, 3, 7))
    run_on(date(2027, 3, 15))
    titles = [n.title for n in told(office.Sam)[3:]]
    assert titles == ["Founding day: Alpha, 10 March"]
    events = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "date.remind"))
    assert events == 4


def test_29_february_in_a_common_year_and_a_private_contact(office, dates):
    run_on(date(2027, 2, 27))
    assert told(office.Sam) == []
    run_on(date(2027, 2, 28))  # remind_days 0: on the day; kept by whoever added the contact
    [note] = told(office.Sam)
    assert note.title == "Birthday: Pavel Private, 28 February" and note.body.startswith("Today")
    assert dates["leap"].reminded_for == date(2027, 2, 28)
    run_on(date(2027, 3, 1))
    assert len(told(office.Sam)) == 1


def test_a_reminder_is_in_the_managers_language(office, dates):
    office.Sam.language = "ru"
    db.session.commit()
    run_on(date(2026, 3, 7))
    [note] = told(office.Sam)
    assert note.title.endswith("Alpha, 10 марта")  # the words follow when translated


def test_the_job_looks_at_due_dates_only(office, dates, count_queries):
    picked = clients.dates_to_remind(date(2026, 6, 1))
    assert picked == []  # nothing falls within 60 days of 1 June
    picked = {r.id for r in clients.dates_to_remind(date(2026, 3, 5))}
    assert picked == {dates[k].id for k in ("founding", "birthday", "contract", "gone")}
    rows = clients.dates_to_remind(date(2026, 3, 7))
    with count_queries() as statements:
        clients.remind_due(rows, date(2026, 3, 7))
    # companies, contacts, their managers, who is active; then the notification and audit
    assert len(statements) <= 4 + 4


@pytest.fixture
def greeting(admin):
    return clients.save_greeting_template(admin, {
        "name": "Birthday", "subject": "Happy birthday, {name}!",
        "body": "Dear {name},\n\nall of us wish you a happy birthday and thank {company} "
                "for working with us.\n\n{sender}"})


def test_a_greeting_goes_by_e_mail_to_a_contact_with_consent(app, office, admin, greeting,
                                                             smtp_server):
    clock.freeze(datetime(2026, 3, 12, 9, tzinfo=UTC))
    alpha = clients.create_company(office.Sam, {"legal_name": "Alpha LLC", "short_name": "Alpha"})
    ivan = clients.create_contact(office.Sam, {
        "name": "Ivan Petrov", "consent": True, "emails": ["ivan@alpha.test", "ip@home.test"],
        "companies": [{"company_id": alpha.id}]})
    clients.send_greeting(office.Sam, ivan.id, {"template_id": greeting.id})
    db.session.commit()
    result = jobs.run_due(clock.utcnow(), only="send_email")
    assert result["send_email"] == "sent 1, failed 0"
    [message] = smtp_server.messages
    assert message["To"] == "ivan@alpha.test"
    assert message["Subject"] == "Happy birthday, Ivan Petrov!"
    text = message.get_payload(decode=True).decode()
    assert "Dear Ivan Petrov," in text and "thank Alpha for" in text and text.rstrip().endswith("Sam")
    logged = db.session.scalar(select(Interaction).where(Interaction.company_id == alpha.id))
    assert logged.kind == "email" and logged.subject == "Happy birthday, Ivan Petrov!"
    assert logged.contact_id == ivan.id and logged.author_id == office.Sam.id


def test_no_greeting_without_consent_an_address_or_a_visible_contact(office, admin, greeting):
    alpha = clients.create_company(office.Sam, {"legal_name": "Alpha"})
    shy = clients.create_contact(office.Sam, {"name": "Shy", "emails": ["shy@alpha.test"],
                                              "companies": [{"company_id": alpha.id}]})
    mute = clients.create_contact(office.Sam, {"name": "Mute", "consent": True})
    with pytest.raises(ValidationError) as err:
        clients.send_greeting(office.Sam, shy.id, {"template_id": greeting.id})
    assert "consent" in err.value.fields
    with pytest.raises(ValidationError):
        clients.send_greeting(office.Sam, mute.id, {"template_id": greeting.id})
    with pytest.raises(NotFound):  # Fred is not in sales: Sam's contact is not his to see
        clients.send_greeting(office.Fred, shy.id, {"template_id": greeting.id})
    clients.update_contact(office.Sam, shy.id, {"consent": True})
    with pytest.raises(ValidationError):
        clients.send_greeting(office.Sam, shy.id, {"template_id": greeting.id + 1000})
    other = clients.create_company(office.Sam, {"legal_name": "Other"})
    with pytest.raises(ValidationError) as err:
        clients.send_greeting(office.Sam, shy.id, {"template_id": greeting.id,
                                                   "company_id": other.id})
    assert "company_id" in err.value.fields
    assert db.session.scalar(select(func.count()).select_from(OutboundEmail)) == 0


def test_greeting_templates_are_for_administrators_with_known_placeholders(office, admin,
                                                                            greeting):
    with pytest.raises(PermissionDenied):
        clients.save_greeting_template(office.Sam, {"name": "X", "subject": "Hi", "body": "Hi"})
    for bad in ("Hi {nmae}", "{name.__class__}", "{0}"):
        with pytest.raises(ValidationError) as err:
            clients.save_greeting_template(admin, {"name": "X", "subject": "Hi", "body": bad})
        assert "body" in err.value.fields
    assert clients.fill_greeting("{name} {{x}} {sender", {"name": "Ann"}) == "Ann {{x}} {sender"
    changed = clients.save_greeting_template(admin, {"name": "New year", "subject": "{company}",
                                                     "body": "Happy new year, {name}!"},
                                             greeting.id)
    assert changed.id == greeting.id and [t.name for t in clients.greeting_templates()] == [
        "New year"]


def test_the_greeting_button_on_the_contact_page(app, office, admin, greeting, client):
    alpha = clients.create_company(office.Sam, {"legal_name": "Alpha"})
    ivan = clients.create_contact(office.Sam, {"name": "Ivan", "consent": True,
                                               "emails": ["ivan@alpha.test"],
                                               "companies": [{"company_id": alpha.id}]})
    shy = clients.create_contact(office.Sam, {"name": "Shy", "emails": ["shy@alpha.test"],
                                              "companies": [{"company_id": alpha.id}]})
    db.session.commit()
    assert client.sign_in(office.Sam.email).status_code == 302
    page = client.get(f"/clients/contacts/{ivan.id}").get_data(as_text=True)
    assert 'data-testid="greeting"' in page and f'value="{greeting.id}">Birthday<' in page
    assert "No consent to be contacted: no greetings." in client.get(
        f"/clients/contacts/{shy.id}").get_data(as_text=True)
    sent = client.form(f"/clients/contacts/{ivan.id}/greeting", {"template_id": greeting.id})
    assert sent.status_code == 302 and sent.location.endswith(f"/clients/contacts/{ivan.id}#greeting")
    refused = client.form(f"/clients/contacts/{shy.id}/greeting", {"template_id": greeting.id},
                          follow_redirects=True)
    assert "This person has not agreed to be contacted." in refused.get_data(as_text=True)
    assert client.form(f"/clients/contacts/{ivan.id}/greeting",
                       {"template_id": "x"}).status_code == 302
    assert db.session.scalars(select(OutboundEmail.to_address)).all() == ["ivan@alpha.test"]
    other = app.test_client()
    assert other.sign_in(office.Fred.email).status_code == 302
    assert other.form(f"/clients/contacts/{ivan.id}/greeting",
                      {"template_id": greeting.id}).status_code == 404
