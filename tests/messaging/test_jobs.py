"""Due-time jobs of the mail against a real SMTP server: e-mail to offline recipients by their
preference, scheduled sending, snoozed messages coming back, reminders and escalation."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.core import clock, jobs, presence
from app.core.models import FeedEvent, Notification, OutboundEmail
from app.messaging import jobs as mail_jobs
from app.messaging import services
from app.messaging.models import Mailbox
from app.orgchart import services as org
from app.orgchart.models import Assignment

T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)


# --- fixtures -------------------------------------------------------------------------------



@pytest.fixture
def offline(office):
    """The office's people start offline (presence is shared by every process on one Redis)."""
    people = [office.Dora, office.Helen, office.Sam, office.Sara, office.Fred]
    states = presence.of([u.id for u in people])
    assert set(states.values()) == {"offline"}, f"someone else marks these ids online: {states}"


@pytest.fixture
def online():
    """Mark people online (an open socket) for the test; forgotten afterwards."""
    marked: list[tuple[int, str]] = []

    def mark(user_id: int) -> None:
        sid = f"test-{uuid.uuid4().hex[:8]}"
        presence.seen(user_id, sid)
        marked.append((user_id, sid))

    yield mark
    for user_id, sid in marked:
        presence.gone(user_id, sid)


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _text(mail) -> str:
    return mail.get_payload(decode=True).decode()


def _send(db, sender, to, subject="Hello", body="A few words.", **extra):
    msg = services.send(sender, {"to": [f"user:{u.id}" for u in to] if isinstance(to, list) else [to],
                                 "subject": subject, "body": body, **extra})
    db.session.commit()
    return msg


def _box(db, message_id, user):
    return db.session.scalar(select(Mailbox).where(Mailbox.message_id == message_id,
                                                   Mailbox.user_id == user.id)
                             .execution_options(populate_existing=True))


def _run(name: str) -> str:
    return jobs.run_due(clock.utcnow(), only=name)[name]


def _deliver() -> str:
    """Run the e-mail jobs: the mail's (queueing), then the core's (SMTP)."""
    _run("mail_email_notify")
    return _run("send_email")


def _outbound(db) -> int:
    return db.session.scalar(select(func.count()).select_from(OutboundEmail))


def _notes(db, user, kind) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user.id,
                                                              Notification.kind == kind)))


# --- e-mail ---------------------------------------------------------------------------------

def test_jobs_are_registered(app):
    names = set(jobs.registered())
    assert {"mail_send_scheduled", "mail_wake_snoozed", "mail_escalate",
            "mail_email_notify"} <= names


def test_offline_recipient_with_immediate_gets_exactly_one_email(smtp_server, office, offline, db):
    clock.freeze(T0)
    msg = _send(db, office.Fred, [office.Sam], "Budget for May", "Please check the **figures**.")
    assert _deliver() == "sent 0, failed 0"  # within the grace: someone may read it at once
    assert _box(db, msg.id, office.Sam).emailed_at is None

    clock.advance(mail_jobs.EMAIL_GRACE + timedelta(seconds=1))
    assert _run("mail_email_notify") == "e-mailed 1 messages, 0 digests"
    assert _run("mail_email_notify") == "e-mailed 0 messages, 0 digests"
    assert _run("send_email") == "sent 1, failed 0"
    assert _deliver() == "sent 0, failed 0"
    _wait(lambda: len(smtp_server.messages) == 1)
    mail = smtp_server.messages[0]
    assert mail["To"] == office.Sam.email
    assert mail["Subject"] == "Fred: Budget for May"
    body = _text(mail)
    assert "Please check the **figures**." in body
    assert f"/mail/{msg.id}" in body
    assert _box(db, msg.id, office.Sam).emailed_at == clock.utcnow()
    assert _box(db, msg.id, office.Fred).emailed_at is None  # the sender's copy is never e-mailed
    assert len(smtp_server.messages) == 1


def test_email_links_are_absolute_with_a_base_url(smtp_server, office, offline, app, db):
    clock.freeze(T0)
    msg = _send(db, office.Fred, [office.Sam], "Link")
    clock.advance(timedelta(minutes=3))
    app.config["BASE_URL"] = "https://crm.example.test/"
    try:
        _deliver()
    finally:
        app.config.pop("BASE_URL")
    _wait(lambda: len(smtp_server.messages) == 1)
    assert f"https://crm.example.test/mail/{msg.id}" in _text(smtp_server.messages[0])


def test_online_recipient_gets_no_email_until_offline(smtp_server, office, online, db):
    clock.freeze(T0)
    msg = _send(db, office.Fred, [office.Sam], "While you are here")
    online(office.Sam.id)
    clock.advance(timedelta(minutes=5))
    assert _deliver() == "sent 0, failed 0"
    assert _deliver() == "sent 0, failed 0"
    assert smtp_server.messages == [] and _outbound(db) == 0
    assert _box(db, msg.id, office.Sam).emailed_at is None


def test_unread_mail_of_someone_who_went_offline_is_emailed_later(smtp_server, office, offline, db):
    clock.freeze(T0)
    sid = f"test-{uuid.uuid4().hex[:8]}"
    presence.seen(office.Sam.id, sid)
    try:
        msg = _send(db, office.Fred, [office.Sam], "Arrived while online")
        clock.advance(timedelta(minutes=5))
        assert _deliver() == "sent 0, failed 0"
    finally:
        presence.gone(office.Sam.id, sid)
    assert _deliver() == "sent 1, failed 0"
    _wait(lambda: len(smtp_server.messages) == 1)
    assert "Arrived while online" in smtp_server.messages[0]["Subject"]
    assert _box(db, msg.id, office.Sam).emailed_at is not None


def test_read_at_once_or_old_mail_is_not_emailed(smtp_server, office, db):
    clock.freeze(T0)
    read = _send(db, office.Fred, [office.Sam], "Read at once")
    services.mark_read(office.Sam, {"ids": [read.id]})
    db.session.commit()
    clock.advance(mail_jobs.EMAIL_WINDOW + timedelta(minutes=1))
    _send(db, office.Fred, [office.Sara], "Old news")
    clock.advance(mail_jobs.EMAIL_WINDOW)
    assert _deliver() == "sent 0, failed 0"
    assert smtp_server.messages == []


def test_digest_lists_both_messages_in_one_email(smtp_server, office, offline, db):
    clock.freeze(T0)
    services.set_preference(office.Sam, {"email_mode": "digest"})
    db.session.commit()
    first = _send(db, office.Fred, [office.Sam], "Invoices to check")
    second = _send(db, office.Helen, [office.Sam], "Plan for the week")
    clock.advance(timedelta(minutes=3))
    assert _run("mail_email_notify") == "e-mailed 0 messages, 1 digests"
    assert _run("mail_email_notify") == "e-mailed 0 messages, 0 digests"
    assert _run("send_email") == "sent 1, failed 0"
    _wait(lambda: len(smtp_server.messages) == 1)
    digest = smtp_server.messages[0]
    assert digest["To"] == office.Sam.email
    assert digest["Subject"] == "2 unread messages in the CRM"
    body = _text(digest)
    assert "Fred: Invoices to check" in body and "Helen: Plan for the week" in body
    assert f"/mail/{first.id}" in body and f"/mail/{second.id}" in body
    assert services.preference(office.Sam.id).last_digest_at == clock.utcnow()

    # A third message waits for the next digest, DIGEST_EVERY after the first.
    clock.advance(timedelta(hours=1))
    _send(db, office.Fred, [office.Sam], "Third")
    clock.advance(timedelta(minutes=3))
    assert _deliver() == "sent 0, failed 0"
    clock.advance(mail_jobs.DIGEST_EVERY)
    assert _deliver() == "sent 1, failed 0"
    _wait(lambda: len(smtp_server.messages) == 2)
    later = smtp_server.messages[1]
    assert later["Subject"] == "1 unread message in the CRM"
    assert "Third" in _text(later) and "Invoices" not in _text(later)


def test_off_gets_no_email(smtp_server, office, db):
    clock.freeze(T0)
    services.set_preference(office.Sam, {"email_mode": "off"})
    db.session.commit()
    msg = _send(db, office.Fred, [office.Sam], "Quiet")
    clock.advance(timedelta(hours=5))
    assert _deliver() == "sent 0, failed 0"
    assert _deliver() == "sent 0, failed 0"
    assert smtp_server.messages == [] and _outbound(db) == 0
    assert _box(db, msg.id, office.Sam).emailed_at is None


def test_cyrillic_subject_and_body_arrive_intact(smtp_server, office, offline, db):
    clock.freeze(T0)
    _send(db, office.Fred, [office.Sam], "Отчёт за неделю", "Счёт оплачен.")
    clock.advance(timedelta(minutes=3))
    _deliver()
    _wait(lambda: len(smtp_server.messages) == 1)
    mail = smtp_server.messages[0]
    assert str(make_header(decode_header(mail["Subject"]))) == "Fred: Отчёт за неделю"
    assert "Счёт оплачен." in _text(mail)


# --- scheduled and snoozed ------------------------------------------------------------------

def _feed(db, user, kind) -> list[FeedEvent]:
    return list(db.session.scalars(select(FeedEvent).where(FeedEvent.user_id == user.id,
                                                           FeedEvent.kind == kind)
                                   .order_by(FeedEvent.seq)))


def test_scheduled_message_is_delivered_when_due_and_not_before(office, db):
    clock.freeze(T0)
    msg = _send(db, office.Fred, [office.Sam, office.Sara], "Monday note",
                send_at=(T0 + timedelta(hours=1)).isoformat())
    assert msg.state == "scheduled"
    assert _run("mail_send_scheduled") == "sent 0"
    clock.advance(timedelta(minutes=59))
    assert _run("mail_send_scheduled") == "sent 0"
    assert _box(db, msg.id, office.Sam) is None and _feed(db, office.Sam, "message.new") == []

    clock.advance(timedelta(minutes=1))
    assert _run("mail_send_scheduled") == "sent 1"
    assert _run("mail_send_scheduled") == "sent 0"
    for person in (office.Sam, office.Sara):
        box = _box(db, msg.id, person)
        assert box.folder == "inbox" and box.read_at is None and box.created_at == clock.utcnow()
        events = _feed(db, person, "message.new")
        assert [e.payload["id"] for e in events] == [msg.id]
        assert events[0].payload["counts"]["mail_unread"] == 1
    assert _box(db, msg.id, office.Fred).folder == "sent"
    assert db.session.scalar(select(func.count()).select_from(Mailbox)
                             .where(Mailbox.message_id == msg.id)) == 3


def test_snoozed_message_comes_back_unread(office, db):
    clock.freeze(T0)
    msg = _send(db, office.Fred, [office.Sam], "Later, please")
    services.mark_read(office.Sam, {"ids": [msg.id]})
    services.snooze(office.Sam, msg.id, {"until": (T0 + timedelta(hours=2)).isoformat()})
    db.session.commit()
    assert services.counts(office.Sam)["deferred"] == 1
    clock.advance(timedelta(hours=1))
    assert _run("mail_wake_snoozed") == "woke 0"
    clock.advance(timedelta(hours=1))
    assert _run("mail_wake_snoozed") == "woke 1"
    assert _run("mail_wake_snoozed") == "woke 0"
    box = _box(db, msg.id, office.Sam)
    assert box.snoozed_until is None and box.read_at is None and box.folder == "inbox"
    assert services.counts(office.Sam) == {"unread": 1, "drafts": 0, "deferred": 0}
    moved = _feed(db, office.Sam, "message.moved")
    assert moved[-1].payload["id"] == msg.id and moved[-1].payload["snoozed_until"] is None


# --- reminders and escalation ---------------------------------------------------------------

def _request(db, sender, to, subject="Numbers, please", hours=24):
    return _send(db, sender, to, subject, "Send me the numbers.", kind="request",
                 reply_due_at=(clock.utcnow() + timedelta(hours=hours)).isoformat())


def test_escalation_reminds_once_then_tells_the_superior_once(office, db):
    clock.freeze(T0)
    msg = _request(db, office.Fred, [office.Sam])
    assert _run("mail_escalate") == "reminded 0, escalated 0"  # not due yet
    clock.advance(timedelta(hours=24, minutes=1))
    assert _run("mail_escalate") == "reminded 1, escalated 0"
    assert _run("mail_escalate") == "reminded 0, escalated 0"
    reminders = _notes(db, office.Sam, "mail.reminder")
    assert len(reminders) == 1 and "Numbers, please" in reminders[0].title
    assert reminders[0].url == f"/mail/{msg.id}"
    box = _box(db, msg.id, office.Sam)
    assert box.reminded_at == clock.utcnow() and box.escalated_at is None

    clock.advance(mail_jobs.REMIND_GRACE - timedelta(minutes=1))
    assert _run("mail_escalate") == "reminded 0, escalated 0"  # the grace is not over
    clock.advance(timedelta(minutes=1))
    assert _run("mail_escalate") == "reminded 0, escalated 1"
    assert _run("mail_escalate") == "reminded 0, escalated 0"
    told = _notes(db, office.Helen, "mail.escalation")  # Sam's head of department
    assert len(told) == 1 and "Sam" in told[0].title and "Numbers, please" in told[0].body
    assert told[0].url == "/mail/overdue?scope=team"
    assert _notes(db, office.Dora, "mail.escalation") == []
    assert _notes(db, office.Fred, "mail.escalation") == []
    assert len(_notes(db, office.Sam, "mail.reminder")) == 1
    assert _box(db, msg.id, office.Sam).escalated_at == clock.utcnow()


def test_escalation_without_a_superior_tells_the_sender(office, db):
    clock.freeze(T0)
    _request(db, office.Fred, [office.Dora], "Sign the contract")
    clock.advance(timedelta(hours=25))
    _run("mail_escalate")
    clock.advance(mail_jobs.REMIND_GRACE)
    assert _run("mail_escalate") == "reminded 0, escalated 1"
    told = _notes(db, office.Fred, "mail.escalation")
    assert len(told) == 1 and "Dora" in told[0].title
    assert told[0].url == "/mail/overdue?scope=sent"


def test_former_post_holder_is_neither_reminded_nor_escalated(office, admin, db):
    clock.freeze(T0)
    msg = _send(db, office.Fred, f"post:{office.seller.id}", "Seller question", "?",
                kind="request", reply_due_at=(T0 + timedelta(hours=4)).isoformat())
    assert _box(db, msg.id, office.Sara).via_post_id == office.seller.id
    leaving = db.session.scalar(select(Assignment).where(Assignment.post_id == office.seller.id,
                                                         Assignment.user_id == office.Sara.id))
    org.end_assignment(admin, leaving.id)
    db.session.commit()
    clock.advance(timedelta(hours=5))
    assert _run("mail_escalate") == "reminded 1, escalated 0"
    clock.advance(mail_jobs.REMIND_GRACE)
    assert _run("mail_escalate") == "reminded 0, escalated 1"
    assert _box(db, msg.id, office.Sara).reminded_at is None
    assert _box(db, msg.id, office.Sara).escalated_at is None
    assert _notes(db, office.Sara, "mail.reminder") == []
    assert len(_notes(db, office.Sam, "mail.reminder")) == 1
    assert len(_notes(db, office.Helen, "mail.escalation")) == 1  # for Sam alone


def test_answered_request_is_neither_reminded_nor_escalated(office, db):
    clock.freeze(T0)
    msg = _request(db, office.Fred, [office.Sam])
    clock.advance(timedelta(hours=2))
    _send(db, office.Sam, [office.Fred], "Re: Numbers, please", "Here they are.", parent_id=msg.id)
    assert _box(db, msg.id, office.Sam).answered_at == clock.utcnow()
    clock.advance(timedelta(days=3))
    assert _run("mail_escalate") == "reminded 0, escalated 0"
    clock.advance(mail_jobs.REMIND_GRACE)
    assert _run("mail_escalate") == "reminded 0, escalated 0"
    assert _notes(db, office.Sam, "mail.reminder") == []
    assert _notes(db, office.Helen, "mail.escalation") == []
    box = _box(db, msg.id, office.Sam)
    assert box.reminded_at is None and box.escalated_at is None


def test_request_answered_after_the_reminder_is_not_escalated(office, db):
    clock.freeze(T0)
    msg = _request(db, office.Fred, [office.Sam], hours=1)
    clock.advance(timedelta(hours=1, minutes=1))
    assert _run("mail_escalate") == "reminded 1, escalated 0"
    _send(db, office.Sam, [office.Fred], "Re: late", "Sorry.", parent_id=msg.id)
    clock.advance(mail_jobs.REMIND_GRACE * 2)
    assert _run("mail_escalate") == "reminded 0, escalated 0"
    assert _notes(db, office.Helen, "mail.escalation") == []


# --- two runners at once ----------------------------------------------------------------------

@pytest.mark.live
@pytest.mark.parametrize(("name", "first", "second"), [
    ("mail_escalate", "reminded 1, escalated 0", "reminded 0, escalated 0"),
    ("mail_email_notify", "e-mailed 1 messages, 0 digests", "e-mailed 0 messages, 0 digests"),
])
def test_two_runners_at_once_do_the_work_once(app, office, db, name, first, second):
    """Runner A has claimed and handled the rows and not yet committed; runner B, started
    then, skips the claimed rows (PostgreSQL) or waits and finds them done (SQLite)."""
    clock.freeze(T0)
    msg_id = _request(db, office.Fred, [office.Sam], hours=1).id
    sam_id = office.Sam.id
    clock.advance(timedelta(hours=2))
    db.session.close()
    claimed, release = threading.Event(), threading.Event()

    def hold(sess):
        if sess.info.pop("hold", False):
            claimed.set()
            assert release.wait(30)

    def runner(held: bool):
        out: dict = {}

        def run():
            with app.app_context():
                try:
                    db.session.info["hold"] = held
                    out["result"] = jobs.run_due(clock.utcnow(), only=name)[name]
                finally:
                    db.session.remove()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, out

    event.listen(Session, "before_commit", hold)
    try:
        a, a_out = runner(True)
        assert claimed.wait(10)
        b, b_out = runner(False)
        b.join(2)
        if db.engine.dialect.name == "postgresql":
            assert not b.is_alive() and b_out["result"] == second  # did not wait for A
        release.set()
        a.join(10)
        b.join(10)
    finally:
        release.set()
        event.remove(Session, "before_commit", hold)
    assert (a_out["result"], b_out["result"]) == (first, second)
    if name == "mail_escalate":
        assert len(db.session.scalars(select(Notification).where(
            Notification.user_id == sam_id, Notification.kind == "mail.reminder")).all()) == 1
    else:
        assert _outbound(db) == 1
        assert db.session.scalar(select(Mailbox.emailed_at).where(
            Mailbox.message_id == msg_id, Mailbox.user_id == sam_id)) is not None
    db.session.close()
