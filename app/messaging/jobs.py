"""Due-time jobs of the mail: scheduled sending, snoozed messages coming back, reminders and
escalation of unanswered requests, and e-mail to people who are away from the CRM.

Every job is idempotent: it works over rows whose due time has come and marks each row it
has handled (`sent_at`, `snoozed_until`, `reminded_at`, `escalated_at`, `emailed_at`), so a
second run, or a second runner, finds nothing left to do. Rows are claimed with
`FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite runs one writer at a time) and each batch is
committed on its own.

E-mail rule. A recipient hears of a message by e-mail only while they are offline (no open
CRM tab, by `app.core.presence`; "away" tabs count as online) and only for messages still
unread in the inbox:
- "immediate": one e-mail per message, sent once the message is `EMAIL_GRACE` old (who
  reads it at once gets nothing);
- "digest": at most one e-mail per `DIGEST_EVERY`, listing every such message;
- "off": nothing.
A message that arrives while its recipient is online is not e-mailed then; if it is still
unread when they go offline, it is e-mailed at the next run, as long as it arrived less than
`EMAIL_WINDOW` ago. Older unread mail is not news, and the window keeps someone who turns
e-mail on from receiving their whole backlog.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import joinedload
from werkzeug.routing import BuildError

from app.core import notifications, presence
from app.core.jobs import job
from app.core.mail import queue_email
from app.core.models import User
from app.extensions import db
from app.messaging import services
from app.messaging.models import Mailbox, Message, Preference
from app.orgchart import chart as charts

BATCH = 200
MAX_BATCHES = 50  # per run; what is left waits for the next run
REMIND_GRACE = timedelta(hours=1)  # from the reminder to telling the superior
EMAIL_GRACE = timedelta(minutes=2)  # from delivery to an e-mail
EMAIL_WINDOW = timedelta(days=1)  # older unread mail is not e-mailed
DIGEST_EVERY = timedelta(hours=4)
EXCERPT = 600  # characters of the body in an e-mail


# --- links --------------------------------------------------------------------------------

def _path(endpoint: str, fallback: str, **values) -> str:
    """A path built from the URL map (jobs run outside any request); the fallback when the
    endpoint is not there."""
    url_map = current_app.url_map
    if endpoint not in current_app.view_functions:
        return fallback
    adapter = url_map.bind("localhost", script_name=current_app.config.get("APPLICATION_ROOT") or "/")
    for rule in url_map.iter_rules(endpoint):
        args = dict(values)
        missing = set(rule.arguments) - set(args)
        if len(missing) == 1 and len(values) == 1:  # the one argument, whatever its name
            args = {missing.pop(): next(iter(values.values()))}
        try:
            return adapter.build(endpoint, args)
        except BuildError:
            continue
    return fallback


def thread_path(message_id: int) -> str:
    """Where a message's conversation is read."""
    return _path("messaging.thread", f"/mail/{message_id}", message_id=message_id)


def overdue_path(scope: str = "mine") -> str:
    return _path("messaging.overdue", "/mail/overdue", scope=scope)


def absolute(path: str) -> str:
    """A link for an e-mail: absolute when BASE_URL is configured, else the path."""
    base = (current_app.config.get("BASE_URL") or "").rstrip("/")
    return f"{base}{path}"


def _when(value: datetime, user: User) -> str:
    try:
        zone = ZoneInfo(user.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return format_datetime(value, "medium", tzinfo=zone, locale=user.language or "en")


# --- scheduled and snoozed ----------------------------------------------------------------

@job("mail_send_scheduled")
def send_scheduled(now: datetime) -> str:
    """Scheduled messages whose time has come are delivered, a committed batch at a time."""
    total = 0
    for _batch in range(MAX_BATCHES):
        due = db.session.scalar(select(func.count()).select_from(Message).where(
            Message.state == "scheduled", Message.send_at <= now))
        if not due:
            break
        total += services.send_due(now, limit=BATCH)
        db.session.commit()
        if due <= BATCH:  # all were claimed (or are held by another runner)
            break
    return f"sent {total}"


@job("mail_wake_snoozed")
def wake_snoozed(now: datetime) -> str:
    """Snoozed messages whose time has come are back in the inbox."""
    total = 0
    for _batch in range(MAX_BATCHES):
        woken = services.wake_snoozed(now)
        db.session.commit()
        total += woken
        if woken < 500:  # services.wake_snoozed takes up to 500 rows a call
            break
    return f"woke {total}"


# --- unanswered requests ------------------------------------------------------------------

def _still_holds(chart: charts.Chart, box: Mailbox) -> bool:
    """A copy that came through a post belongs to whoever holds the post now."""
    if box.via_post_id is None:
        return True
    return any(p.id == box.via_post_id for p in chart.effective_posts(box.user_id))


def _claim(stmt, after: int):
    return db.session.scalars(
        stmt.where(Mailbox.id > after).order_by(Mailbox.id).limit(BATCH)
        .options(joinedload(Mailbox.message).joinedload(Message.sender), joinedload(Mailbox.user))
        .with_for_update(skip_locked=True, of=Mailbox)).unique().all()


def _open_requests():
    return (select(Mailbox).join(Message, Message.id == Mailbox.message_id)
            .where(Mailbox.role == "recipient", Mailbox.reply_due_at.is_not(None),
                   Mailbox.answered_at.is_(None), Message.state == "sent"))


def _remind(box: Mailbox, now: datetime) -> None:
    msg, user = box.message, box.user
    with force_locale(user.language or "en"):
        notifications.notify(
            user.id, "mail.reminder",
            _("A reply is due: %(subject)s", subject=msg.subject or _("(no subject)")),
            _("%(sender)s asked for a reply by %(due)s.", sender=msg.sender.name,
              due=_when(box.reply_due_at, user)),
            url=thread_path(msg.id))
    box.reminded_at = now


def _escalate(chart: charts.Chart, box: Mailbox, now: datetime) -> None:
    msg = box.message
    superiors = chart.superiors_of(box.user_id)
    told = superiors[0] if superiors else msg.sender
    scope = "team" if superiors else "sent"
    with force_locale(told.language or "en"):
        notifications.notify(
            told.id, "mail.escalation",
            _("%(name)s has not answered a request in time", name=box.user.name),
            _("“%(subject)s” from %(sender)s was due %(due)s.",
              subject=msg.subject or _("(no subject)"), sender=msg.sender.name,
              due=_when(box.reply_due_at, told)),
            url=overdue_path(scope))
    box.escalated_at = now


@job("mail_escalate")
def escalate(now: datetime) -> str:
    """Requests not answered in time: the recipient is reminded once; `REMIND_GRACE` later,
    still unanswered, their nearest superior on the chart (or, with none, the sender) is told
    once. A copy reached through a post its person no longer holds is left alone: the post's
    new holder has their own copy."""
    reminded = escalated = 0
    steps = (
        ("remind", _open_requests().where(Mailbox.reply_due_at <= now, Mailbox.reminded_at.is_(None))),
        ("escalate", _open_requests().where(Mailbox.reminded_at <= now - REMIND_GRACE,
                                            Mailbox.escalated_at.is_(None))),
    )
    for step, stmt in steps:
        after = 0
        for _batch in range(MAX_BATCHES):
            boxes = _claim(stmt, after)
            if not boxes:
                break
            after = boxes[-1].id
            chart = charts.load()  # loaded again after each commit, which expires its rows
            for box in boxes:
                if not _still_holds(chart, box):
                    continue
                if step == "remind":
                    _remind(box, now)
                    reminded += 1
                else:
                    _escalate(chart, box, now)
                    escalated += 1
            db.session.commit()
            charts.forget()
            if len(boxes) < BATCH:
                break
    return f"reminded {reminded}, escalated {escalated}"


# --- e-mail notifications -----------------------------------------------------------------

def _mode():
    return func.coalesce(Preference.email_mode, "immediate")


def _unemailed(now: datetime):
    """Unread, not yet e-mailed inbox copies of people who want e-mail now."""
    return (select(Mailbox)
            .join(User, User.id == Mailbox.user_id)
            .outerjoin(Preference, Preference.user_id == Mailbox.user_id)
            .where(Mailbox.role == "recipient", Mailbox.folder == "inbox",
                   Mailbox.read_at.is_(None), Mailbox.emailed_at.is_(None),
                   Mailbox.created_at <= now - EMAIL_GRACE,
                   Mailbox.created_at > now - EMAIL_WINDOW,
                   or_(Mailbox.snoozed_until.is_(None), Mailbox.snoozed_until <= now),
                   User.active.is_(True),
                   or_(_mode() == "immediate",
                       and_(_mode() == "digest",
                            or_(Preference.last_digest_at.is_(None),
                                Preference.last_digest_at <= now - DIGEST_EVERY)))))


def _excerpt(text: str) -> str:
    """The start of the body as written (Markdown reads well as plain text)."""
    text = text.strip()
    if len(text) <= EXCERPT:
        return text
    cut = text[:EXCERPT]
    return (cut.rsplit(None, 1)[0] if " " in cut else cut).rstrip() + " …"


def _one(box: Mailbox) -> None:
    msg, user = box.message, box.user
    with force_locale(user.language or "en"):
        subject = _("%(sender)s: %(subject)s", sender=msg.sender.name,
                    subject=msg.subject or _("(no subject)"))
        excerpt = _excerpt(msg.body)
        lines = [_("%(sender)s wrote to you:", sender=msg.sender.name), "", excerpt, ""]
        if box.reply_due_at is not None:
            lines += [_("A reply is due by %(due)s.", due=_when(box.reply_due_at, user)), ""]
        lines += [_("Read and reply: %(link)s", link=absolute(thread_path(msg.id))), "",
                  _("You receive this e-mail because you were offline. Change this in your mail "
                    "settings.")]
    queue_email(user.email, subject, "\n".join(lines))


def _digest(user: User, boxes: list[Mailbox]) -> None:
    with force_locale(user.language or "en"):
        subject = ngettext("%(num)d unread message in the CRM", "%(num)d unread messages in the CRM",
                           len(boxes))
        lines = [subject + ":", ""]
        for box in boxes:
            msg = box.message
            lines += [f"- {msg.sender.name}: {msg.subject or _('(no subject)')} "
                      f"({_when(box.created_at, user)})",
                      f"  {absolute(thread_path(msg.id))}"]
        lines += ["", _("You receive this digest because you were offline. Change this in your "
                        "mail settings.")]
    queue_email(user.email, subject, "\n".join(lines))


@job("mail_email_notify")
def email_notify(now: datetime) -> str:
    """E-mail offline recipients of unread mail, by their preference (see the module's rule)."""
    user_ids = list(db.session.scalars(
        _unemailed(now).with_only_columns(Mailbox.user_id).distinct().order_by(Mailbox.user_id)))
    if not user_ids:
        return "e-mailed 0 messages, 0 digests"
    states = presence.of(user_ids)
    offline = [uid for uid in user_ids if states.get(uid) == "offline"]
    single = digests = 0
    for start in range(0, len(offline), BATCH):
        chunk = offline[start:start + BATCH]
        # The preference rows of digest readers are locked first: two runners never both
        # send someone a digest.
        prefs = {p.user_id: p for p in db.session.scalars(
            select(Preference).where(Preference.user_id.in_(chunk)).order_by(Preference.user_id)
            .with_for_update(skip_locked=True).execution_options(populate_existing=True))}
        locked_out = set(db.session.scalars(select(Preference.user_id).where(
            Preference.user_id.in_(chunk)))) - set(prefs)
        boxes = db.session.scalars(
            _unemailed(now).where(Mailbox.user_id.in_([u for u in chunk if u not in locked_out]))
            .order_by(Mailbox.user_id, Mailbox.created_at, Mailbox.id)
            .options(joinedload(Mailbox.message).joinedload(Message.sender),
                     joinedload(Mailbox.user))
            .with_for_update(skip_locked=True, of=Mailbox)).unique().all()
        by_user: dict[int, list[Mailbox]] = defaultdict(list)
        for box in boxes:
            by_user[box.user_id].append(box)
        for uid, mine in by_user.items():
            pref = prefs.get(uid)
            mode = pref.email_mode if pref is not None else "immediate"
            if mode == "immediate":
                for box in mine:
                    _one(box)
                    box.emailed_at = now
                single += len(mine)
            elif mode == "digest" and pref is not None and (
                    pref.last_digest_at is None or pref.last_digest_at <= now - DIGEST_EVERY):
                _digest(mine[0].user, mine)
                for box in mine:
                    box.emailed_at = now
                pref.last_digest_at = now
                digests += 1
        db.session.commit()
    return f"e-mailed {single} messages, {digests} digests"
