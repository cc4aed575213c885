"""Reports of the client base: the funnel of a pipeline, sales by client, segment and manager
with their weekly or monthly dynamics, refusal, complaint and lost-deal reasons, and each
manager's activity. Each report is tables, a chart and an XLSX workbook of the same rows.

Every figure is a GROUP BY in the database over the whole period (a handful of queries per
report, never one per row). Amounts are integer minor units per currency: rows are grouped by
currency and amounts of different currencies are never added together.

The period is from the day `start` to the day `end` (both included) in the reader's time
zone; weeks are calendar weeks from Monday, months calendar months, the first and last cut
to the period.

Whose figures (`scope`): a manager sees their own and those of the people they direct on the
chart (services.directed_ids); posts that see all clients see everybody. Within that, one
person may be chosen (`user_id`); a person outside it is "not found". What counts for whom:
- deals (funnel, sales, lost reasons, deals in activity) by the deal's responsible manager;
- refusals and complaints by the responsible manager of the company they were about;
- calls, meetings and other contacts in activity by who logged them; leads by their
  responsible.

The funnel: the deals of the pipeline opened in the period, each counted at the furthest
stage it entered (its StageChange rows; the won stage is beyond every open one, the lost
stage is no step of the funnel). A deal "reached" a stage when its furthest stage is that
one or a later one; "went on" is how many reached the next stage, and the conversion is
their share. Lost deals are also shown at the stage they got furthest to.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import openpyxl
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MaValidationError
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from sqlalchemy import case, func, or_, select, true

from app.clients import charts, services
from app.clients.models import (
    Category,
    Company,
    CompanyCategory,
    Deal,
    Interaction,
    Lead,
    Pipeline,
    Reason,
    StageChange,
)
from app.core.clock import utcnow
from app.core.errors import NotFound, ValidationError
from app.core.forms import zone_of
from app.core.models import User
from app.core.money import from_minor
from app.core.schemas import row_id
from app.core.services import load
from app.extensions import db

KINDS = ("funnel", "sales", "reasons", "activity")
KIND_NAMES = {"funnel": _l("Funnel"), "sales": _l("Sales"), "reasons": _l("Reasons"),
              "activity": _l("Manager activity")}
GROUPS = ("manager", "client", "category", "industry")
GROUP_NAMES = {"manager": _l("Manager"), "client": _l("Client"), "category": _l("Category"),
               "industry": _l("Industry")}
STEPS = ("week", "month")
STEP_NAMES = {"week": _l("Weeks"), "month": _l("Months")}
DEFAULT_DAYS = 12 * 7
MAX_DAYS = 2 * 366
CHART_GROUPS = 6  # the largest groups drawn; the rest as "Others"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ReportIn(Schema):
    """The filters every report reads from a query string."""

    class Meta:
        unknown = EXCLUDE

    start = fields.Date(load_default=None, allow_none=True,
                        validate=validate.Range(min=date(2000, 1, 1), max=date(2100, 1, 1)))
    end = fields.Date(load_default=None, allow_none=True,
                      validate=validate.Range(min=date(2000, 1, 1), max=date(2100, 1, 1)))
    pipeline_id = row_id(load_default=None, allow_none=True, strict=False)
    user_id = row_id(load_default=None, allow_none=True, strict=False)
    step = fields.String(load_default="week", validate=validate.OneOf(STEPS))
    group = fields.String(load_default="manager", validate=validate.OneOf(GROUPS))
    currency = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(r"^[A-Z]{3}$"))

    @validates_schema
    def period(self, data, **_kw):
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise MaValidationError({"end": [str(_l("The end is before the start."))]})
        if start and end and (end - start).days >= MAX_DAYS:
            raise MaValidationError({"start": [str(_l("A period of at most two years."))]})


@dataclass
class Filters:
    start: date
    end: date  # included
    since: datetime  # UTC bounds of the period: [since, until)
    until: datetime
    zone: ZoneInfo
    scope: set[int] | None  # user ids; None: everybody
    user_id: int | None
    pipeline: Pipeline | None
    step: str
    group: str
    currency: str | None

    def args(self) -> dict:
        """The filters as a query string gives them back (links, charts, downloads)."""
        out = {"start": self.start.isoformat(), "end": self.end.isoformat(), "step": self.step,
               "group": self.group}
        if self.pipeline is not None:
            out["pipeline_id"] = self.pipeline.id
        if self.user_id:
            out["user_id"] = self.user_id
        if self.currency:
            out["currency"] = self.currency
        return out


@dataclass
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | money (minor units, in the row's "currency") | percent


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    total: dict | None = None  # a last row in bold
    note: str = ""


@dataclass
class Report:
    kind: str
    title: str
    filters: Filters
    tables: list[Table]
    chart: charts.Chart
    currencies: list[str] = field(default_factory=list)  # what the chart may be drawn in
    currency: str | None = None  # the one it is drawn in


# --- filters and scope ------------------------------------------------------------------------


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def scope_of(actor: User) -> set[int] | None:
    """The people whose figures the actor reads; None for everybody."""
    return None if services.sees_all(actor) else services.directed_ids(actor)


def filters(actor: User, data) -> Filters:
    """The period, pipeline, person and grouping asked for, checked against what the actor
    may see (a person or pipeline they may not read is not found)."""
    values = load(ReportIn(), data)
    zone = zone_of(actor)
    today = utcnow().astimezone(zone).date()
    end = values["end"] or max(today, values["start"] or today)
    start = values["start"] or end - timedelta(days=DEFAULT_DAYS - 1)
    if (end - start).days >= MAX_DAYS:
        raise ValidationError(_("Please correct the highlighted fields."),
                              {"start": [_("A period of at most two years.")]})
    scope = scope_of(actor)
    user_id = values["user_id"]
    if user_id is not None:
        if (scope is not None and user_id not in scope) or db.session.get(User, user_id) is None:
            raise NotFound(_("No such person."))
        scope = {user_id}
    pipeline = None
    if values["pipeline_id"] is not None:
        pipeline = db.session.get(Pipeline, values["pipeline_id"])
        if pipeline is None:
            raise NotFound(_("No such pipeline."))
    return Filters(start, end, _midnight(start, zone), _midnight(end + timedelta(days=1), zone),
                   zone, scope, user_id, pipeline, values["step"], values["group"],
                   values["currency"])


def _in(column, scope: set[int] | None):
    return true() if scope is None else column.in_(sorted(scope))


def buckets(f: Filters) -> list[tuple[datetime, str]]:
    """The weeks (from Monday) or months of the period as (UTC start, label), cut to it; the
    period's end follows the last."""
    out, day = [], f.start
    while day <= f.end:
        if f.step == "week":
            nxt = day + timedelta(days=7 - day.weekday())
            label = format_date(day, "d MMM")
        else:
            nxt = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
            label = format_date(day, "LLL yyyy")
        out.append((_midnight(day, f.zone), label))
        day = nxt
    return out


def _bounds(f: Filters) -> list[datetime]:
    return [b for b, _label in buckets(f)] + [f.until]


def _names(model, ids) -> dict[int, str]:
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _major(minor: int, currency: str) -> float:
    """For drawing only: amounts are kept and exported as exact numbers."""
    return float(from_minor(minor, currency))


# --- the funnel -------------------------------------------------------------------------------

def funnel(actor: User, f: Filters) -> Report:
    pipeline = f.pipeline or next(iter(services.pipelines()), None)
    if pipeline is None:
        raise NotFound(_("No pipeline yet: an administrator sets one up first."))
    f.pipeline = pipeline
    stages = [s for s in pipeline.stages if s.kind == "open"] + \
        [s for s in pipeline.stages if s.kind == "won"]
    # a stage's step in the funnel: open stages in their order, then the won one
    rank = case({s.id: i for i, s in enumerate(stages, start=1)}, value=StageChange.stage_id,
                else_=None) if stages else None
    per_deal = (select(StageChange.deal_id.label("deal_id"), func.max(rank).label("top"))
                .join(Deal, Deal.id == StageChange.deal_id)
                .where(Deal.pipeline_id == pipeline.id, Deal.created_at >= f.since,
                       Deal.created_at < f.until, _in(Deal.responsible_id, f.scope))
                .group_by(StageChange.deal_id).subquery())
    counts: dict[tuple[int | None, str], int] = {
        (top, status): n for top, status, n in db.session.execute(
            select(per_deal.c.top, Deal.status, func.count())
            .join(Deal, Deal.id == per_deal.c.deal_id)
            .group_by(per_deal.c.top, Deal.status))}
    at: dict[int | None, int] = defaultdict(int)  # deals whose furthest step is this one
    for (top, _status), n in counts.items():
        at[top] += n
    shown = [(s, r) for r, s in enumerate(stages, start=1) if s.archived_at is None or at.get(r)]
    total = sum(counts.values())
    reached, running = {}, 0
    for _stage, r in reversed(shown):
        running += at.get(r, 0)
        reached[r] = running
    rows = []
    for i, (stage, r) in enumerate(shown):
        went_on = reached[shown[i + 1][1]] if i + 1 < len(shown) else None
        rows.append({"stage": stage.name, "reached": reached[r], "went_on": went_on,
                     "conversion": _share(went_on, reached[r]) if went_on is not None else None,
                     "open": counts.get((r, "open"), 0), "lost": counts.get((r, "lost"), 0),
                     "won": stage.kind == "won"})
    won = sum(n for (_t, status), n in counts.items() if status == "won")
    lost = sum(n for (_t, status), n in counts.items() if status == "lost")
    table = Table("funnel", _("Funnel: %(name)s", name=pipeline.name), [
        Column("stage", _("Stage")), Column("reached", _("Reached"), "int"),
        Column("went_on", _("Went on"), "int"), Column("conversion", _("Conversion"), "percent"),
        Column("open", _("Still open here"), "int"), Column("lost", _("Lost here"), "int")],
        rows, total={"stage": _("Deals opened in the period"), "reached": total,
                     "went_on": won, "conversion": _share(won, total), "open": total - won - lost,
                     "lost": lost},
        note=_("Each deal opened in the period counts at the furthest stage it entered. The "
               "last row: the deals opened in the period, how many of them were won and their "
               "share, how many are still open and how many were lost."))
    picture = charts.chart("hbars", table.title, [r["stage"] for r in rows],
                           [(_("Reached"), [r["reached"] for r in rows])],
                           notes=[f"{r['reached']} · {_pct(r['conversion'])}" if r["went_on"]
                                  is not None else str(r["reached"]) for r in rows])
    return Report("funnel", str(KIND_NAMES["funnel"]), f, [table], picture)


# --- sales ------------------------------------------------------------------------------------

def _won(f: Filters):
    conds = [Deal.status == "won", Deal.closed_at >= f.since, Deal.closed_at < f.until,
             _in(Deal.responsible_id, f.scope)]
    if f.pipeline is not None:
        conds.append(Deal.pipeline_id == f.pipeline.id)
    return conds


def _by_bucket(bounds: list[datetime]) -> list:
    return [func.coalesce(func.sum(Deal.amount_minor).filter(Deal.closed_at >= a,
                                                              Deal.closed_at < b), 0)
            for a, b in pairwise(bounds)]


def sales(actor: User, f: Filters) -> Report:
    cuts = buckets(f)
    bounds = _bounds(f)
    sums = _by_bucket(bounds)
    if f.group == "manager":
        key, joins = Deal.responsible_id, []
    elif f.group == "client":
        key, joins = Deal.company_id, []
    elif f.group == "category":
        key = CompanyCategory.category_id
        joins = [(CompanyCategory, CompanyCategory.company_id == Deal.company_id)]
    else:
        key, joins = Company.industry, [(Company, Company.id == Deal.company_id)]
    stmt = select(key, Deal.currency, func.count(), func.sum(Deal.amount_minor), *sums) \
        .select_from(Deal)
    for model, on in joins:
        stmt = stmt.outerjoin(model, on)
    found = db.session.execute(stmt.where(*_won(f)).group_by(key, Deal.currency)).all()
    totals = db.session.execute(select(Deal.currency, func.count(), func.sum(Deal.amount_minor),
                                       *sums).where(*_won(f)).group_by(Deal.currency)).all()
    if f.group == "manager":
        names = _names(User, (r[0] for r in found))
    elif f.group == "client":
        ids = sorted({r[0] for r in found})
        names = dict(db.session.execute(select(
            Company.id, func.coalesce(func.nullif(Company.short_name, ""), Company.legal_name))
            .where(Company.id.in_(ids))).all()) if ids else {}
    elif f.group == "category":
        names = _names(Category, (r[0] for r in found))
    else:
        names = {}
    nobody = {"manager": _("Nobody"), "client": "—", "category": _("No category"),
              "industry": _("No industry")}[f.group]
    money_cols = [Column(f"b{i}", label, "money") for i, (_a, label) in enumerate(cuts)]
    rows = []
    for k, currency, n, amount, *per in found:
        name = names.get(k, k) if f.group != "industry" else (k or "")
        rows.append({"group": str(name or nobody), "currency": currency, "deals": n,
                     "amount": int(amount or 0), **{f"b{i}": int(v) for i, v in enumerate(per)}})
    rows.sort(key=lambda r: (r["currency"], -r["amount"], r["group"].lower()))
    by_group = Table("groups", _("Won deals by %(group)s", group=str(GROUP_NAMES[f.group]).lower()),
                     [Column("group", str(GROUP_NAMES[f.group])), Column("currency", _("Currency")),
                      Column("deals", _("Won deals"), "int"), Column("amount", _("Amount"), "money"),
                      *money_cols], rows)
    if f.group == "category":
        by_group.note = _("A company in two categories counts in both.")
    total_rows = [{"group": _("Total"), "currency": c, "deals": n, "amount": int(a or 0),
                   **{f"b{i}": int(v) for i, v in enumerate(per)}} for c, n, a, *per in totals]
    total_rows.sort(key=lambda r: r["currency"])
    step_name = _("week") if f.step == "week" else _("month")
    dynamics = Table("dynamics", _("Won deals per %(step)s", step=step_name),
                     [Column("currency", _("Currency")), Column("deals", _("Won deals"), "int"),
                      Column("amount", _("Amount"), "money"), *money_cols], total_rows)
    currencies = [r["currency"] for r in sorted(total_rows, key=lambda r: -r["deals"])]
    currency = f.currency if f.currency in currencies else (currencies[0] if currencies else
                                                           f.currency or "RUB")
    picture = _sales_chart(f, cuts, [r for r in rows if r["currency"] == currency], currency)
    return Report("sales", str(KIND_NAMES["sales"]), f, [dynamics, by_group], picture,
                  currencies=sorted(currencies), currency=currency)


def _sales_chart(f: Filters, cuts, rows: list[dict], currency: str) -> charts.Chart:
    """Stacked bars per week or month: the largest groups, the rest as "Others"."""
    n = len(cuts)
    top = rows[:CHART_GROUPS]
    series = [(r["group"], [_major(r[f"b{i}"], currency) for i in range(n)]) for r in top]
    rest = rows[CHART_GROUPS:]
    if rest:
        series.append((_("Others"), [_major(sum(r[f"b{i}"] for r in rest), currency)
                                     for i in range(n)]))
    return charts.chart("stacked", _("Won deals by %(group)s, %(currency)s",
                                     group=str(GROUP_NAMES[f.group]).lower(), currency=currency),
                        [label for _a, label in cuts], series, unit=currency, integer=False)


# --- reasons ----------------------------------------------------------------------------------

def reasons(actor: User, f: Filters) -> Report:
    kind = case((Interaction.kind == "complaint", "complaint"), else_="refusal")
    companies = select(Company.id).where(_in(Company.responsible_id, f.scope))
    contacts = db.session.execute(
        select(kind, Interaction.reason_id, func.count())
        .where(or_(Interaction.kind.in_(("complaint", "refusal")), Interaction.outcome == "refuse"),
               Interaction.occurred_at >= f.since, Interaction.occurred_at < f.until,
               Interaction.company_id.in_(companies) if f.scope is not None else true())
        .group_by(kind, Interaction.reason_id)).all()
    lost = [("lost", rid, n) for rid, n in db.session.execute(
        select(Deal.lost_reason_id, func.count())
        .where(Deal.status == "lost", Deal.closed_at >= f.since, Deal.closed_at < f.until,
               _in(Deal.responsible_id, f.scope),
               Deal.pipeline_id == f.pipeline.id if f.pipeline is not None else true())
        .group_by(Deal.lost_reason_id))]
    names = _names(Reason, [rid for _k, rid, _n in [*contacts, *lost]])
    tables = []
    labels, values, notes, colors = [], [], [], []
    titles = {"refusal": _("Refusals"), "complaint": _("Complaints"), "lost": _("Lost deals")}
    for group, which in enumerate(("refusal", "complaint", "lost")):
        found = [(names.get(rid, _("No reason given")), n) for k, rid, n in [*contacts, *lost]
                 if k == which]
        whole = sum(n for _name, n in found)
        rows = [{"reason": name, "count": n, "share": _share(n, whole)}
                for name, n in sorted(found, key=lambda x: (-x[1], x[0].lower()))]
        tables.append(Table(which, titles[which], [
            Column("reason", _("Reason")), Column("count", _("Count"), "int"),
            Column("share", _("Share"), "percent")], rows,
            total={"reason": _("Total"), "count": whole, "share": 1.0 if whole else None}))
        for row in rows:
            labels.append(f"{titles[which]}: {row['reason']}")
            values.append(row["count"])
            notes.append(f"{row['count']} · {_pct(row['share'])}")
            colors.append(group)
    picture = charts.chart("hbars", _("Refusals, complaints and lost deals by reason"), labels,
                           [(_("Count"), values)], notes=notes, colors=colors)
    return Report("reasons", str(KIND_NAMES["reasons"]), f, tables, picture)


# --- manager activity -------------------------------------------------------------------------

ACTIVITY_KINDS = ("call", "meeting", "email", "note", "complaint", "refusal")


def activity(actor: User, f: Filters) -> Report:
    contacts = {row[0]: row[1:] for row in db.session.execute(
        select(Interaction.author_id,
               *(func.count().filter(Interaction.kind == k) for k in ACTIVITY_KINDS))
        .where(Interaction.occurred_at >= f.since, Interaction.occurred_at < f.until,
               Interaction.author_id.is_not(None), _in(Interaction.author_id, f.scope))
        .group_by(Interaction.author_id))}
    leads = {row[0]: row[1:] for row in db.session.execute(
        select(Lead.responsible_id, func.count(), func.count().filter(Lead.status == "converted"))
        .where(Lead.created_at >= f.since, Lead.created_at < f.until,
               Lead.responsible_id.is_not(None), _in(Lead.responsible_id, f.scope))
        .group_by(Lead.responsible_id))}
    deal_conds = [Deal.created_at >= f.since, Deal.created_at < f.until,
                  Deal.responsible_id.is_not(None), _in(Deal.responsible_id, f.scope)]
    if f.pipeline is not None:
        deal_conds.append(Deal.pipeline_id == f.pipeline.id)
    deals = {row[0]: row[1:] for row in db.session.execute(
        select(Deal.responsible_id, func.count(), func.count().filter(Deal.status == "won"),
               func.count().filter(Deal.status == "lost"))
        .where(*deal_conds).group_by(Deal.responsible_id))}
    ids = set(contacts) | set(leads) | set(deals) | (f.scope or set())
    names = _names(User, ids)
    rows = []
    zero = (0,) * len(ACTIVITY_KINDS)
    for uid in sorted(ids, key=lambda i: (names.get(i, "").lower(), i)):
        calls, meetings, emails, notes, complaints, refusals = contacts.get(uid, zero)
        n_leads, converted = leads.get(uid, (0, 0))
        n_deals, won, lost = deals.get(uid, (0, 0, 0))
        rows.append({"person": names.get(uid, "—"), "calls": calls, "meetings": meetings,
                     "emails": emails, "notes": notes, "complaints": complaints,
                     "refusals": refusals, "leads": n_leads, "converted": converted,
                     "lead_conversion": _share(converted, n_leads), "deals": n_deals,
                     "won": won, "lost": lost, "deal_conversion": _share(won, n_deals)})
    sums = {k: sum(r[k] for r in rows) for k in ("calls", "meetings", "emails", "notes",
                                                 "complaints", "refusals", "leads", "converted",
                                                 "deals", "won", "lost")}
    total = {"person": _("Total"), **sums,
             "lead_conversion": _share(sums["converted"], sums["leads"]),
             "deal_conversion": _share(sums["won"], sums["deals"])}
    table = Table("activity", str(KIND_NAMES["activity"]), [
        Column("person", _("Person")), Column("calls", _("Calls"), "int"),
        Column("meetings", _("Meetings"), "int"), Column("emails", _("E-mails"), "int"),
        Column("notes", _("Notes"), "int"), Column("complaints", _("Complaints"), "int"),
        Column("refusals", _("Refusals"), "int"), Column("leads", _("Leads"), "int"),
        Column("converted", _("Converted"), "int"),
        Column("lead_conversion", _("Lead → deal"), "percent"),
        Column("deals", _("Deals opened"), "int"), Column("won", _("Won"), "int"),
        Column("lost", _("Lost"), "int"), Column("deal_conversion", _("Deal → won"), "percent")],
        rows, total=total,
        note=_("Leads received and deals opened in the period; converted and won: of those, "
               "so far."))
    shown = [r for r in rows if any(r[k] for k in ("calls", "meetings", "won"))]
    picture = charts.chart("bars", _("Calls, meetings and deals won per person"),
                           [r["person"] for r in shown],
                           [(_("Calls"), [r["calls"] for r in shown]),
                            (_("Meetings"), [r["meetings"] for r in shown]),
                            (_("Deals won"), [r["won"] for r in shown])])
    return Report("activity", str(KIND_NAMES["activity"]), f, [table], picture)


BUILDERS = {"funnel": funnel, "sales": sales, "reasons": reasons, "activity": activity}


def build(actor: User, kind: str, data) -> Report:
    """The report `kind` with the filters in `data` (a query string), as the actor may see."""
    if kind not in BUILDERS:
        raise NotFound(_("No such report."))
    return BUILDERS[kind](actor, filters(actor, data))


def people(actor: User) -> list[tuple[int, str]]:
    """Whom the person filter offers: the actor's scope (everyone active for see-all)."""
    scope = scope_of(actor)
    stmt = select(User.id, User.name).where(User.active.is_(True))
    if scope is not None:
        stmt = stmt.where(User.id.in_(sorted(scope)))
    return [(uid, name) for uid, name in db.session.execute(stmt.order_by(User.name, User.id))]


# --- XLSX -------------------------------------------------------------------------------------

def _text_cell(ws, value, bold: bool = False) -> WriteOnlyCell:
    """Always text: a name starting with "=" must not become a formula."""
    cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", str(value or "")))
    cell.data_type = "s"
    if bold:
        cell.font = Font(bold=True)
    return cell


def _value_cell(ws, column: Column, row: dict, bold: bool) -> WriteOnlyCell:
    value = row.get(column.key)
    if column.kind == "text" or value is None:
        return _text_cell(ws, value if value is not None else "", bold)
    if column.kind == "money":
        cell = WriteOnlyCell(ws, value=from_minor(value, row["currency"]))
        cell.number_format = "#,##0.00"
    elif column.kind == "percent":
        cell = WriteOnlyCell(ws, value=Decimal(str(round(value, 4))))
        cell.number_format = "0.0%"
    else:
        cell = WriteOnlyCell(ws, value=int(value))
    if bold:
        cell.font = Font(bold=True)
    return cell


def _sheet_title(text: str, used: set[str]) -> str:
    title = "".join(ch for ch in text if ch not in "[]:*?/\\")[:31] or "Sheet"
    base, n = title, 2
    while title.lower() in used:
        title = f"{base[:28]} {n}"
        n += 1
    used.add(title.lower())
    return title


def xlsx(report: Report) -> bytes:
    """The report's tables, one sheet each, with the period and filters on top."""
    wb = openpyxl.Workbook(write_only=True)
    used: set[str] = set()
    f = report.filters
    heading = [_("Period"), f"{f.start.isoformat()} — {f.end.isoformat()}"]
    if f.pipeline is not None:
        heading += [_("Pipeline"), f.pipeline.name]
    for table in report.tables:
        ws = wb.create_sheet(_sheet_title(table.title, used))
        ws.append([_text_cell(ws, table.title, bold=True)])
        ws.append([_text_cell(ws, v) for v in heading])
        ws.append([])
        ws.append([_text_cell(ws, c.label, bold=True) for c in table.columns])
        for row in table.rows:
            ws.append([_value_cell(ws, c, row, False) for c in table.columns])
        if table.total is not None:
            ws.append([_value_cell(ws, c, table.total, True) for c in table.columns])
        if table.note:
            ws.append([])
            ws.append([_text_cell(ws, table.note)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
