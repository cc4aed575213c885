"""Clock-driven work of tasks: reminders, escalation of overdue work, the daily digest.

Each job is idempotent: it handles rows whose time has come and marks them (`sent_at`,
`escalated_at`, the digest's `sent_at`), so a second run finds nothing left. Rows are
claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL so two runners never handle one twice;
each batch is committed on its own.

- Reminders: at its time, the person who set it gets a notification and an e-mail, in their
  language and time zone. A reminder about work that has ended (done, cancelled, declined)
  or for a deactivated account is marked handled and says nothing.
- Escalation: open work (tasks and stages) past its due time is reported once to the nearest
  superior of the person doing it (see `services.escalate`); a new due time may escalate
  again.
- Digest: once a day, from `DIGEST_HOUR` in each person's time zone, whoever has overdue or
  due-today work (their own tasks and stages, and steps given to them in others' tasks) gets
  one e-mail listing it; nobody with nothing due gets one.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from babel.dates import format_date, format_datetime
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import joinedload

from app.core import links, notifications
from app.core.forms import zone_of
from app.core.jobs import job
from app.core.mail import queue_email
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.tasks import services
from app.tasks.models import ACTIVE, CLOSED, Digest, Reminder, Step, Task

BATCH = 200
MAX_BATCHES = 50  # per run; what is left waits for the next run
DIGEST_HOUR = 7  # local time from which the day's digest goes out
DIGEST_ITEMS = 50  # lines per section of a digest; the rest is counted
# "Today" ends at most this far from now in any time zone (UTC+14 at midnight UTC).
HORIZON = timedelta(hours=38)
NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # a digest row claimed before its first digest



def _when(value: datetime | None, user: User) -> str:
    if value is None:
        return "—"
    return format_datetime(value, "short", tzinfo=zone_of(user), locale=user.language or "en")


def absolute(path: str) -> str:
    """A link for an e-mail: absolute when BASE_URL is configured, else the path."""
    return f"{(current_app.config.get('BASE_URL') or '').rstrip('/')}{path}"


def _claim(stmt, table):
    return db.session.scalars(stmt.limit(BATCH).with_for_update(skip_locked=True, of=table)
                              ).unique().all()


def _people(ids) -> dict[int, User]:
    ids = sorted(set(ids))
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))} if ids \
        else {}


# --- reminders ----------------------------------------------------------------------------

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
        users = _people(r.user_id for r in due)
        for reminder in due:
            reminder.sent_at = now
            user, task = users.get(reminder.user_id), reminder.task
            if user is None or not user.is_active or task.status in CLOSED:
                continue
            _remind(user, task, reminder.note)
            total += 1
        db.session.commit()
        if len(due) < BATCH:
            break
    return f"reminded {total}"


def _remind(user: User, task: Task, note: str) -> None:
    with force_locale(user.language or "en"):
        title = _("Reminder: %(title)s", title=task.title)
        notifications.notify(user.id, "task_reminder", title, note or task.title,
                             services.task_path(task.id))
        lines = [note, "", _("Task: %(title)s", title=task.title)] if note else [
            _("Task: %(title)s", title=task.title)]
        if task.due_at is not None:
            lines.append(_("Due: %(when)s", when=_when(task.due_at, user)))
        lines += ["", absolute(services.task_path(task.id))]
        queue_email(user.email, title, "\n".join(lines))


# --- escalation ---------------------------------------------------------------------------

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
        charts.forget()  # the commit expired the chart's rows: the next batch loads it afresh
        if len(overdue) < BATCH:
            break
    return f"escalated {total}"


# --- the daily digest ---------------------------------------------------------------------

def _morning(user: User, now: datetime) -> datetime | None:
    """Today's DIGEST_HOUR in the person's time zone, or None before it."""
    local = now.astimezone(zone_of(user))
    if local.hour < DIGEST_HOUR:
        return None
    return local.replace(hour=DIGEST_HOUR, minute=0, second=0, microsecond=0)


def _candidates(now: datetime) -> list[User]:
    """Active people with open work or open steps due before the end of anyone's today."""
    horizon = now + HORIZON
    tasks = select(Task.assignee_id).where(Task.status.in_(ACTIVE), Task.due_at < horizon)
    steps = (select(Step.assignee_id).join(Task, Task.id == Step.task_id)
             .where(Step.done_at.is_(None), Step.due_at < horizon, Task.status.in_(ACTIVE)))
    return list(db.session.scalars(
        select(User).where(User.active.is_(True),
                           User.id.in_(tasks.union(steps).scalar_subquery()))
        .order_by(User.id)))


def _claim_digests(user_ids: list[int]) -> dict[int, Digest]:
    """Lock the digest rows of these people (creating the missing ones), skipping rows another
    runner holds, so two runners never both send someone the day's digest."""
    dialect = db.session.get_bind().dialect.name
    make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(make_insert(Digest).values([{"user_id": uid, "sent_at": NEVER}
                                                   for uid in user_ids])
                       .on_conflict_do_nothing(index_elements=["user_id"]))
    return {d.user_id: d for d in db.session.scalars(
        select(Digest).where(Digest.user_id.in_(user_ids)).order_by(Digest.user_id)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True))}


def _work_of(user_ids: list[int], now: datetime) -> tuple[dict, dict]:
    """Open tasks and open steps of these people due before the end of anyone's today, in two
    queries: {user_id: [Task]}, {user_id: [Step]}."""
    horizon = now + HORIZON
    tasks, steps = defaultdict(list), defaultdict(list)
    for task in db.session.scalars(
            select(Task).where(Task.assignee_id.in_(user_ids), Task.status.in_(ACTIVE),
                               Task.due_at < horizon).order_by(Task.due_at, Task.id)):
        tasks[task.assignee_id].append(task)
    for step in db.session.scalars(
            select(Step).options(joinedload(Step.task)).join(Task, Task.id == Step.task_id)
            .where(Step.assignee_id.in_(user_ids), Step.done_at.is_(None),
                   Step.due_at < horizon, Task.status.in_(ACTIVE),
                   Task.assignee_id.is_distinct_from(Step.assignee_id))
            .order_by(Step.due_at, Step.id)):
        steps[step.assignee_id].append(step)
    return tasks, steps


def _section(heading: str, rows: list[tuple[str, datetime, int]], user: User) -> list[str]:
    if not rows:
        return []
    lines = [f"{heading} ({len(rows)}):"]
    lines += [f"- {title} ({_when(due, user)}) {absolute(services.task_path(task_id))}"
              for title, due, task_id in rows[:DIGEST_ITEMS]]
    if len(rows) > DIGEST_ITEMS:
        lines.append(_("… and %(n)s more", n=len(rows) - DIGEST_ITEMS))
    return [*lines, ""]


def _send_digest(user: User, now: datetime, tasks: list[Task], steps: list[Step]) -> bool:
    """One e-mail of the person's overdue and due-today work; False when there is none."""
    _start, end = services._today(user, now)
    overdue = [(t.title, t.due_at, t.id) for t in tasks if t.due_at < now]
    today = [(t.title, t.due_at, t.id) for t in tasks if now <= t.due_at < end]
    my_steps = [(f"{s.task.title}: {s.title}", s.due_at, s.task_id) for s in steps
                if s.due_at < end]
    if not (overdue or today or my_steps):
        return False
    with force_locale(user.language or "en"):
        day = format_date(now.astimezone(zone_of(user)).date(), "full",
                          locale=user.language or "en")
        lines = [_("Your work for %(day)s", day=day), ""]
        lines += _section(_("Overdue"), overdue, user)
        lines += _section(_("Due today"), today, user)
        lines += _section(_("Steps given to you, due by today"), my_steps, user)
        lines.append(_("My day: %(link)s", link=absolute(
            links.path_for("tasks.my_day", "/tasks/"))))
        subject = _("Your tasks: %(overdue)s overdue, %(today)s due today",
                    overdue=len(overdue), today=len(today) + len(my_steps))
    queue_email(user.email, subject, "\n".join(lines))
    return True


@job("task_digest")
def digest(now: datetime) -> str:
    """Once a day, from DIGEST_HOUR local time, each person with overdue or due-today work
    gets one e-mail listing it."""
    people = _candidates(now)
    last = dict(db.session.execute(select(Digest.user_id, Digest.sent_at).where(
        Digest.user_id.in_([u.id for u in people]))).all()) if people else {}
    ready = []
    for user in people:
        morning = _morning(user, now)
        if morning is not None and last.get(user.id, NEVER) < morning:
            ready.append((user, morning))
    sent = 0
    for start in range(0, len(ready), BATCH):
        chunk = ready[start:start + BATCH]
        rows = _claim_digests([u.id for u, _m in chunk])
        mine = [(u, m) for u, m in chunk if u.id in rows and rows[u.id].sent_at < m]
        tasks, steps = _work_of([u.id for u, _m in mine], now) if mine else ({}, {})
        for user, _m in mine:
            if _send_digest(user, now, tasks.get(user.id, []), steps.get(user.id, [])):
                rows[user.id].sent_at = now
                sent += 1
        db.session.commit()
    return f"digests {sent}"
