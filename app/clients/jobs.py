"""Clock-driven work of the client base: leads not contacted in time, significant dates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.clients import services
from app.clients.models import Lead
from app.core.jobs import job
from app.extensions import db

BATCH = 200


@job("clients_lead_escalate")
def escalate_leads(now: datetime) -> str:
    """New leads past their contact deadline: the head is told once."""
    total = 0
    while True:
        due = db.session.scalars(select(Lead).where(
            Lead.status == "new", Lead.contacted_at.is_(None), Lead.escalated_at.is_(None),
            Lead.contact_due_at <= now).order_by(Lead.contact_due_at, Lead.id).limit(BATCH)
            .with_for_update(skip_locked=True)).all()
        if not due:
            break
        for lead in due:
            services.escalate_lead(lead, now)
        total += len(due)
        db.session.commit()
    return f"escalated {total}"


@job("clients_significant_dates")
def remind_significant_dates(now: datetime) -> str:
    """Birthdays, founding days and contract ends: the responsible manager is told
    `remind_days` before each occurrence, once per occurrence (today is the UTC date)."""
    today = now.date()
    told = after = 0
    while True:
        rows = services.dates_to_remind(today, after_id=after, limit=BATCH)
        if not rows:
            break
        told += services.remind_due(rows, today)
        after = rows[-1].id
        db.session.commit()
    return f"reminded {told}"
