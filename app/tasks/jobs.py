"""Clock-driven work of tasks: reminders, escalation of overdue work, the daily digest.

Each job is idempotent: it handles rows whose time has come and marks them (`sent_at`,
`escalated_at`, the digest's `sent_at`), so a second run finds nothing left. Rows are
claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL so two runners never handle one twice.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.core import notifications
from app.core.jobs import job
from app.core.mail import queue_email
from app.core.models import User
from app.extensions import db
from app.tasks import services
from app.tasks.models import ACTIVE, Digest, Reminder, Task

BATCH = 200
MAX_BATCHES = 50
DIGEST_HOUR = 7  # local time from which the day's digest goes out


def _zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(value: datetime | None, user: User) -> str:
    if value is None:
        return "—"
    return format_datetime(value, "short", tzinfo=_zone(user), locale=user.language or "en")


def absolute(path: str) -> str:
    return f"{(current_app.config.get('BASE_URL') or '').rstrip('/')}{path}"


def _claim(stmt, table):
    return db.session.scalars(stmt.limit(BATCH).with_for_update(skip_locked=True, of=table)
                              ).unique().all()


@job("task_reminders")
def send_reminders(now: datetime) -> str:
    """Reminders whose time has come: a notification and an e-mail, once."""
    total = 0
    for _batch in range(MAX_BATCHES):
        due = _claim(select(Reminder).options(joinedload(Reminder.task))
                     .where(Reminder.sent_at.is_(None), Reminder.remind_at <= now)
                     .order_by(Reminder.remind_at, Reminder.id), Reminder)
        if not due:
            break
        for reminder in due:
            user, task = db.session.get(User, reminder.user_id), reminder.task
            reminder.sent_at = now
            if not user.is_active:
                continue
            with force_locale(user.language or "en"):
                title = _("Reminder: %(title)s", title=task.title)
                notifications.notify(user.id, "task_reminder", title, reminder.note or task.title,
                                     services.task_path(task.id))
                queue_email(user.email, title, "\n".join(filter(None, [
                    reminder.note, _("Task: %(title)s", title=task.title),
                    _("Due: %(when)s", when=_when(task.due_at, user)),
                    absolute(services.task_path(task.id))])))
            total += 1
        db.session.commit()
    return f"reminded {total}"


@job("task_escalate")
def escalate(now: datetime) -> str:
    """Open work (tasks and stages) past its due time: the superior of the person doing it is
    told, once per due time (a new due time may escalate again)."""
    total = 0
    for _batch in range(MAX_BATCHES):
        overdue = _claim(select(Task).options(joinedload(Task.assignee), joinedload(Task.run))
                         .where(Task.status.in_(ACTIVE), Task.escalated_at.is_(None),
                                Task.due_at < now)
                         .order_by(Task.due_at, Task.id), Task)
        if not overdue:
            break
        for task in overdue:
            services.escalate(task, now)
            total += 1
        db.session.commit()
    return f"escalated {total}"


@job("task_digest")
def digest(now: datetime) -> str:
    """Once a day, from DIGEST_HOUR local time, each person with overdue or due-today work
    gets one e-mail listing it."""
    people = db.session.scalars(
        select(User).where(User.active.is_(True), User.id.in_(
            select(Task.assignee_id).where(Task.status.in_(ACTIVE), Task.due_at.is_not(None))))
        .order_by(User.id)).all()
    last = dict(db.session.execute(select(Digest.user_id, Digest.sent_at)).all())
    sent = 0
    for user in people:
        local = now.astimezone(_zone(user))
        if local.hour < DIGEST_HOUR:
            continue
        morning = local.replace(hour=DIGEST_HOUR, minute=0, second=0, microsecond=0)
        if user.id in last and last[user.id] >= morning:
            continue
        day = services.my_day(user, now, limit=50)
        if not (day.overdue or day.today):
            continue
        with force_locale(user.language or "en"):
            lines = [_("Your work for %(day)s", day=_when(now, user)), ""]
            for heading, tasks in ((_("Overdue"), day.overdue), (_("Due today"), day.today)):
                if tasks:
                    lines.append(f"{heading}:")
                    lines += [f"- {t.title} ({_when(t.due_at, user)}) "
                              f"{absolute(services.task_path(t.id))}" for t in tasks]
                    lines.append("")
            queue_email(user.email, _("Overdue %(overdue)s, due today %(today)s",
                                      overdue=len(day.overdue), today=len(day.today)),
                        "\n".join(lines))
        row = db.session.get(Digest, user.id)
        if row is None:
            db.session.add(Digest(user_id=user.id, sent_at=now))
        else:
            row.sent_at = now
        sent += 1
    db.session.commit()
    return f"digests {sent}"

