"""Outbound e-mail: services queue rows; the `send_email` job delivers them over SMTP."""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import select

from app.core.clock import utcnow
from app.core.jobs import job
from app.core.models import OutboundEmail
from app.extensions import db

MAX_ATTEMPTS = 5
BATCH = 50


def queue_email(to: str, subject: str, body: str, due_at: datetime | None = None
                ) -> OutboundEmail:
    # Header values are single lines: a line break would inject headers.
    to, subject = " ".join(to.split()), " ".join(subject.split())
    row = OutboundEmail(to_address=to, subject=subject[:300], body=body, due_at=due_at or utcnow())
    db.session.add(row)
    return row


def _send(row: OutboundEmail) -> None:
    conf = current_app.config
    msg = EmailMessage()
    msg["From"] = conf["MAIL_FROM"]
    msg["To"] = row.to_address
    msg["Subject"] = row.subject
    msg.set_content(row.body)
    with smtplib.SMTP(conf["SMTP_HOST"], conf["SMTP_PORT"], timeout=10) as smtp:
        if conf["SMTP_TLS"]:
            smtp.starttls()
        if conf["SMTP_USER"]:
            smtp.login(conf["SMTP_USER"], conf["SMTP_PASSWORD"] or "")
        smtp.send_message(msg)


@job("send_email")
def send_due_email(now: datetime) -> str:
    """Sends due rows one at a time: each is claimed (skipping rows another worker holds),
    sent, and committed at once, so a failure later never undoes, and so repeats, mail
    already delivered."""
    if not current_app.config.get("SMTP_HOST"):
        return "SMTP is not configured"
    sent = failed = 0
    for _ in range(BATCH):
        row = db.session.scalars(
            select(OutboundEmail)
            .where(OutboundEmail.sent_at.is_(None), OutboundEmail.due_at <= now,
                   OutboundEmail.attempts < MAX_ATTEMPTS)
            .order_by(OutboundEmail.due_at, OutboundEmail.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            break
        row.attempts += 1
        try:
            _send(row)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried later
            row.last_error = str(exc)[:1000]
            row.due_at = now + timedelta(minutes=2 ** row.attempts)
            failed += 1
        else:
            row.sent_at = now
            row.last_error = None
            sent += 1
        db.session.commit()
    return f"sent {sent}, failed {failed}"
