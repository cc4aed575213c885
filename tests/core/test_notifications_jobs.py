"""Notifications (bell, list, read state, API), due jobs and outbound e-mail over real SMTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select

from app.core import clock, jobs, mail, notifications
from app.core.models import JobRun, Notification, OutboundEmail


def test_bell_counts_unread_and_lists_newest(user_client, user, db):
    for i in range(3):
        notifications.notify(user.id, "test", f"Note {i}")
    db.session.commit()
    page = user_client.get("/").get_data(as_text=True)
    assert 'data-testid="bell-count">3<' in page
    bell = user_client.get("/notifications/bell").get_data(as_text=True)
    assert bell.index("Note 2") < bell.index("Note 0")


def test_mark_all_read_only_touches_own(user_client, user, make_user, db):
    other = make_user()
    notifications.notify(user.id, "test", "Mine")
    notifications.notify(other.id, "test", "Theirs")
    db.session.commit()
    user_client.form("/notifications/read", {})
    assert notifications.unread_count(user.id) == 0
    assert notifications.unread_count(other.id) == 1


def test_notification_api(client, user, make_user, token_for, db):
    other = make_user()
    mine = notifications.notify(user.id, "test", "Mine")
    theirs = notifications.notify(other.id, "test", "Theirs")
    db.session.commit()
    t = {"Authorization": f"Bearer {token_for(user)}"}
    listed = client.get("/api/v1/notifications", headers=t).get_json()
    titles = [n["title"] for n in listed["items"]]
    assert "Mine" in titles and "Theirs" not in titles
    resp = client.post("/api/v1/notifications/read", json={"ids": [mine.id, theirs.id]}, headers=t)
    assert resp.get_json()["changed"] == 1
    assert db.session.get(Notification, theirs.id).read_at is None
    assert client.post("/api/v1/notifications/read", json={"ids": "x"}, headers=t).status_code == 422


def test_rolled_back_notification_is_never_emitted(app, user, db):
    sent = []
    from app.extensions import socketio

    original = socketio.emit
    socketio.emit = lambda *a, **k: sent.append(a)
    try:
        notifications.notify(user.id, "test", "Doomed")
        db.session.rollback()
        notifications.notify(user.id, "test", "Kept")
        assert sent == []  # nothing before commit
        db.session.commit()
    finally:
        socketio.emit = original
    assert [a[1]["title"] for a in sent] == ["Kept"]




def test_due_email_is_sent_once_over_smtp(smtp_server, db):
    clock.freeze(datetime(2026, 5, 1, 9, tzinfo=UTC))
    mail.queue_email("a@example.test", "Now", "Body now")
    mail.queue_email("b@example.test", "Later", "Body later", due_at=clock.utcnow() + timedelta(hours=1))
    db.session.commit()
    assert jobs.run_due(only="send_email")["send_email"] == "sent 1, failed 0"
    assert jobs.run_due(only="send_email")["send_email"] == "sent 0, failed 0"
    _wait(lambda: len(smtp_server.messages) == 1)
    msg = smtp_server.messages[0]
    assert msg["To"] == "a@example.test" and msg["Subject"] == "Now"
    assert "Body now" in msg.get_payload()
    clock.advance(timedelta(hours=2))
    jobs.run_due(only="send_email")
    _wait(lambda: len(smtp_server.messages) == 2)
    assert smtp_server.messages[1]["Subject"] == "Later"
    run = db.session.scalar(select(JobRun).where(JobRun.name == "send_email"))
    assert run.last_result == "sent 1, failed 0"


def test_unreachable_smtp_is_retried_later(app, db):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=1)  # nothing listens there
    try:
        clock.freeze(datetime(2026, 5, 1, 9, tzinfo=UTC))
        row = mail.queue_email("a@example.test", "Retry", "x")
        db.session.commit()
        assert jobs.run_due(only="send_email")["send_email"] == "sent 0, failed 1"
        db.session.refresh(row)
        assert row.sent_at is None and row.attempts == 1 and row.last_error
        assert row.due_at > clock.utcnow()
        assert jobs.run_due(only="send_email")["send_email"] == "sent 0, failed 0"  # not yet due
    finally:
        app.config.update(SMTP_HOST=None, SMTP_PORT=25)


def test_cli_runs_due_jobs(app, db):
    result = CliRunner().invoke(app.cli, ["crm", "jobs", "run-due"], catch_exceptions=False)
    assert "send_email: SMTP is not configured" in result.output


def test_jobs_registry_has_email(app):
    assert "send_email" in jobs.registered()
    assert db_count(OutboundEmail) == 0


def db_count(model):
    from sqlalchemy import func

    from app.extensions import db

    return db.session.scalar(select(func.count()).select_from(model))


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_header_injection_is_flattened_and_a_bad_row_does_not_resend_others(smtp_server, db):
    clock.freeze(datetime(2026, 5, 1, 9, tzinfo=UTC))
    mail.queue_email("a@example.test", "Hello\r\nBcc: victim@example.test", "x")
    mail.queue_email("b@example.test", "Second", "y")
    db.session.commit()
    jobs.run_due(only="send_email")
    _wait(lambda: len(smtp_server.messages) == 2)
    first = smtp_server.messages[0]
    assert first["Subject"] == "Hello Bcc: victim@example.test" and first["Bcc"] is None
    jobs.run_due(only="send_email")
    assert len(smtp_server.messages) == 2
