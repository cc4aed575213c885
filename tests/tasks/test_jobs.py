"""Clock-driven jobs of tasks against a real SMTP server: reminders at their time, overdue
work escalated to the superior, the daily digest of overdue and due-today work."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.core import clock, jobs
from app.core.models import AuditEvent, Notification, OutboundEmail
from app.orgchart import services as org
from app.tasks import jobs as task_jobs
from app.tasks import services as tasks
from app.tasks.models import Digest, Reminder, Task

T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)  # a Wednesday
MOSCOW = ZoneInfo("Europe/Moscow")


# --- helpers --------------------------------------------------------------------------------

def _run(name: str) -> str:
    return jobs.run_due(clock.utcnow(), only=name)[name]


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _text(mail) -> str:
    return mail.get_payload(decode=True).decode()


def _subject(mail) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(mail["Subject"])))


def _notes(db, user, kind) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(
        Notification.user_id == user.id, Notification.kind == kind).order_by(Notification.id)))


def _count(db, model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _task(db, actor, title, who=None, **extra) -> Task:
    data = {"title": title, **{k: v.isoformat() if isinstance(v, datetime) else v
                               for k, v in extra.items()}}
    if who is not None:
        data["assignee"] = f"user:{who.id}"
    task = tasks.create_task(actor, data)
    db.session.commit()
    return task


def _russian(db, user, zone="Europe/Moscow"):
    user.language, user.timezone = "ru", zone
    db.session.commit()
    return user


def test_jobs_are_registered():
    assert {"task_reminders", "task_escalate", "task_digest"} <= set(jobs.registered())


# --- reminders ------------------------------------------------------------------------------

def test_a_reminder_fires_once_at_its_time_with_a_notification_and_an_email(
        smtp_server, office, db):
    clock.freeze(T0)
    task = _task(db, office.Helen, "Call Acme about the contract", office.Sam,
                 due_at=T0 + timedelta(days=1))
    tasks.add_reminder(office.Sam, task.id, {"remind_at": (T0 + timedelta(hours=2)).isoformat(),
                                             "note": "Have the price list ready"})
    db.session.commit()

    clock.advance(timedelta(hours=1, minutes=59))
    assert _run("task_reminders") == "reminded 0"
    assert _notes(db, office.Sam, "task_reminder") == []
    assert _run("send_email") == "sent 0, failed 0"

    clock.advance(timedelta(minutes=1))
    assert _run("task_reminders") == "reminded 1"
    assert _run("task_reminders") == "reminded 0"
    [note] = _notes(db, office.Sam, "task_reminder")
    assert note.title == "Reminder: Call Acme about the contract"
    assert note.body == "Have the price list ready"
    assert note.url == f"/tasks/{task.id}"
    assert _notes(db, office.Helen, "task_reminder") == []
    reminder = db.session.scalar(select(Reminder).where(Reminder.task_id == task.id))
    assert reminder.sent_at == clock.utcnow()

    assert _run("send_email") == "sent 1, failed 0"
    clock.advance(timedelta(hours=1))
    assert _run("task_reminders") == "reminded 0"
    assert _run("send_email") == "sent 0, failed 0"
    _wait(lambda: len(smtp_server.messages) == 1)
    mail = smtp_server.messages[0]
    assert mail["To"] == office.Sam.email
    assert _subject(mail) == "Reminder: Call Acme about the contract"
    body = _text(mail)
    assert "Have the price list ready" in body
    assert "Task: Call Acme about the contract" in body
    assert "Due: 5/7/26, 9:00\u202fAM" in body  # Sam reads English, in UTC
    assert f"/tasks/{task.id}" in body
    assert len(smtp_server.messages) == 1


def test_a_reminder_speaks_the_recipients_language_and_time_zone(smtp_server, office, db, app):
    clock.freeze(T0)
    sara = _russian(db, office.Sara)
    due = T0 + timedelta(days=2, hours=3)
    task = _task(db, office.Helen, "Сверить счета", sara, due_at=due)
    tasks.add_reminder(sara, task.id, {"remind_at": (T0 + timedelta(minutes=30)).isoformat()})
    db.session.commit()
    clock.advance(timedelta(minutes=30))
    app.config["BASE_URL"] = "https://crm.example.test/"
    try:
        assert _run("task_reminders") == "reminded 1"
    finally:
        app.config.pop("BASE_URL")
    assert _run("send_email") == "sent 1, failed 0"
    _wait(lambda: len(smtp_server.messages) == 1)
    mail = smtp_server.messages[0]
    with force_locale("ru"):
        expected = _("Reminder: %(title)s", title="Сверить счета")
    assert _subject(mail) == expected
    [note] = _notes(db, sara, "task_reminder")
    assert note.title == expected
    body = _text(mail)
    # Russian date and time, in Moscow time (UTC+3): 8 May, 15:00.
    assert format_datetime(due, "short", tzinfo=MOSCOW, locale="ru") == "08.05.2026, 15:00"
    assert "08.05.2026, 15:00" in body
    assert "PM" not in body and "AM" not in body
    assert f"https://crm.example.test/tasks/{task.id}" in body


def test_a_reminder_about_closed_work_or_for_a_deactivated_account_says_nothing(
        smtp_server, office, db):
    clock.freeze(T0)
    cancelled = _task(db, office.Helen, "Order chairs", office.Sam)
    other = _task(db, office.Helen, "Book the room", office.Sara)
    tasks.add_reminder(office.Sam, cancelled.id,
                       {"remind_at": (T0 + timedelta(hours=1)).isoformat()})
    tasks.add_reminder(office.Sara, other.id, {"remind_at": (T0 + timedelta(hours=1)).isoformat()})
    tasks.set_status(office.Helen, cancelled.id, {"action": "cancel"})
    office.Sara.active = False
    db.session.commit()
    clock.advance(timedelta(hours=2))
    assert _run("task_reminders") == "reminded 0"
    assert _count(db, Reminder, Reminder.sent_at.is_(None)) == 0  # handled, never again
    assert _count(db, Notification, Notification.kind == "task_reminder") == 0
    assert _run("send_email") == "sent 0, failed 0"
    assert smtp_server.messages == []


def test_many_reminders_go_out_in_committed_batches(office, db, monkeypatch):
    monkeypatch.setattr(task_jobs, "BATCH", 3)
    clock.freeze(T0)
    task = _task(db, office.Helen, "Weekly figures", office.Sam)
    for i in range(7):
        tasks.add_reminder(office.Sam, task.id,
                           {"remind_at": (T0 + timedelta(minutes=10 + i)).isoformat()})
    db.session.commit()
    clock.advance(timedelta(hours=1))
    assert _run("task_reminders") == "reminded 7"
    assert len(_notes(db, office.Sam, "task_reminder")) == 7
    assert _count(db, OutboundEmail, OutboundEmail.to_address == office.Sam.email) == 7
    assert _run("task_reminders") == "reminded 0"


# --- escalation -----------------------------------------------------------------------------

def test_overdue_work_is_escalated_once_to_the_assignees_superior(office, db):
    clock.freeze(T0)
    task = _task(db, office.Dora, "Prepare the offer", office.Sam,
                 due_at=T0 + timedelta(hours=1))
    clock.advance(timedelta(minutes=59))
    assert _run("task_escalate") == "escalated 0"

    clock.advance(timedelta(minutes=2))
    assert _run("task_escalate") == "escalated 1"
    assert _run("task_escalate") == "escalated 0"
    [note] = _notes(db, office.Helen, "task_overdue")  # Sam's head, not the setter Dora
    assert note.title == "Overdue work of Sam"
    assert note.body == "Prepare the offer" and note.url == f"/tasks/{task.id}"
    for someone in (office.Dora, office.Sam, office.Sara, office.Fred):
        assert _notes(db, someone, "task_overdue") == []
    assert db.session.get(Task, task.id).escalated_at == clock.utcnow()
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "task.escalate",
                                                       AuditEvent.entity_id == str(task.id)))
    assert event.after == {"told": [office.Helen.id]}

    # A later due time is a new promise: missed again, it is escalated again.
    tasks.update_task(office.Sam, task.id, {"due_at": (clock.utcnow() + timedelta(hours=3))
                                            .isoformat()})
    db.session.commit()
    clock.advance(timedelta(hours=2))
    assert _run("task_escalate") == "escalated 0"
    clock.advance(timedelta(hours=2))
    assert _run("task_escalate") == "escalated 1"
    assert _run("task_escalate") == "escalated 0"
    assert len(_notes(db, office.Helen, "task_overdue")) == 2


def test_work_done_or_not_yet_due_or_waiting_is_not_escalated(office, db):
    clock.freeze(T0)
    done = _task(db, office.Helen, "Done in time", office.Sam, due_at=T0 + timedelta(hours=1))
    tasks.set_status(office.Sam, done.id, {"action": "done"})
    _task(db, office.Helen, "Later", office.Sam, due_at=T0 + timedelta(days=3))
    _task(db, office.Helen, "No due time", office.Sam)
    asked = tasks.create_task(office.Sam, {"title": "Pay the bill",
                                           "assignee": f"post:{office.cashier.id}",
                                           "due_at": (T0 + timedelta(hours=1)).isoformat()})
    db.session.commit()
    assert asked.status == "requested"
    clock.advance(timedelta(days=1))
    assert _run("task_escalate") == "escalated 0"
    assert _count(db, Notification, Notification.kind == "task_overdue") == 0


def test_overdue_stages_go_to_the_holders_superior_or_with_nobody_to_the_runs_starter(
        office, admin, db):
    clock.freeze(T0)
    branch = org.create_unit(admin, {"name": "Branch", "kind": "company"})
    nobody = org.create_post(admin, {"unit_id": branch.id, "title": "Branch courier"})
    programme = tasks.create_programme(office.Helen, {"theme": "new client", "name": "Onboarding",
        "stages": [{"key": "pay", "title": "Take the payment", "post_id": office.cashier.id,
                    "duration_hours": 4},
                   {"key": "deliver", "title": "Deliver the papers", "post_id": nobody.id,
                    "duration_hours": 2}]})
    run = tasks.start_run(office.Helen, {"programme_id": programme.id, "title": "Acme"})
    db.session.commit()
    pay, deliver = run.stages
    assert pay.assignee_id == office.Fred.id  # the Cashier post is held from above by Fred

    clock.advance(timedelta(hours=4, minutes=1))
    assert _run("task_escalate") == "escalated 1"
    [note] = _notes(db, office.Dora, "task_overdue")  # Fred's superior
    assert note.title == "Overdue work of Fred" and note.url == f"/tasks/{pay.id}"
    assert _notes(db, office.Helen, "task_overdue") == []

    tasks.set_status(office.Fred, pay.id, {"action": "done"})
    db.session.commit()
    deliver = db.session.get(Task, deliver.id)
    assert (deliver.status, deliver.assignee_id) == ("open", None)
    clock.advance(timedelta(hours=3))
    assert _run("task_escalate") == "escalated 1"
    [note] = _notes(db, office.Helen, "task_overdue")
    assert note.title == "Overdue work of —" and note.url == f"/tasks/{deliver.id}"
    assert _run("task_escalate") == "escalated 0"


def test_overdue_work_of_the_top_of_the_chart_goes_to_whoever_set_it(office, admin, db):
    clock.freeze(T0)
    theirs = _task(db, admin, "Sign the annual report", office.Dora, due_at=T0 + timedelta(hours=1))
    _task(db, office.Dora, "Own note to self", due_at=T0 + timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    assert _run("task_escalate") == "escalated 2"
    [note] = _notes(db, admin, "task_overdue")
    assert note.url == f"/tasks/{theirs.id}"
    assert _notes(db, office.Dora, "task_overdue") == []  # nobody tells Dora of her own note


def test_escalating_many_tasks_goes_in_batches(office, db, monkeypatch):
    monkeypatch.setattr(task_jobs, "BATCH", 4)
    clock.freeze(T0)
    for i in range(9):
        _task(db, office.Helen, f"Call client {i}", office.Sara if i % 2 else office.Sam,
              due_at=T0 + timedelta(minutes=i))
    clock.advance(timedelta(hours=1))
    assert _run("task_escalate") == "escalated 9"
    assert len(_notes(db, office.Helen, "task_overdue")) == 9
    assert _run("task_escalate") == "escalated 0"


# --- the daily digest -----------------------------------------------------------------------

def _day(db, office):
    """Sam (UTC, English) and Sara (Moscow, Russian) with work around 6 May 2026."""
    sara = _russian(db, office.Sara)
    day = datetime(2026, 5, 6, tzinfo=UTC)
    clock.freeze(day - timedelta(days=3))
    made = {
        "late": _task(db, office.Helen, "Overdue report", office.Sam,
                      due_at=day - timedelta(days=1, hours=-10)),
        "today": _task(db, office.Helen, "Meeting notes", office.Sam,
                       due_at=day + timedelta(hours=23)),
        "tomorrow": _task(db, office.Helen, "Tomorrow's plan", office.Sam,
                          due_at=day + timedelta(days=1, hours=9)),
        "done": _task(db, office.Helen, "Finished already", office.Sam,
                      due_at=day + timedelta(hours=12)),
        "sara": _task(db, office.Helen, "Счета поставщиков", sara,
                      due_at=day + timedelta(hours=20)),  # 23:00 in Moscow: today
        "sara_late_evening": _task(db, office.Helen, "Ночная выгрузка", sara,
                                   due_at=day + timedelta(hours=22)),  # 01:00 tomorrow there
        "fred": _task(db, office.Fred, "Quarter close", office.Fred,
                      due_at=day + timedelta(days=6)),
        "with_step": _task(db, office.Helen, "Client visit", office.Sam,
                           due_at=day + timedelta(days=4),
                           steps=[{"title": "Approve the budget", "assignee_id": office.Dora.id,
                                   "due_at": (day + timedelta(hours=16)).isoformat()}]),
    }
    tasks.set_status(office.Sam, made["done"].id, {"action": "done"})
    db.session.commit()
    return day, made


def test_the_digest_goes_once_a_day_after_seven_local_time(smtp_server, office, db):
    day, made = _day(db, office)
    clock.freeze(day + timedelta(hours=3, minutes=59))  # 06:59 in Moscow, 03:59 UTC
    assert _run("task_digest") == "digests 0"

    clock.freeze(day + timedelta(hours=4))  # 07:00 in Moscow
    assert _run("task_digest") == "digests 1"  # Sara
    assert _run("task_digest") == "digests 0"
    clock.freeze(day + timedelta(hours=6, minutes=59))
    assert _run("task_digest") == "digests 0"  # still before 07:00 in UTC

    clock.freeze(day + timedelta(hours=7, minutes=30))
    assert _run("task_digest") == "digests 2"  # Sam, and Dora for her step
    assert _run("task_digest") == "digests 0"
    clock.advance(timedelta(hours=10))
    assert _run("task_digest") == "digests 0"
    assert _run("send_email") == "sent 3, failed 0"
    _wait(lambda: len(smtp_server.messages) == 3)
    mails = {m["To"]: m for m in smtp_server.messages}
    assert set(mails) == {office.Sam.email, office.Sara.email, office.Dora.email}

    sam = _text(mails[office.Sam.email])
    assert _subject(mails[office.Sam.email]) == "Your tasks: 1 overdue, 1 due today"
    assert "Your work for Wednesday, May 6, 2026" in sam
    overdue, today = sam.split("Overdue (1):")[1].split("Due today (1):")
    assert "Overdue report" in overdue and f"/tasks/{made['late'].id}" in overdue
    assert "Meeting notes" in today and f"/tasks/{made['today'].id}" in today
    for absent in ("Tomorrow's plan", "Finished already", "Client visit", "Quarter close"):
        assert absent not in sam

    sara = _text(mails[office.Sara.email])
    assert "Счета поставщиков" in sara and "Ночная выгрузка" not in sara
    assert "среда, 6 мая 2026" in sara  # the day in Russian
    assert "06.05.2026, 23:00" in sara  # the due time in Moscow time

    dora = _text(mails[office.Dora.email])
    assert "Client visit: Approve the budget" in dora
    assert f"/tasks/{made['with_step'].id}" in dora

    assert _count(db, Digest) == 3
    assert _notes(db, office.Fred, "task_digest") == []


def test_the_digest_comes_again_the_next_day_and_never_to_someone_with_nothing_due(
        smtp_server, office, db):
    day, made = _day(db, office)
    clock.freeze(day + timedelta(hours=8))
    assert _run("task_digest") == "digests 3"
    tasks.set_status(office.Sara, made["sara"].id, {"action": "done"})
    tasks.update_step(office.Dora, made["with_step"].id, made["with_step"].steps[0].id,
                      {"done": True})
    db.session.commit()

    clock.freeze(day + timedelta(days=1, hours=3))  # 06:00 in Moscow
    assert _run("task_digest") == "digests 0"
    clock.freeze(day + timedelta(days=1, hours=7))
    # Sam: still overdue; Sara: the late-evening task is now due today; Dora: nothing.
    assert _run("task_digest") == "digests 2"
    assert _run("task_digest") == "digests 0"
    assert _run("send_email") == "sent 5, failed 0"
    _wait(lambda: len(smtp_server.messages) == 5)
    to = sorted(m["To"] for m in smtp_server.messages)
    assert to == sorted([office.Sam.email] * 2 + [office.Sara.email] * 2 + [office.Dora.email])
    assert office.Fred.email not in to and office.Helen.email not in to
    second_sara = [m for m in smtp_server.messages if m["To"] == office.Sara.email][-1]
    assert "Ночная выгрузка" in _text(second_sara)
    assert "Счета поставщиков" not in _text(second_sara)


def test_the_digest_needs_a_fixed_number_of_queries_however_many_people(
        make_user, db, count_queries):
    clock.freeze(datetime(2026, 5, 6, 8, 0, tzinfo=UTC))
    people = []

    def digests_for(n: int) -> int:
        for i in range(n):
            people.append(make_user(f"Temp {len(people)}"))
            _task(db, people[-1], f"Own work {i}", due_at=clock.utcnow() + timedelta(hours=4))
        clock.advance(timedelta(days=1))
        with count_queries() as statements:
            assert _run("task_digest") == f"digests {len(people)}"
        # Reads; writes are one per e-mail queued (batched where the database allows).
        return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))

    assert digests_for(2) == digests_for(4)


def test_running_every_job_twice_sends_nothing_more(smtp_server, office, db):
    day, made = _day(db, office)
    tasks.add_reminder(office.Sam, made["today"].id,
                       {"remind_at": (day + timedelta(hours=8)).isoformat()})
    db.session.commit()
    clock.freeze(day + timedelta(hours=9))
    jobs.run_due(clock.utcnow())
    jobs.run_due(clock.utcnow())  # the e-mail job runs first; this run sends what the first queued
    counts = (_count(db, Notification), _count(db, OutboundEmail), _count(db, AuditEvent))
    assert _count(db, OutboundEmail, OutboundEmail.sent_at.is_(None)) == 0
    sent = _count(db, OutboundEmail)
    assert sent == 4  # a reminder and three digests
    _wait(lambda: len(smtp_server.messages) == sent)
    jobs.run_due(clock.utcnow())
    assert (_count(db, Notification), _count(db, OutboundEmail), _count(db, AuditEvent)) == counts
    assert _run("send_email") == "sent 0, failed 0"
    assert len(smtp_server.messages) == sent
