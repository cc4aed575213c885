"""Pages and JSON of requests waiting for a reply (overdue) and of the mail analytics."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, render_template, request
from flask_babel import format_date, format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import func, select

from app.core.api_base import api_blueprint, api_user, page_envelope, paginated
from app.core.charts import FORMATS
from app.core.clock import utcnow
from app.core.errors import ValidationError
from app.core.services import load
from app.extensions import db
from app.messaging import analytics, bp, charts, services
from app.messaging import api as mail_api
from app.messaging.jobs import REMIND_GRACE, thread_path

SCOPES = ("mine", "sent", "team")
SCOPE_LABELS = {"mine": _l("To me"), "sent": _l("Sent by me"), "team": _l("My team")}


class OverdueIn(Schema):
    class Meta:
        unknown = EXCLUDE

    scope = fields.String(load_default="mine", validate=validate.OneOf(SCOPES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


def _late(box) -> timedelta:
    return utcnow() - box.reply_due_at


# --- pages ----------------------------------------------------------------------------------

@bp.route("/overdue")
def overdue():
    """Requests past their reply time: to me, sent by me, to the people under me."""
    values = load(OverdueIn(), request.args)
    scope = values["scope"]
    page = db.paginate(services.overdue_query(current_user, scope), page=values["page"],
                       per_page=current_app.config["PER_PAGE"], error_out=False)
    totals = {s: db.session.scalar(select(func.count()).select_from(
        services.overdue_query(current_user, s).order_by(None).subquery())) for s in SCOPES}
    return render_template("messaging/overdue.html", page=page, scope=scope, scopes=SCOPE_LABELS,
                           totals=totals, thread_path=thread_path,
                           grace=format_timedelta(REMIND_GRACE, add_direction=False),
                           late=lambda box: format_timedelta(_late(box), add_direction=False))


def _args() -> dict:
    """The query string as AnalyticsIn reads it; `subject=post:7` (the page's selector) is
    the same as `post_id=7`."""
    data = request.args.to_dict()
    token = data.pop("subject", None)
    if token:
        kind, _sep, raw = token.partition(":")
        if kind not in analytics.KINDS or not raw:
            raise ValidationError(_("Choose a person, post or unit."),
                                  {"subject": [_("Choose a person, post or unit.")]})
        for k in analytics.KINDS:
            data.pop(f"{k}_id", None)
        data[f"{kind}_id"] = raw
    return data


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_timedelta(timedelta(seconds=seconds), threshold=1.5, add_direction=False)


def _trend(rep: analytics.Report) -> charts.Trend:
    labels = [format_date(start, "d MMM") for start in rep.bounds[:-1]]
    return charts.trend(_("Messages per week: %(name)s", name=rep.subject.name), labels,
                        rep.sent_by_week, rep.received_by_week)


def _chart_args(rep: analytics.Report, values: dict) -> dict:
    args = {f"{rep.subject.kind}_id": rep.subject.id, "weeks": len(rep.bounds) - 1}
    if values.get("end"):
        args["end"] = values["end"]
    return args


@bp.route("/analytics", endpoint="analytics")
def analytics_page():
    data = _args()
    rep = analytics.report(current_user, data)
    weeks = [(format_date(w["week_start"], "d MMM"), w["sent"], w["received"]) for w in rep.trend]
    return render_template(
        "messaging/analytics.html", rep=rep, choices=analytics.choices(current_user),
        weeks_count=len(rep.bounds) - 1, end=data.get("end") or "", duration=_duration,
        chart_args=_chart_args(rep, data), weeks=weeks,
        first_day=format_date(rep.start), last_day=format_date(rep.end - timedelta(seconds=1)))



@bp.route("/analytics/chart.<any(svg, png):fmt>")
def analytics_chart(fmt: str):
    """The weekly trend picture; revalidated by its ETag (a hash of the data drawn)."""
    rep = analytics.report(current_user, _args())
    trend = _trend(rep)
    tag = charts.etag(trend, fmt)
    if tag in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        response = current_app.response_class(charts.render(trend, fmt), mimetype=FORMATS[fmt])
    response.set_etag(tag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


# --- JSON API -------------------------------------------------------------------------------

blp = api_blueprint("mail_analytics_api", __name__, "/messages",
                    "Requests waiting for a reply, and mail analytics")
mail_api.ALL.append(blp)


class OverdueOut(Schema):
    message_id = fields.Integer()
    thread_id = fields.Function(lambda b: b.message.thread_id or b.message_id)
    subject = fields.Function(lambda b: b.message.subject)
    sender = fields.Function(lambda b: {"id": b.message.sender_id, "name": b.message.sender.name})
    recipient = fields.Function(lambda b: {"id": b.user_id, "name": b.user.name})
    via_post_id = fields.Integer(allow_none=True)
    delivered_at = fields.DateTime(attribute="created_at")
    reply_due_at = fields.DateTime()
    late_seconds = fields.Function(lambda b: int(_late(b).total_seconds()))
    reminded_at = fields.DateTime(allow_none=True)
    escalated_at = fields.DateTime(allow_none=True)
    url = fields.Function(lambda b: thread_path(b.message_id))


class FiguresOut(Schema):
    sent = fields.Integer()
    received = fields.Integer()
    requests = fields.Integer()
    answered_on_time = fields.Integer()
    answered_late = fields.Integer()
    overdue = fields.Integer()
    median_response_seconds = fields.Float(allow_none=True)


class PersonFiguresOut(FiguresOut):
    id = fields.Integer()
    name = fields.String()


class SubjectOut(Schema):
    kind = fields.String()
    id = fields.Integer()
    name = fields.String()


class WeekOut(Schema):
    week_start = fields.DateTime()
    sent = fields.Integer()
    received = fields.Integer()


class AnalyticsOut(Schema):
    subject = fields.Nested(SubjectOut)
    start = fields.DateTime()
    end = fields.DateTime()
    weeks = fields.Integer()
    totals = fields.Nested(FiguresOut)
    people = fields.List(fields.Nested(PersonFiguresOut))
    trend = fields.List(fields.Nested(WeekOut))


@blp.route("/overdue")
@blp.arguments(OverdueIn, location="query")
@blp.response(200, page_envelope(OverdueOut))
def api_overdue(args):
    """Requests past their reply time and not answered: `scope` mine (to the caller), sent (by
    the caller) or team (to the people under the caller on the chart); oldest due first."""
    return paginated(services.overdue_query(api_user(), args["scope"]), args["page"],
                     args["per_page"])


@blp.route("/analytics")
@blp.arguments(analytics.AnalyticsIn, location="query")
@blp.response(200, AnalyticsOut)
def api_analytics(args):
    """Mail analytics of one person (`user_id`), post (`post_id`) or unit (`unit_id`); the
    caller's own without any. `weeks` weeks (default 12) ending with the day `end` (today).
    Outside what the caller may see: 404."""
    return analytics.as_dict(analytics.report_for(api_user(), args))
