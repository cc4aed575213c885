"""Pages of the client base's reports: each as a table, a chart (PNG or SVG) and an XLSX
download, with the same filters. The figures come from app.clients.reports."""

from __future__ import annotations

import io

from babel.numbers import format_currency
from flask import current_app, render_template, request, send_file
from flask_babel import get_locale
from flask_login import current_user

from app.clients import bp, charts, reports, services
from app.clients import dates_views as _dates_views  # noqa: F401 - the greeting's route
from app.core.charts import FORMATS
from app.core.errors import ValidationError
from app.core.money import format_money, from_minor

CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def _money(minor: int, currency: str) -> str:
    """An amount in the reader's way of writing money, without the minor units when it has
    none (a report's columns stay narrow)."""
    amount = from_minor(minor, currency)
    if amount != amount.to_integral_value():
        return format_money(minor, currency)
    locale = get_locale()
    pattern = locale.currency_formats["standard"].pattern.replace(".00", "")
    return format_currency(amount, currency, format=pattern, locale=locale, currency_digits=False)


def _cell(column: reports.Column, row: dict) -> str:
    value = row.get(column.key)
    if value is None:
        return "—" if column.kind != "text" else ""
    if column.kind == "money":
        return _money(value, row["currency"]) if value else "—"
    if column.kind == "percent":
        return f"{value * 100:.0f}%"
    return str(value)


def _kind() -> str:
    kind = request.args.get("kind", "funnel")
    return kind if kind in reports.KINDS else "funnel"


@bp.get("/reports", endpoint="reports")  # the module's nav tab points here
def reports_page():
    """One report with its filters: the table, the chart and the links to download them."""
    kind = _kind()
    errors: dict = {}
    report = None
    try:
        report = reports.build(current_user, kind, request.args)
    except ValidationError as exc:
        errors = exc.fields or {"_": [exc.message]}
    args = report.filters.args() if report else {k: v for k, v in request.args.items()
                                                 if k != "kind"}
    status = 422 if errors else 200
    return render_template(
        "clients/reports.html", kind=kind, report=report, errors=errors, args=args,
        kinds=reports.KIND_NAMES, groups=reports.GROUP_NAMES, steps=reports.STEP_NAMES,
        pipelines=services.pipelines(), people=reports.people(current_user), cell=_cell,
        sees_all=reports.scope_of(current_user) is None), status


@bp.get("/reports/<any(funnel, sales, reasons, activity):kind>.xlsx")
def reports_xlsx(kind: str):
    report = reports.build(current_user, kind, request.args)
    f = report.filters
    name = f"{kind}-{f.start.isoformat()}-{f.end.isoformat()}.xlsx"
    return send_file(io.BytesIO(reports.xlsx(report)), mimetype=reports.XLSX_MIME,
                     as_attachment=True, download_name=name, max_age=0)


@bp.get("/reports/<any(funnel, sales, reasons, activity):kind>/chart.<any(svg, png):fmt>")
def reports_chart(kind: str, fmt: str):
    """The report's picture; revalidated by its ETag (a hash of the data drawn)."""
    picture = reports.build(current_user, kind, request.args).chart
    tag = charts.etag(picture, fmt)
    if tag in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        response = current_app.response_class(charts.render(picture, fmt),
                                              mimetype=FORMATS[fmt])
    response.set_etag(tag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Content-Security-Policy"] = CSP
    if fmt == "png" and request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="{kind}.png"'
    return response

