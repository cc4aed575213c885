"""Communication analytics: how much a person, a post or a unit writes and receives, and how
they answer requests, over a range of weeks.

A post's figures are those of the people holding it now (a vacant post has none); a unit's
are those of the people holding posts in it and below it. Figures count:
- sent: messages the people sent (one per message, however many recipients);
- received: the copies they received (a message to three of them counts three);
- requests: received copies that asked for a reply by a time; of those, answered on time
  (`answered_at <= reply_due_at`), answered late, and still overdue (unanswered, due time
  passed); the median response time is from delivery to the answer.
Received copies and requests count in the week they were delivered; sent messages in the
week they were sent. Each figure is one query over every person of the subject at once.

Who may see whose analytics: one's own; one's subordinates on the chart; a post or a unit
within one's scope whose every holder is oneself or a subordinate; everything for those
who see the whole company (`app.orgchart.services.can_see_all`). Anything else is "not
found", so nothing leaks.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MaValidationError
from sqlalchemy import func, select

from app.core.clock import utcnow
from app.core.errors import NotFound
from app.core.forms import zone_of
from app.core.models import User
from app.core.services import load
from app.extensions import db
from app.messaging.models import Mailbox, Message
from app.orgchart import chart as charts
from app.orgchart import services as org

DEFAULT_WEEKS = 12
MAX_WEEKS = 104
KINDS = ("user", "post", "unit")


class AnalyticsIn(Schema):
    """Whose analytics (one of user_id, post_id, unit_id; none: oneself) and which weeks (the
    `weeks` weeks ending with the day `end`, today by default, in one's time zone)."""

    class Meta:
        unknown = EXCLUDE

    user_id = fields.Integer(allow_none=True, load_default=None)
    post_id = fields.Integer(allow_none=True, load_default=None)
    unit_id = fields.Integer(allow_none=True, load_default=None)
    weeks = fields.Integer(load_default=DEFAULT_WEEKS, validate=validate.Range(min=1, max=MAX_WEEKS))
    end = fields.Date(allow_none=True, load_default=None,
                      validate=validate.Range(min=date(2000, 1, 1), max=date(2100, 1, 1)))

    @validates_schema
    def one_subject(self, data, **_kw):
        given = [k for k in ("user_id", "post_id", "unit_id") if data.get(k) is not None]
        if len(given) > 1:
            message = str(_l("Choose one person, post or unit."))
            raise MaValidationError({k: [message] for k in given})


@dataclass
class Subject:
    kind: str  # user | post | unit
    id: int
    name: str
    people: list[User]

    @property
    def token(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass
class Figures:
    sent: int = 0
    received: int = 0
    requests: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    median_seconds: float | None = None

    def as_dict(self) -> dict:
        return {"sent": self.sent, "received": self.received, "requests": self.requests,
                "answered_on_time": self.on_time, "answered_late": self.late,
                "overdue": self.overdue, "median_response_seconds": self.median_seconds}


@dataclass
class Report:
    subject: Subject
    bounds: list[datetime]  # week boundaries in UTC: weeks + 1 of them
    total: Figures
    people: list[tuple[User, Figures]] = field(default_factory=list)
    sent_by_week: list[int] = field(default_factory=list)
    received_by_week: list[int] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.bounds[0]

    @property
    def end(self) -> datetime:
        return self.bounds[-1]

    @property
    def trend(self) -> list[dict]:
        return [{"week_start": a, "sent": s, "received": r}
                for a, s, r in zip(self.bounds[:-1], self.sent_by_week, self.received_by_week,
                                   strict=True)]


# --- who may see whose analytics ----------------------------------------------------------

def _visible_people(actor: User, chart: charts.Chart) -> set[int] | None:
    """Ids whose analytics the actor may read; None for everyone."""
    if org.can_see_all(actor):
        return None
    return {actor.id} | {u.id for u in chart.subordinates_of(actor.id)}


def _post_people(chart: charts.Chart, post_id: int) -> list[User]:
    return [a.user for a in chart.own.get(post_id, [])]


def _unit_people(chart: charts.Chart, unit_id: int) -> list[User]:
    out: dict[int, User] = {}
    for uid in chart.subtree(unit_id):
        for post in chart.unit_posts.get(uid, []):
            for user in _post_people(chart, post.id):
                out.setdefault(user.id, user)
    return sorted(out.values(), key=lambda u: u.name)


def _posts_in_scope(actor: User, chart: charts.Chart) -> set[int]:
    held = chart.effective_posts(actor.id)
    return {p.id for p in held} | {p.id for post in held for p in chart.posts_below(post)}


def _units_in_scope(actor: User, chart: charts.Chart) -> set[int]:
    return {uid for post in chart.effective_posts(actor.id) if post.is_head
            for uid in chart.subtree(post.unit_id)}


def _all_visible(people: list[User], visible: set[int] | None) -> bool:
    return visible is None or all(u.id in visible for u in people)


def subject_for(actor: User, kind: str, target_id: int) -> Subject:
    """The person, post or unit, if the actor may read its analytics; else NotFound."""
    chart = charts.load()
    visible = _visible_people(actor, chart)
    if kind == "user":
        user = db.session.get(User, target_id)
        if user is not None and (visible is None or user.id in visible):
            return Subject("user", user.id, user.name, [user])
    elif kind == "post" and target_id in chart.posts:
        people = _post_people(chart, target_id)
        if visible is None or (target_id in _posts_in_scope(actor, chart)
                               and _all_visible(people, visible)):
            post = chart.posts[target_id]
            return Subject("post", post.id, f"{post.title} · {chart.units[post.unit_id].name}",
                           sorted(people, key=lambda u: u.name))
    elif kind == "unit" and target_id in chart.units:
        people = _unit_people(chart, target_id)
        if visible is None or (target_id in _units_in_scope(actor, chart)
                               and _all_visible(people, visible)):
            return Subject("unit", target_id, chart.units[target_id].name, people)
    raise NotFound(_("Nothing was found here."))


def choices(actor: User) -> dict[str, list[tuple[int, str]]]:
    """The people, posts and units whose analytics the actor may read, for a selector."""
    chart = charts.load()
    visible = _visible_people(actor, chart)
    if visible is None:
        people = [(uid, name) for uid, name in db.session.execute(
            select(User.id, User.name).where(User.active.is_(True)).order_by(User.name, User.id))]
        post_ids, unit_ids = set(chart.posts), set(chart.units)
    else:
        names = {actor.id: actor.name} | {u.id: u.name for u in chart.subordinates_of(actor.id)}
        people = sorted(names.items(), key=lambda item: (item[0] != actor.id, item[1]))
        post_ids = {pid for pid in _posts_in_scope(actor, chart)
                    if _all_visible(_post_people(chart, pid), visible)}
        unit_ids = {uid for uid in _units_in_scope(actor, chart)
                    if _all_visible(_unit_people(chart, uid), visible)}
    posts = sorted(((pid, f"{chart.posts[pid].title} · {chart.units[chart.posts[pid].unit_id].name}")
                    for pid in post_ids), key=lambda item: item[1].lower())
    units = [(u.id, " / ".join(x.name for x in chart.path(u.id)))
             for u in _board_order(chart) if u.id in unit_ids]
    return {"user": people, "post": posts, "unit": units}


def _board_order(chart: charts.Chart):
    stack = list(reversed(chart.roots()))
    seen: set[int] = set()
    while stack:
        unit = stack.pop()
        if unit.id in seen:
            continue
        seen.add(unit.id)
        yield unit
        stack.extend(reversed(chart.children.get(unit.id, [])))


# --- the range ------------------------------------------------------------------------------


def week_bounds(actor: User, weeks: int, end: date | None = None) -> list[datetime]:
    """Midnights (in the actor's zone, as UTC) that cut the range into weeks; the last one is
    the end of the day `end` (today by default)."""
    zone = zone_of(actor)
    last = end or utcnow().astimezone(zone).date()
    days = [last + timedelta(days=1) - timedelta(days=7 * i) for i in range(weeks, -1, -1)]
    return [datetime.combine(d, time(0), zone).astimezone(UTC) for d in days]


# --- the figures ----------------------------------------------------------------------------

def _counts_by_week(column, bounds: list[datetime]) -> list:
    return [func.count().filter(column >= a, column < b) for a, b in pairwise(bounds)]


def _received(ids: list[int], bounds: list[datetime], now: datetime):
    start, end = bounds[0], bounds[-1]
    weeks = len(bounds) - 1
    rows = db.session.execute(
        select(Mailbox.user_id, func.count(),
               func.count().filter(Mailbox.reply_due_at.is_not(None)),
               func.count().filter(Mailbox.answered_at <= Mailbox.reply_due_at),
               func.count().filter(Mailbox.answered_at > Mailbox.reply_due_at),
               func.count().filter(Mailbox.answered_at.is_(None), Mailbox.reply_due_at < now),
               *_counts_by_week(Mailbox.created_at, bounds))
        .where(Mailbox.user_id.in_(ids), Mailbox.role == "recipient",
               Mailbox.created_at >= start, Mailbox.created_at < end)
        .group_by(Mailbox.user_id)).all()
    return {row[0]: (tuple(row[1:6]), list(row[6:6 + weeks])) for row in rows}


def _sent(ids: list[int], bounds: list[datetime]):
    start, end = bounds[0], bounds[-1]
    rows = db.session.execute(
        select(Message.sender_id, func.count(), *_counts_by_week(Message.sent_at, bounds))
        .where(Message.sender_id.in_(ids), Message.state == "sent",
               Message.sent_at >= start, Message.sent_at < end)
        .group_by(Message.sender_id)).all()
    return {row[0]: (row[1], list(row[2:])) for row in rows}


def _medians(ids: list[int], bounds: list[datetime]) -> tuple[dict[int, float], float | None]:
    """Median seconds from delivery to answer, per person and over everyone: percentile_cont
    on PostgreSQL, Python over the pairs elsewhere; one query either way."""
    where = (Mailbox.user_id.in_(ids), Mailbox.role == "recipient",
             Mailbox.reply_due_at.is_not(None), Mailbox.answered_at.is_not(None),
             Mailbox.created_at >= bounds[0], Mailbox.created_at < bounds[-1])
    if db.session.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", Mailbox.answered_at - Mailbox.created_at)
        rows = db.session.execute(
            select(Mailbox.user_id, func.percentile_cont(0.5).within_group(seconds))
            .where(*where).group_by(func.rollup(Mailbox.user_id))).all()
        per = {uid: float(m) for uid, m in rows if uid is not None and m is not None}
        total = next((float(m) for uid, m in rows if uid is None and m is not None), None)
        return per, total
    spans: dict[int, list[float]] = defaultdict(list)
    for uid, created, answered in db.session.execute(
            select(Mailbox.user_id, Mailbox.created_at, Mailbox.answered_at).where(*where)):
        spans[uid].append((answered - created).total_seconds())
    every = [s for lst in spans.values() for s in lst]
    return ({uid: statistics.median(lst) for uid, lst in spans.items()},
            statistics.median(every) if every else None)


def compute(subject: Subject, bounds: list[datetime]) -> Report:
    """The figures of a subject over the weeks the bounds cut (three queries)."""
    weeks = len(bounds) - 1
    report = Report(subject, bounds, Figures(), sent_by_week=[0] * weeks,
                    received_by_week=[0] * weeks)
    ids = [u.id for u in subject.people]
    if not ids:
        return report
    received = _received(ids, bounds, utcnow())
    sent = _sent(ids, bounds)
    per_median, report.total.median_seconds = _medians(ids, bounds)
    total = report.total
    for user in subject.people:
        (rec, req, on_time, late, overdue), rec_weeks = received.get(user.id, ((0,) * 5, [0] * weeks))
        snt, snt_weeks = sent.get(user.id, (0, [0] * weeks))
        fig = Figures(snt, rec, req, on_time, late, overdue, per_median.get(user.id))
        report.people.append((user, fig))
        total.sent += snt
        total.received += rec
        total.requests += req
        total.on_time += on_time
        total.late += late
        total.overdue += overdue
        report.sent_by_week = [a + b for a, b in zip(report.sent_by_week, snt_weeks, strict=True)]
        report.received_by_week = [a + b for a, b in zip(report.received_by_week, rec_weeks,
                                                         strict=True)]
    return report


def _subject_of(actor: User, values: dict) -> Subject:
    for kind in KINDS:
        if values.get(f"{kind}_id") is not None:
            return subject_for(actor, kind, values[f"{kind}_id"])
    return subject_for(actor, "user", actor.id)


def report(actor: User, data) -> Report:
    """The analytics the actor asked for (see AnalyticsIn), if they may read them."""
    return report_for(actor, load(AnalyticsIn(), data))


def report_for(actor: User, values: dict) -> Report:
    """As `report`, from values AnalyticsIn has already read."""
    return compute(_subject_of(actor, values), week_bounds(actor, values["weeks"], values["end"]))


def as_dict(rep: Report) -> dict:
    """The report as the API gives it."""
    return {
        "subject": {"kind": rep.subject.kind, "id": rep.subject.id, "name": rep.subject.name},
        "start": rep.start, "end": rep.end, "weeks": len(rep.bounds) - 1,
        "totals": rep.total.as_dict(),
        "people": [{"id": u.id, "name": u.name, **f.as_dict()} for u, f in rep.people],
        "trend": rep.trend,
    }
