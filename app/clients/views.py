"""Pages of the client base: companies and holdings, contacts, leads, deals on their boards,
and the administration of pipelines, reasons, lead settings and web forms.

Every rule lives in app.clients.services; these views shape what is typed into service input
and what services answer into pages. A record one may not see is a 404 (the services say
so); a refused form is shown again as typed, with the reason beside each field (422).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Callable, Iterable

from babel import Locale
from babel.numbers import format_currency, get_currency_precision
from flask import (
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale, to_user_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import aliased, joinedload, selectinload

from app.clients import bp, services
from app.clients.models import (
    COMPANY_STATUSES,
    Category,
    Company,
    CompanyCategory,
    Contact,
    ContactLink,
    Deal,
    GreetingTemplate,
    Interaction,
    Lead,
    Pipeline,
    Reason,
    Share,
    SignificantDate,
    WebForm,
)
from app.core.clock import utcnow
from app.core.errors import DomainError, PermissionDenied, ValidationError
from app.core.forms import MAX_ID, form_int, local_input, utc_from_local
from app.core.i18n import translate_library_message
from app.core.models import User
from app.core.money import from_minor
from app.core.services import is_admin
from app.extensions import db
from app.orgchart import chart as charts

ROLES = ("client", "supplier", "partner")
ROLE_NAMES = {"client": _l("Client"), "supplier": _l("Supplier"), "partner": _l("Partner")}
STATUS_NAMES = {"prospect": _l("Prospect"), "active": _l("Active"), "former": _l("Former")}
STATUS_STYLES = {"prospect": "info", "active": "success", "former": "secondary"}
KIND_NAMES = {"call": _l("Call"), "meeting": _l("Meeting"), "email": _l("E-mail"),
              "note": _l("Note"), "complaint": _l("Complaint"), "refusal": _l("Refusal"),
              "task": _l("Task"), "run": _l("Programme")}
KIND_ICONS = {"call": "telephone", "meeting": "people", "email": "envelope", "note": "sticky",
              "complaint": "exclamation-triangle", "refusal": "x-octagon", "mail": "envelope",
              "task": "check2-square", "run": "diagram-3", "invoice": "receipt",
              "payment": "cash-coin"}
OUTCOME_NAMES = {"advance": _l("Advance"), "postpone": _l("Postpone"), "refuse": _l("Refuse")}
OUTCOME_STYLES = {"advance": "success", "postpone": "warning", "refuse": "danger"}
LEAD_SOURCE_NAMES = {"form": _l("Form"), "call": _l("Call"), "referral": _l("Referral"),
                     "web": _l("Web form")}
LEAD_STATUS_NAMES = {"new": _l("New"), "contacted": _l("Contacted"), "converted": _l("Converted"),
                     "rejected": _l("Rejected")}
LEAD_TABS = ("new", "overdue", "contacted", "converted", "rejected")
DEAL_STATUS_NAMES = {"open": _l("Open"), "won": _l("Won"), "lost": _l("Lost")}
DEAL_STATUS_STYLES = {"open": "primary", "won": "success", "lost": "secondary"}
STAGE_KIND_NAMES = {"open": _l("Open"), "won": _l("Won"), "lost": _l("Lost")}
DATE_KIND_NAMES = {"birthday": _l("Birthday"), "contract_end": _l("Contract ends"),
                   "founding": _l("Founding day"), "other": _l("Other")}
REASON_KIND_NAMES = {"refusal": _l("Refusals"), "lost": _l("Lost deals"),
                     "complaint": _l("Complaints")}
STEP_FILTERS = {"none": _l("Without a next step"), "overdue": _l("Next step overdue")}
# Which tab of the module's sub-navigation a page belongs to.
SECTIONS = {"index": "companies", "company": "companies", "company_new": "companies",
            "company_edit": "companies", "contacts": "contacts", "contact": "contacts",
            "contact_new": "contacts", "contact_edit": "contacts", "leads": "leads",
            "lead": "leads", "lead_new": "leads", "deals": "deals", "deal": "deals",
            "deal_new": "deals", "deal_edit": "deals", "board": "deals", "pipelines": "deals",
            "admin": "admin", "admin_pipelines": "admin", "admin_form_create": "admin",
            # pages shown again after a refused form
            "interaction_new": "companies", "lead_convert": "leads", "lead_reject": "leads",
            "deal_move": "deals", "admin_settings": "admin", "admin_reason": "admin",
            "admin_hand_over": "admin", "pipeline_create": "admin", "pipeline_save": "admin",
            "admin_greeting_create": "admin", "admin_greeting_save": "admin"}


# --- shared by the templates ----------------------------------------------------------------

@bp.context_processor
def clients_shell():
    return {"role_names": ROLE_NAMES, "status_names": STATUS_NAMES,
            "status_styles": STATUS_STYLES, "kind_names": KIND_NAMES, "kind_icons": KIND_ICONS,
            "outcome_names": OUTCOME_NAMES, "outcome_styles": OUTCOME_STYLES,
            "lead_source_names": LEAD_SOURCE_NAMES, "lead_status_names": LEAD_STATUS_NAMES,
            "deal_status_names": DEAL_STATUS_NAMES, "deal_status_styles": DEAL_STATUS_STYLES,
            "stage_kind_names": STAGE_KIND_NAMES, "date_kind_names": DATE_KIND_NAMES,
            "reason_kind_names": REASON_KIND_NAMES, "step_filters": STEP_FILTERS,
            "now": utcnow(), "local_input": local_input, "clients_nav": _nav,
            "company_label": _company_label, "amount_input": _amount_input,
            "short_money": _short_money, "when_format": "EEE d MMM y, HH:mm"}


def _nav() -> dict:
    """The module's sub-navigation: which tab is open, the overdue leads' badge, and the
    pages other parts of the module add (import and export) when they exist."""
    if "_cache_clients_nav" not in g:
        endpoint = (request.endpoint or "").partition(".")[2]
        overdue = db.session.scalar(select(func.count()).select_from(
            services.overdue_leads(current_user).order_by(None).subquery()))
        first = services.pipelines()
        current = request.endpoint or ""
        extra = [(ep, label, icon, current.startswith(prefix)) for ep, prefix, label, icon in (
            ("clients.import_start", "clients.import", _l("Import"), "upload"),
            ("clients.export", "clients.export", _l("Export"), "download"),
            ("clients.reports", "clients.reports", _l("Reports"), "bar-chart"),
        ) if ep in current_app.view_functions]
        g._cache_clients_nav = {
            "section": SECTIONS.get(endpoint, ""),
            "overdue_leads": overdue, "board_id": first[0].id if first else None,
            "extra": extra, "admin": is_admin(current_user)}
    return g._cache_clients_nav


def _company_label(company) -> str:
    """How a company is typed into a company field: its name and its number."""
    return f"{company.name} (#{company.id})" if company else ""


def _short_money(minor: int | None, currency: str) -> str:
    """Money in whole units, in the locale's pattern (board totals and cards)."""
    if minor is None or not currency:
        return ""
    locale = get_locale() or Locale.parse("en")
    pattern = locale.currency_formats["standard"].pattern.replace(".00", "")
    return format_currency(round(from_minor(minor, currency)), currency, format=pattern,
                           locale=locale, currency_digits=False)


def _amount_input(minor: int | None, currency: str) -> str:
    """An amount as a form field shows it: 2000.50, not 2,000.50 RUB."""
    if minor is None:
        return ""
    return format(from_minor(minor, currency), f".{get_currency_precision(currency)}f")


# --- input shaping --------------------------------------------------------------------------





def _split(text: str | None, commas: bool = True) -> list[str]:
    """One value a line (or between commas): phones, e-mails, tags, categories."""
    parts = re.split(r"[\n;,]" if commas else r"\n", text or "")
    return [p.strip() for p in parts if p.strip()]


def _pairs(text: str | None, first: str, second: str, default: str) -> list[dict]:
    """Lines such as "Telegram: @ivan" or "Legal: Moscow, 1 Tverskaya" as [{first, second}];
    a line without a short label before a colon gets the default label."""
    out = []
    for line in _split(text, commas=False):
        label, sep, rest = line.partition(":")
        if sep and rest.strip() and 0 < len(label.strip()) <= 30 and not re.search(r"\d", label):
            out.append({first: label.strip(), second: rest.strip()})
        else:
            out.append({first: default, second: line})
    return out


def _picked(text: str | None, field: str) -> int | None:
    """A company typed into a company field: "Name (#12)" as picked from the list, or its
    number; empty is none."""
    text = (text or "").strip()
    if not text:
        return None
    found = re.search(r"#(\d{1,10})\)?\s*$", text) or re.fullmatch(r"(\d{1,10})", text)
    if found and 0 < int(found.group(1)) <= MAX_ID:
        return int(found.group(1))
    message = _("Choose a company from the list.")
    raise ValidationError(message, {field: [message]})


def _amount(value: str | None):
    """An amount as typed ("1 250,50") in the form the schema reads; empty is left out."""
    value = re.sub(r"[\s\u00a0]", "", value or "").replace(",", ".")
    return value or None


def _page_number() -> int:
    return min(max(request.args.get("page", 1, type=int), 1), 100_000)


def _arg_id(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        abort(404)
    return int(raw)


def _back(default: str) -> str:
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


def _flat(messages) -> list[str]:
    """A field's messages as plain sentences, also those of list items and nested rows
    (which arrive as the text of a dict: "{0: ['Not a valid email address.']}")."""
    out: list[str] = []
    for m in messages if isinstance(messages, list | tuple) else [messages]:
        if isinstance(m, dict):
            for inner in m.values():
                out += _flat(inner)
        elif isinstance(m, str) and m.startswith("{"):
            try:
                parsed = ast.literal_eval(m)
            except (ValueError, SyntaxError):
                out.append(m)
                continue
            out += [translate_library_message(x) for x in _flat(parsed)]
        else:
            out.append(str(m))
    return list(dict.fromkeys(out))


def _errors(exc: DomainError) -> dict[str, list[str]]:
    errors = {k: _flat(v) for k, v in exc.fields.items()}
    errors.setdefault("_", [exc.message])
    return errors


def _message(exc: DomainError) -> str:
    details = " ".join(m for k, v in exc.fields.items() for m in _flat(v))
    return f"{exc.message} {details}".strip() if details and details != exc.message else exc.message


def _run(action: Callable, ok: str | None, back: str, then: Callable | str | None = None):
    """Run a service from a small form: flash the outcome and go on; on a refusal undo it,
    flash the reason and go back. A record one may not see stays a 404."""
    try:
        result = action()
    except DomainError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        flash(_message(exc), "danger")
        return redirect(_back(back))
    if ok:
        flash(ok, "success")
    return redirect(then(result) if callable(then) else (then or _back(back)))


def _again(exc: DomainError, page: Callable[[dict], str]):
    """A refused form shown again as typed: 404 stays 404, other refusals are 422/403/409
    with the errors beside the fields."""
    if exc.status == 404:
        raise exc
    db.session.rollback()
    return page(_errors(exc)), exc.status


def _count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))


def _paginate(stmt):
    return db.paginate(stmt, page=_page_number(), per_page=current_app.config["PER_PAGE"],
                       error_out=False)


def _people(ids: Iterable[int | None]) -> dict[int, User]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


def _assignable() -> list[User]:
    """People one may make responsible: oneself and those one directs (anyone active for
    those who see all clients)."""
    if services.sees_all(current_user):
        return list(db.session.scalars(select(User).where(User.active.is_(True))
                                       .order_by(User.name)))
    below = charts.load().subordinates_of(current_user.id)
    return sorted({current_user.id: current_user, **{u.id: u for u in below}}.values(),
                  key=lambda u: u.name)


def _colleagues() -> list[User]:
    return list(db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)))


# --- companies ------------------------------------------------------------------------------

def _company_filters() -> dict:
    args = request.args
    return {"q": args.get("q", "").strip()[:200],
            "role": args.get("role", "") if args.get("role") in ROLES else "",
            "status": args.get("status", "") if args.get("status") in COMPANY_STATUSES else "",
            "category": _arg_id("category"), "tag": args.get("tag", "").strip().lower()[:60],
            "responsible": _arg_id("responsible"), "holding": _arg_id("holding"),
            "step": args.get("step", "") if args.get("step") in STEP_FILTERS else ""}


def _companies(f: dict):
    """The companies page's select(): the search (or a next-step list), narrowed by the
    filters; the caller paginates."""
    me = current_user
    if f["step"]:
        stmt = services.without_next_step(me, overdue=f["step"] == "overdue")
        if f["q"]:
            found = services.search_companies(me, f["q"], limit=500).with_only_columns(Company.id)
            stmt = stmt.where(Company.id.in_(found))
    else:
        stmt = services.search_companies(me, f["q"], limit=500)
    if f["role"]:
        stmt = stmt.where(getattr(Company, f"is_{f['role']}").is_(True))
    if f["status"]:
        stmt = stmt.where(Company.status == f["status"])
    if f["category"]:
        stmt = stmt.where(Company.id.in_(select(CompanyCategory.company_id).where(
            CompanyCategory.category_id == f["category"])))
    if f["tag"]:
        tag = f["tag"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Company.tags.like(f"%,{tag},%", escape="\\"))
    if f["responsible"]:
        stmt = stmt.where(Company.responsible_id == f["responsible"])
    if f["holding"]:
        stmt = stmt.where(Company.id.in_(services.holding_ids(f["holding"])))
    return stmt.options(joinedload(Company.responsible), joinedload(Company.parent),
                        selectinload(Company.categories))


def _holdings() -> list[Company]:
    """Companies one sees that have subsidiaries: the holding filter's choices."""
    child = aliased(Company)
    return list(db.session.scalars(
        select(Company).where(services.company_clause(current_user), Company.archived_at.is_(None),
                              Company.id.in_(select(child.parent_id).where(
                                  child.parent_id.is_not(None), child.archived_at.is_(None))))
        .order_by(Company.legal_name).limit(300)))


def _attention() -> dict[str, int]:
    """How many companies and deals have no next step, or an overdue one."""
    me = current_user
    return {"companies_none": _count(services.without_next_step(me)),
            "companies_overdue": _count(services.without_next_step(me, overdue=True)),
            "deals_none": _count(services.deals_without_next_step(me)),
            "deals_overdue": _count(services.deals_without_next_step(me, overdue=True))}


@bp.get("/")
def index():
    """Companies: search, filters, and the lists without a next step or overdue."""
    f = _company_filters()
    page = _paginate(_companies(f))
    return render_template(
        "clients/index.html", page=page, f=f, attention=_attention(),
        categories=db.session.scalars(select(Category).order_by(Category.name)).all(),
        people=_assignable(), holdings=_holdings(),
        filtered=any(v for k, v in f.items() if k != "step"))


@bp.get("/companies/options")
def company_options():
    """Choices for a company field (typed into, offered as a list)."""
    # htmx sends the field under its own name ("parent", "company", "company-0").
    q = (request.args.get("q") or next((v for v in request.args.values() if v.strip()), "")).strip()
    rows = db.session.scalars(services.search_companies(current_user, q, limit=15)
                              .limit(15)).all() if q else []
    return render_template("clients/_company_options.html", companies=rows)


def _family(company: Company) -> dict:
    """The holding around a company: its root, every company under the root as a tree,
    which of them one sees (the others are shown without a name)."""
    chain, current = [], company
    while current.parent_id and len(chain) < services.MAX_DEPTH:
        current = db.session.get(Company, current.parent_id)
        if current is None:
            break
        chain.append(current)
    root = chain[-1] if chain else company
    ids = services.holding_ids(root.id)
    rows = {c.id: c for c in db.session.scalars(select(Company).where(Company.id.in_(ids)))}
    visible = set(db.session.scalars(select(Company.id).where(
        Company.id.in_(ids), services.company_clause(current_user))))
    children: dict[int | None, list[Company]] = defaultdict(list)
    for row in sorted(rows.values(), key=lambda c: c.name.lower()):
        if row.id != root.id:
            children[row.parent_id].append(row)
    below = len(services.holding_ids(company.id)) - 1 if company.id != root.id else len(ids) - 1
    return {"root": root, "children": children, "visible": visible, "size": len(ids),
            "parent": chain[0] if chain else None, "below": below}


def _company_page(company_id: int, errors: dict | None = None, form=None, which: str = ""):
    me = current_user
    company = services.get_company(me, company_id)
    family = _family(company)
    deals = db.session.scalars(
        select(Deal).options(joinedload(Deal.stage), joinedload(Deal.responsible))
        .where(Deal.company_id == company.id, services.deal_clause(me))
        .order_by(Deal.status != "open", Deal.updated_at.desc()).limit(100)).all()
    shares = db.session.scalars(select(User).join(Share, Share.user_id == User.id)
                                .where(Share.company_id == company.id).order_by(User.name)).all()
    dates = db.session.scalars(select(SignificantDate).where(
        SignificantDate.company_id == company.id).order_by(SignificantDate.on)).all()
    today = to_user_timezone(utcnow()).date()
    editable = services.can_edit(me, company)
    rollup = services.rollup(me, company.id) if family["below"] else None
    if rollup:
        order = {"open": 0, "won": 1, "lost": 2}
        rollup["deals"] = sorted(rollup["deals"], key=lambda r: (order.get(r["status"], 9), r["currency"]))
    return render_template(
        "clients/company.html", company=company, family=family, editable=editable,
        rollup=rollup, deal_titles={d.id: d.title for d in deals},
        contacts=services.contacts_of(me, company.id), deals=deals,
        history=services.history(me, company.id, limit=100), shares=shares,
        dates=[(d, services.next_occurrence(d, today)) for d in dates],
        reasons={k: services.reasons(k) for k in ("refusal", "complaint")},
        colleagues=_colleagues() if editable else [],
        errors=errors or {}, form=form or {}, which=which)


@bp.get("/companies/<int:company_id>")
def company(company_id: int):
    return _company_page(company_id)


def _company_data(form, company: Company | None = None) -> dict:
    data = {k: form.get(k, "").strip() for k in ("legal_name", "short_name", "industry",
                                                  "website", "notes", "status", "next_step")}
    data["tax_number"] = form.get("tax_number", "").strip() or None
    for role in ROLES:
        data[f"is_{role}"] = f"is_{role}" in form
    data["categories"] = _split(form.get("categories"))
    data["tags"] = _split(form.get("tags"))
    data["phones"] = _split(form.get("phones"))
    data["emails"] = _split(form.get("emails"))
    data["addresses"] = _pairs(form.get("addresses"), "kind", "text", "office")
    data["next_step_at"] = utc_from_local(form.get("next_step_at"))
    responsible = form_int(form.get("responsible_id"))
    if company is None or responsible != company.responsible_id:
        data["responsible_id"] = responsible
    data["parent_id"] = _picked(form.get("parent"), "parent_id")
    return data


def _company_form(company: Company | None, errors: dict | None = None, form=None):
    return render_template("clients/company_form.html", company=company, errors=errors or {},
                           form=form, people=_assignable())


@bp.route("/companies/new", methods=["GET", "POST"])
def company_new():
    if request.method == "GET":
        return _company_form(None)
    try:
        company = services.create_company(current_user, _company_data(request.form))
    except DomainError as exc:
        return _again(exc, lambda errors: _company_form(None, errors, request.form))
    flash(_("The company is saved."), "success")
    return redirect(url_for("clients.company", company_id=company.id))


@bp.route("/companies/<int:company_id>/edit", methods=["GET", "POST"])
def company_edit(company_id: int):
    company = services.get_company(current_user, company_id)
    if not services.can_edit(current_user, company):
        raise PermissionDenied(_("Only the responsible manager and those above them may "
                                 "change this company."))
    if request.method == "GET":
        return _company_form(company)
    try:
        services.update_company(current_user, company_id, _company_data(request.form, company))
    except DomainError as exc:
        return _again(exc, lambda errors: _company_form(
            services.get_company(current_user, company_id), errors, request.form))
    flash(_("Saved."), "success")
    return redirect(url_for("clients.company", company_id=company_id))


@bp.post("/companies/<int:company_id>/archive")
def company_archive(company_id: int):
    return _run(lambda: services.archive_company(current_user, company_id),
                _("The company is archived; its history stays."),
                url_for("clients.company", company_id=company_id),
                then=url_for("clients.index"))


@bp.post("/companies/<int:company_id>/share")
def company_share(company_id: int):
    ids = [form_int(v) for v in request.form.getlist("user_ids") if v.strip()]
    return _run(lambda: services.share(current_user, company_id, {"user_ids": ids}),
                _("Sharing is saved."), url_for("clients.company", company_id=company_id))


# --- the history: logging a contact ---------------------------------------------------------

def _interaction_data(form, company_id: int) -> dict:
    kind = form.get("kind", "")
    reason = form.get("complaint_reason_id") if kind == "complaint" else form.get("reason_id")
    return {"company_id": company_id, "contact_id": form_int(form.get("contact_id")),
            "deal_id": form_int(form.get("deal_id")), "kind": kind,
            "subject": form.get("subject", ""), "body": form.get("body", ""),
            "outcome": form.get("outcome") or None, "next_step": form.get("next_step", ""),
            "next_step_at": utc_from_local(form.get("next_step_at")), "reason_id": form_int(reason)}


@bp.post("/companies/<int:company_id>/log")
def interaction_new(company_id: int):
    """Log a contact from a company's card or a deal's page (the deal's company)."""
    deal_id = form_int(request.form.get("deal_id"))
    from_deal = request.form.get("from") == "deal" and isinstance(deal_id, int)
    try:
        services.log_interaction(current_user, _interaction_data(request.form, company_id))
    except DomainError as exc:
        def page(errors):
            if request.form.get("kind") == "complaint" and "reason_id" in errors:
                errors["complaint_reason_id"] = errors.pop("reason_id")
            if from_deal:
                return _deal_page(deal_id, errors, request.form, "log")
            return _company_page(company_id, errors, request.form, "log")
        return _again(exc, page)
    flash(_("The contact is logged."), "success")
    if from_deal:
        return redirect(url_for("clients.deal", deal_id=deal_id) + "#history")
    return redirect(url_for("clients.company", company_id=company_id) + "#history")


@bp.post("/dates")
def date_new():
    """A significant date on a company's card or a contact's page."""
    form = request.form
    data = {"company_id": form_int(form.get("company_id")), "contact_id": form_int(form.get("contact_id")),
            "kind": form.get("kind", ""), "title": form.get("title", ""),
            "on": form.get("on", "").strip() or None, "yearly": "yearly" in form,
            "remind_days": form_int(form.get("remind_days")) if form.get("remind_days", "").strip()
            else 3}
    if isinstance(data["company_id"], int):
        back = url_for("clients.company", company_id=data["company_id"])
    elif isinstance(data["contact_id"], int):
        back = url_for("clients.contact", contact_id=data["contact_id"])
    else:
        abort(404)
    return _run(lambda: services.add_date(current_user, data), _("The date is saved."),
                back + "#dates", then=back + "#dates")


# --- contacts -------------------------------------------------------------------------------

@bp.get("/contacts")
def contacts():
    q = request.args.get("q", "").strip()[:200]
    stmt = services.search_contacts(current_user, q).options(
        selectinload(Contact.links).joinedload(ContactLink.company))
    return render_template("clients/contacts.html", page=_paginate(stmt), q=q)


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int):
    me = current_user
    person = services.get_contact(me, contact_id)
    visible = services.visible_companies(me)
    history = db.session.scalars(
        select(Interaction).options(joinedload(Interaction.author), joinedload(Interaction.reason))
        .where(Interaction.contact_id == person.id, Interaction.company_id.in_(visible))
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(100)).all()
    names = dict(db.session.execute(select(Company.id, Company.legal_name).where(
        Company.id.in_({i.company_id for i in history}))).all()) if history else {}
    deal_ids = {i.deal_id for i in history if i.deal_id}
    titles = dict(db.session.execute(select(Deal.id, Deal.title).where(
        Deal.id.in_(deal_ids))).all()) if deal_ids else {}
    deals = db.session.scalars(select(Deal).options(joinedload(Deal.stage), joinedload(Deal.company))
                               .where(Deal.contact_id == person.id, services.deal_clause(me))
                               .order_by(Deal.updated_at.desc()).limit(50)).all()
    dates = db.session.scalars(select(SignificantDate).where(
        SignificantDate.contact_id == person.id).order_by(SignificantDate.on)).all()
    today = to_user_timezone(utcnow()).date()
    shown_links = [lk for lk in person.links if lk.company_id in set(db.session.scalars(
        select(Company.id).where(Company.id.in_([k.company_id for k in person.links]),
                                 services.company_clause(me))))] if person.links else []
    return render_template("clients/contact.html", person=person, links=shown_links,
                           history=history, company_names=names, deals=deals, deal_titles=titles,
                           dates=[(d, services.next_occurrence(d, today)) for d in dates])


def _contact_data(form) -> dict:
    companies = []
    for i in range(int(form.get("rows", "0") or 0) if form.get("rows", "").isdigit() else 0):
        if i > 40:
            break
        picked = _picked(form.get(f"company-{i}"), f"company-{i}")
        if picked is not None:
            companies.append({"company_id": picked, "position": form.get(f"position-{i}", "")})
    return {"name": form.get("name", ""), "phones": _split(form.get("phones")),
            "emails": _split(form.get("emails")),
            "messengers": _pairs(form.get("messengers"), "kind", "handle", "other"),
            "birthday": form.get("birthday", "").strip() or None, "consent": "consent" in form,
            "notes": form.get("notes", ""), "companies": companies}


def _contact_form(person: Contact | None, errors: dict | None = None, form=None):
    rows = []
    if form:
        count = min(int(form.get("rows")), 40) if form.get("rows", "").isdigit() else 0
        rows = [(form.get(f"company-{i}", ""), form.get(f"position-{i}", "")) for i in range(count)]
    elif person is not None:
        rows = [(_company_label(lk.company), lk.position) for lk in person.links]
    else:
        company_id = _arg_id("company_id")
        if company_id:
            rows = [(_company_label(services.get_company(current_user, company_id)), "")]
    rows.append(("", ""))
    return render_template("clients/contact_form.html", person=person, errors=errors or {},
                           form=form, rows=rows)


@bp.route("/contacts/new", methods=["GET", "POST"])
def contact_new():
    if request.method == "GET":
        return _contact_form(None)
    try:
        person = services.create_contact(current_user, _contact_data(request.form))
    except DomainError as exc:
        return _again(exc, lambda errors: _contact_form(None, errors, request.form))
    flash(_("The contact is saved."), "success")
    return redirect(url_for("clients.contact", contact_id=person.id))


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
def contact_edit(contact_id: int):
    person = services.get_contact(current_user, contact_id)
    if request.method == "GET":
        return _contact_form(person)
    try:
        services.update_contact(current_user, contact_id, _contact_data(request.form))
    except DomainError as exc:
        return _again(exc, lambda errors: _contact_form(
            services.get_contact(current_user, contact_id), errors, request.form))
    flash(_("Saved."), "success")
    return redirect(url_for("clients.contact", contact_id=contact_id))


# --- leads ----------------------------------------------------------------------------------

@bp.get("/leads")
def leads():
    """New leads (those past their deadline stand out), overdue, contacted, converted and
    rejected ones."""
    me, now = current_user, utcnow()
    tab = request.args.get("show", "new")
    if tab not in LEAD_TABS:
        tab = "new"
    base = select(Lead).options(joinedload(Lead.responsible)).where(services.lead_clause(me))
    if tab == "overdue":
        stmt = services.overdue_leads(me, now).options(joinedload(Lead.responsible))
    elif tab == "new":
        stmt = base.where(Lead.status == "new").order_by(Lead.contact_due_at, Lead.id)
    else:
        order = Lead.contacted_at.desc() if tab == "contacted" else Lead.created_at.desc()
        stmt = base.where(Lead.status == tab).order_by(order, Lead.id.desc())
    counts = dict(db.session.execute(select(Lead.status, func.count()).where(
        services.lead_clause(me)).group_by(Lead.status)).all())
    counts["overdue"] = _count(services.overdue_leads(me, now))
    return render_template("clients/leads.html", page=_paginate(stmt), tab=tab, counts=counts,
                           tabs=LEAD_TABS)


def _lead_page(lead_id: int, errors: dict | None = None, form=None, which: str = ""):
    me = current_user
    lead = services.get_lead(me, lead_id)
    found = services.lead_duplicates(me, lead_id) if lead.status in ("new", "contacted") else []
    visible = set(db.session.scalars(select(Company.id).where(
        Company.id.in_([c.id for c in found]), services.company_clause(me)))) if found else set()
    known = services.contact_duplicates(me, lead.email, lead.phone) \
        if lead.status in ("new", "contacted") else []
    done = {}
    if lead.status == "converted":
        done = {"company": db.session.get(Company, lead.company_id) if lead.company_id else None,
                "deal": db.session.get(Deal, lead.deal_id) if lead.deal_id else None,
                "contact": db.session.get(Contact, lead.contact_id) if lead.contact_id else None}
    return render_template(
        "clients/lead.html", lead=lead, duplicates=[c for c in found if c.id in visible],
        hidden_duplicates=len(found) - len(visible), known_contacts=known, done=done,
        pipelines=services.pipelines(), errors=errors or {}, form=form or {}, which=which)


@bp.get("/leads/<int:lead_id>")
def lead(lead_id: int):
    return _lead_page(lead_id)


def _lead_data(form) -> dict:
    data = {k: form.get(k, "").strip() for k in ("source", "name", "company_name", "email",
                                                  "phone", "tax_number")}
    data["message"] = form.get("message", "")
    data["responsible_id"] = form_int(form.get("responsible_id"))
    return data


def _lead_form(errors: dict | None = None, form=None):
    return render_template("clients/lead_form.html", errors=errors or {}, form=form,
                           people=_assignable())


@bp.route("/leads/new", methods=["GET", "POST"])
def lead_new():
    """A lead taken by hand: a call, a referral, a paper form."""
    if request.method == "GET":
        return _lead_form()
    try:
        row = services.create_lead(current_user, _lead_data(request.form))
    except DomainError as exc:
        return _again(exc, lambda errors: _lead_form(errors, request.form))
    flash(_("The lead is saved. Contact it before the deadline."), "success")
    return redirect(url_for("clients.lead", lead_id=row.id))


@bp.post("/leads/<int:lead_id>/contacted")
def lead_contacted(lead_id: int):
    return _run(lambda: services.mark_contacted(current_user, lead_id),
                _("Marked as contacted."), url_for("clients.lead", lead_id=lead_id))


@bp.post("/leads/<int:lead_id>/reject")
def lead_reject(lead_id: int):
    try:
        services.reject_lead(current_user, lead_id, request.form.get("reason", ""))
    except DomainError as exc:
        return _again(exc, lambda errors: _lead_page(lead_id, errors, request.form, "reject"))
    flash(_("The lead is rejected."), "success")
    return redirect(url_for("clients.leads"))


@bp.post("/leads/<int:lead_id>/convert")
def lead_convert(lead_id: int):
    """One step: a company (new, or a duplicate joined), a contact and a deal."""
    form = request.form
    data = {"company_id": form_int(form.get("company_id")) if form.get("company_id") != "new" else None,
            "contact_id": form_int(form.get("contact_id")) if form.get("contact_id") != "new" else None,
            "deal_title": form.get("deal_title", ""), "pipeline_id": form_int(form.get("pipeline_id")),
            "currency": form.get("currency", "RUB").strip().upper() or "RUB"}
    amount = _amount(form.get("amount"))
    if amount is not None:
        data["amount"] = amount
    try:
        row = services.convert_lead(current_user, lead_id, data)
    except DomainError as exc:
        return _again(exc, lambda errors: _lead_page(lead_id, errors, form, "convert"))
    flash(_("The lead is converted: the company, the contact and the deal are ready."), "success")
    return redirect(url_for("clients.deal", deal_id=row.deal_id))


# --- deals ----------------------------------------------------------------------------------

@bp.get("/deals")
def deals():
    """Deals as a list: by pipeline, status, responsible, and those without a next step or
    with an overdue one."""
    me, args = current_user, request.args
    f = {"q": args.get("q", "").strip()[:200], "pipeline": _arg_id("pipeline"),
         "status": args.get("status", "") if args.get("status") in DEAL_STATUS_NAMES else "",
         "responsible": _arg_id("responsible"),
         "step": args.get("step", "") if args.get("step") in STEP_FILTERS else ""}
    if f["step"]:
        stmt = services.deals_without_next_step(me, overdue=f["step"] == "overdue")
    else:
        stmt = (select(Deal).options(joinedload(Deal.company), joinedload(Deal.responsible))
                .where(services.deal_clause(me)).order_by(Deal.updated_at.desc(), Deal.id.desc()))
    if f["q"]:
        like = "%" + f["q"].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(func.lower(Deal.title).like(like, escape="\\"))
    if f["pipeline"]:
        stmt = stmt.where(Deal.pipeline_id == f["pipeline"])
    if f["status"]:
        stmt = stmt.where(Deal.status == f["status"])
    if f["responsible"]:
        stmt = stmt.where(Deal.responsible_id == f["responsible"])
    stmt = stmt.options(joinedload(Deal.stage))
    return render_template("clients/deals.html", page=_paginate(stmt), f=f,
                           pipelines=services.pipelines(), people=_assignable(),
                           attention=_attention())


@bp.get("/pipelines")
def pipelines():
    first = services.pipelines()
    if not first:
        return render_template("clients/no_pipeline.html")
    return redirect(url_for("clients.board", pipeline_id=first[0].id))


@bp.get("/pipelines/<int:pipeline_id>/board")
def board(pipeline_id: int):
    """A pipeline's stages as columns; cards are dragged between them."""
    columns = services.board(current_user, pipeline_id)
    every = services.pipelines()
    pipeline = next((p for p in every if p.id == pipeline_id), None)
    if pipeline is None:
        abort(404)
    stages = [s for s in pipeline.stages if s.archived_at is None]
    totals = {}
    for stage in stages:
        sums: dict[str, int] = defaultdict(int)
        for deal in columns.get(stage.id, []):
            sums[deal.currency] += deal.amount_minor
        totals[stage.id] = sorted(sums.items())
    movable = {d.id for cards in columns.values() for d in cards
               if services.can_edit_deal(current_user, d)}
    return render_template("clients/board.html", pipeline=pipeline, pipelines=every,
                           stages=stages, columns=columns, totals=totals, movable=movable,
                           lost_reasons=services.reasons("lost"))


def _deal_page(deal_id: int, errors: dict | None = None, form=None, which: str = ""):
    me = current_user
    deal = services.get_deal(me, deal_id)
    changes = deal.history
    by = _people(c.by_id for c in changes)
    steps = []
    for i, change in enumerate(changes):
        until = changes[i + 1].entered_at if i + 1 < len(changes) else None
        steps.append({"change": change, "by": by.get(change.by_id), "until": until})
    history = db.session.scalars(
        select(Interaction).options(joinedload(Interaction.author), joinedload(Interaction.contact),
                                    joinedload(Interaction.reason))
        .where(Interaction.deal_id == deal.id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(100)).all()
    # A deal's responsible may not see its company (it is kept by someone else): the deal
    # is theirs to move, the company's card and contacts are not.
    seen = _sees_company(deal.company_id)
    return render_template(
        "clients/deal.html", deal=deal, steps=list(reversed(steps)), history=history,
        stages=[s for s in deal.pipeline.stages if s.archived_at is None],
        contacts=services.contacts_of(me, deal.company_id) if seen else [], company_seen=seen,
        editable=services.can_edit_deal(me, deal),
        reasons={k: services.reasons(k) for k in ("refusal", "complaint", "lost")},
        errors=errors or {}, form=form or {}, which=which)


def _sees_company(company_id: int) -> bool:
    return db.session.scalar(select(Company.id).where(
        Company.id == company_id, services.company_clause(current_user))) is not None


@bp.get("/deals/<int:deal_id>")
def deal(deal_id: int):
    return _deal_page(deal_id)


def _deal_data(form, new: bool) -> dict:
    data = {"title": form.get("title", ""),
            "company_id": _picked(form.get("company"), "company_id"),
            "contact_id": form_int(form.get("contact_id")),
            "currency": form.get("currency", "").strip().upper() or "RUB",
            "expected_close": form.get("expected_close", "").strip() or None,
            "responsible_id": form_int(form.get("responsible_id")), "next_step": form.get("next_step", ""),
            "next_step_at": utc_from_local(form.get("next_step_at")),
            "probability": form_int(form.get("probability"))}
    amount = _amount(form.get("amount"))
    if amount is not None or not new:
        data["amount"] = amount or "0"
    if new:
        data["pipeline_id"] = form_int(form.get("pipeline_id"))
        data["stage_id"] = form_int(form.get("stage_id"))
    return data


def _deal_form(deal: Deal | None, errors: dict | None = None, form=None):
    company = deal.company if deal else None
    if company is not None and not _sees_company(company.id):
        company = None
    if company is None and not form and _arg_id("company_id"):
        company = services.get_company(current_user, _arg_id("company_id"))
    if form and form.get("company"):
        try:
            company = services.get_company(current_user, _picked(form.get("company"), "company_id"))
        except DomainError:
            company = None
    contacts = services.contacts_of(current_user, company.id) if company else []
    return render_template("clients/deal_form.html", deal=deal, company=company, contacts=contacts,
                           pipelines=services.pipelines(), people=_assignable(),
                           errors=errors or {}, form=form)


@bp.route("/deals/new", methods=["GET", "POST"])
def deal_new():
    if request.method == "GET":
        return _deal_form(None)
    try:
        row = services.create_deal(current_user, _deal_data(request.form, new=True))
    except DomainError as exc:
        return _again(exc, lambda errors: _deal_form(None, errors, request.form))
    flash(_("The deal is saved."), "success")
    return redirect(url_for("clients.deal", deal_id=row.id))


@bp.route("/deals/<int:deal_id>/edit", methods=["GET", "POST"])
def deal_edit(deal_id: int):
    row = services.get_deal(current_user, deal_id)
    if not services.can_edit_deal(current_user, row):
        raise PermissionDenied(_("Only the deal's responsible manager and those above them may "
                                 "change it."))
    if request.method == "GET":
        return _deal_form(row)
    data = _deal_data(request.form, new=False)
    if data["company_id"] is None and not _sees_company(row.company_id):
        data.pop("company_id")  # kept by a colleague: the responsible cannot change it
    if data.get("responsible_id") == row.responsible_id:
        data.pop("responsible_id")  # unchanged: kept even when its holder has left
    try:
        services.update_deal(current_user, deal_id, data)
    except DomainError as exc:
        return _again(exc, lambda errors: _deal_form(services.get_deal(current_user, deal_id),
                                                     errors, request.form))
    flash(_("Saved."), "success")
    return redirect(url_for("clients.deal", deal_id=deal_id))


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.post("/deals/<int:deal_id>/move")
def deal_move(deal_id: int):
    """A deal to another stage: from the board (fetch, answered in JSON) or the deal's page
    (a form). Losing a deal needs a reason from the list."""
    data = {"stage_id": form_int(request.form.get("stage_id")),
            "reason_id": form_int(request.form.get("reason_id")), "note": request.form.get("note", "")}
    if _wants_json():
        row = services.move_deal(current_user, deal_id, data)  # errors answer in JSON
        return jsonify({"id": row.id, "stage_id": row.stage_id, "status": row.status,
                        "stage": row.stage.name, "probability": row.probability})
    try:
        row = services.move_deal(current_user, deal_id, data)
    except DomainError as exc:
        return _again(exc, lambda errors: _deal_page(deal_id, errors, request.form, "move"))
    flash(_("The deal is in “%(stage)s” now.", stage=row.stage.name), "success")
    return redirect(_back(url_for("clients.deal", deal_id=deal_id)))


# --- administration -------------------------------------------------------------------------

def _admin_only() -> None:
    if not is_admin(current_user):
        raise PermissionDenied(_("Only administrators may do this."))


def _admin_page(errors: dict | None = None, form=None, which: str = "", created=None):
    _admin_only()
    chart = charts.load()
    posts = sorted(chart.posts.values(), key=lambda p: (chart.units[p.unit_id].name, p.title)) \
        if chart.posts else []
    reasons = db.session.scalars(select(Reason).where(Reason.archived_at.is_(None))
                                 .order_by(Reason.kind, Reason.name)).all()
    grouped = {kind: [r for r in reasons if r.kind == kind] for kind in REASON_KIND_NAMES}
    forms = db.session.scalars(select(WebForm).where(WebForm.archived_at.is_(None))
                               .order_by(WebForm.created_at.desc())).all()
    counts = dict(db.session.execute(select(Lead.form_id, func.count()).where(
        Lead.form_id.in_([f.id for f in forms])).group_by(Lead.form_id)).all()) if forms else {}
    return render_template(
        "clients/admin.html", settings=services.settings(), chart=chart, posts=posts,
        reasons=grouped, forms=forms, form_leads=counts, people=_colleagues(),
        created=created, endpoint=_public_endpoint(), key_field=_key_field(),
        greetings=services.greeting_templates(), errors=errors or {}, form=form or {}, which=which)


def _public_endpoint() -> str:
    """Where a site posts its form: the public endpoint of app.clients.webform."""
    if "clients.webform.lead" in current_app.view_functions:
        return url_for("clients.webform.lead", _external=True)
    for rule in current_app.url_map.iter_rules():
        if rule.rule == "/clients/forms/lead":
            return url_for(rule.endpoint, _external=True)
    return request.host_url.rstrip("/") + "/clients/forms/lead"


def _key_field() -> str:
    try:
        from app.clients import webform
    except ImportError:
        return "key"
    return getattr(webform, "KEY_FIELD", "key")


@bp.get("/admin")
def admin():
    return _admin_page()


@bp.post("/admin/settings")
def admin_settings():
    _admin_only()
    data = {"lead_minutes": form_int(request.form.get("lead_minutes")),
            "lead_post_id": form_int(request.form.get("lead_post_id")) or 0}
    try:
        services.set_settings(current_user, data)
    except DomainError as exc:
        return _again(exc, lambda errors: _admin_page(errors, request.form, "settings"))
    flash(_("Lead settings are saved."), "success")
    return redirect(url_for("clients.admin") + "#leads")


@bp.post("/admin/reasons")
def admin_reason():
    _admin_only()
    data = {"kind": request.form.get("kind", ""), "name": request.form.get("name", "")}
    try:
        services.add_reason(current_user, data)
    except DomainError as exc:
        return _again(exc, lambda errors: _admin_page(errors, request.form, "reason-" + data["kind"]))
    flash(_("The reason is on the list."), "success")
    return redirect(url_for("clients.admin") + "#reasons")


@bp.post("/admin/forms")
def admin_form_create():
    """A web form: its key is shown on this page once, with the HTML a site pastes."""
    _admin_only()
    try:
        row, key = services.create_web_form(current_user, request.form.get("name", ""))
    except DomainError as exc:
        return _again(exc, lambda errors: _admin_page(errors, request.form, "webform"))
    response = current_app.make_response(_admin_page(created={"form": row, "key": key}))
    response.headers["Cache-Control"] = "no-store"  # the key is not kept anywhere
    return response


@bp.post("/admin/hand-over")
def admin_hand_over():
    _admin_only()
    data = {"from_user_id": form_int(request.form.get("from_user_id")),
            "to_user_id": form_int(request.form.get("to_user_id"))}
    try:
        moved = services.hand_over(current_user, data)
    except DomainError as exc:
        return _again(exc, lambda errors: _admin_page(errors, request.form, "hand_over"))
    flash(_("Handed over: %(companies)d companies, %(deals)d deals, %(leads)d leads.",
            companies=moved.get("client_company", 0), deals=moved.get("client_deal", 0),
            leads=moved.get("client_lead", 0)), "success")
    return redirect(url_for("clients.admin") + "#hand-over")


def _greeting_data(form) -> dict:
    return {"name": form.get("name", ""), "subject": form.get("subject", ""),
            "body": form.get("body", "").replace("\r\n", "\n")}


@bp.post("/admin/greetings")
def admin_greeting_create():
    """A new greeting template: a subject and a body with {name}, {company} and {sender}."""
    _admin_only()
    try:
        row = services.save_greeting_template(current_user, _greeting_data(request.form))
    except DomainError as exc:
        return _again(exc, lambda errors: _admin_page(errors, request.form, "greeting-new"))
    flash(_("The greeting “%(name)s” is saved.", name=row.name), "success")
    return redirect(url_for("clients.admin") + f"#greeting-{row.id}")


@bp.post("/admin/greetings/<int:template_id>")
def admin_greeting_save(template_id: int):
    _admin_only()
    if db.session.get(GreetingTemplate, template_id) is None:
        abort(404)
    try:
        row = services.save_greeting_template(current_user, _greeting_data(request.form), template_id)
    except DomainError as exc:
        return _again(exc, lambda errors: _admin_page(errors, request.form, f"greeting-{template_id}"))
    flash(_("The greeting “%(name)s” is saved.", name=row.name), "success")
    return redirect(url_for("clients.admin") + f"#greeting-{row.id}")


def _pipelines_page(errors: dict | None = None, form=None, which: str = ""):
    _admin_only()
    every = services.pipelines()
    counts = dict(db.session.execute(select(Deal.stage_id, func.count()).where(
        Deal.status == "open").group_by(Deal.stage_id)).all())
    return render_template("clients/admin_pipelines.html", pipelines=every, open_counts=counts,
                           errors=errors or {}, form=form, which=which)


@bp.get("/admin/pipelines")
def admin_pipelines():
    return _pipelines_page()


def _pipeline_data(form) -> dict:
    """Stage rows as typed, in the order given (rows without a name are left out)."""
    rows = []
    count = min(int(form.get("rows")), 40) if form.get("rows", "").isdigit() else 0
    for i in range(count):
        name = form.get(f"name-{i}", "").strip()
        if not name:
            continue
        order = form.get(f"order-{i}", "").strip()
        probability = form_int(form.get(f"probability-{i}"))
        rows.append((int(order) if order.isdigit() else 1000 + i, i, {
            "id": form_int(form.get(f"id-{i}")), "name": name,
            "kind": form.get(f"kind-{i}", "open"),
            "probability": 0 if probability is None else probability}))
    return {"name": form.get("name", ""), "stages": [r for _o, _i, r in sorted(rows, key=lambda r: r[:2])]}


@bp.post("/admin/pipelines")
def pipeline_create():
    _admin_only()
    try:
        row = services.save_pipeline(current_user, _pipeline_data(request.form))
    except DomainError as exc:
        return _again(exc, lambda errors: _pipelines_page(errors, request.form, "new"))
    flash(_("The pipeline is saved."), "success")
    return redirect(url_for("clients.admin_pipelines") + f"#pipeline-{row.id}")


@bp.post("/admin/pipelines/<int:pipeline_id>")
def pipeline_save(pipeline_id: int):
    _admin_only()
    if db.session.get(Pipeline, pipeline_id) is None:
        abort(404)
    try:
        services.save_pipeline(current_user, _pipeline_data(request.form), pipeline_id)
    except DomainError as exc:
        return _again(exc, lambda errors: _pipelines_page(errors, request.form, str(pipeline_id)))
    flash(_("The pipeline is saved."), "success")
    return redirect(url_for("clients.admin_pipelines") + f"#pipeline-{pipeline_id}")

