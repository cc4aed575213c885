"""Rules of the client base. Every path (page, API, import, public form, job) calls these.

Access follows the chart: a company is seen by its responsible manager, everyone above them,
posts with the `see_all_clients` capability (and executives, administrators), and colleagues
it is shared with by name. Contacts, deals and the history are seen through their company.
A record one may not see is 404, never 403, so nothing leaks.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from flask_babel import LazyString, format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import joinedload, selectinload

from app.clients.models import (
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
    Setting,
    Share,
    SignificantDate,
    Stage,
    StageChange,
    WebForm,
)
from app.clients.schemas import (
    CompanyIn,
    ContactIn,
    ConvertIn,
    DateIn,
    DealIn,
    GreetingIn,
    GreetingSendIn,
    HandOverIn,
    InteractionIn,
    LeadIn,
    MoveIn,
    PipelineIn,
    ReasonIn,
    ShareIn,
)
from app.core import audit, links, mail, notifications, signals
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.models import User
from app.core.money import to_minor
from app.core.services import is_admin, load, require_admin
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services as org

DEFAULTS = {"lead_minutes": 15, "lead_post_id": 0}
SEARCH_SIMILARITY = "0.5"  # pg_trgm word similarity a company's search needs
MAX_DEPTH = 20  # of a holding


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError(message, {field: [message]})


def company_path(company_id: int) -> str:
    return links.path_for("clients.company", f"/clients/companies/{company_id}",
                          company_id=company_id)


def deal_path(deal_id: int) -> str:
    return links.path_for("clients.deal", f"/clients/deals/{deal_id}", deal_id=deal_id)


def lead_path(lead_id: int) -> str:
    return links.path_for("clients.lead", f"/clients/leads/{lead_id}", lead_id=lead_id)


# --- settings -----------------------------------------------------------------------------

def settings() -> dict[str, int]:
    found = dict(db.session.execute(select(Setting.key, Setting.value)).all())
    return {k: found.get(k, v) for k, v in DEFAULTS.items()}


def set_settings(actor: User, data: Mapping) -> dict[str, int]:
    require_admin(actor)
    minutes, post_id = data.get("lead_minutes"), data.get("lead_post_id")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 7 * 24 * 60:
        raise _fail("lead_minutes", _("Minutes to contact a lead: a whole number from 1 to 10080."))
    if post_id and post_id not in charts.load().posts:
        raise _fail("lead_post_id", _("No such post."))
    for key, value in (("lead_minutes", minutes), ("lead_post_id", post_id or 0)):
        row = db.session.get(Setting, key) or Setting(key=key, value=value)
        row.value = value
        db.session.add(row)
    audit.record(actor, "clients.settings", "clients", None,
                 after={"lead_minutes": minutes, "lead_post_id": post_id or 0})
    return settings()


# --- who sees what ------------------------------------------------------------------------

def sees_all(actor: User) -> bool:
    return org.can_see_all(actor) or org.capability(actor, "see_all_clients") is not None


def directed_ids(actor: User) -> set[int]:
    return {actor.id, *(u.id for u in charts.load().subordinates_of(actor.id))}


def company_clause(actor: User):
    """A WHERE clause: the companies the actor may see."""
    if sees_all(actor):
        return Company.id.is_not(None)
    return or_(Company.responsible_id.in_(directed_ids(actor)),
               Company.id.in_(select(Share.company_id).where(Share.user_id == actor.id)))


def visible_companies(actor: User):
    return select(Company.id).where(company_clause(actor))


def get_company(actor: User, company_id: int) -> Company:
    company = db.session.scalar(select(Company).options(
        selectinload(Company.categories), joinedload(Company.responsible))
        .where(Company.id == company_id, company_clause(actor)))
    if company is None:
        raise NotFound(_("No such company."))
    return company


def can_edit(actor: User, company: Company) -> bool:
    """The responsible manager, those above them and see-all posts change a company; a
    colleague it is shared with may read it and log contacts."""
    return sees_all(actor) or company.responsible_id in directed_ids(actor)


def _editable(actor: User, company_id: int) -> Company:
    company = get_company(actor, company_id)
    if not can_edit(actor, company):
        raise PermissionDenied(_("Only the responsible manager and those above them may "
                                 "change this company."))
    return company


def contact_clause(actor: User):
    if sees_all(actor):
        return Contact.id.is_not(None)
    return or_(Contact.id.in_(select(ContactLink.contact_id).where(
        ContactLink.company_id.in_(visible_companies(actor)))),
        Contact.created_by_id == actor.id)


def get_contact(actor: User, contact_id: int) -> Contact:
    contact = db.session.scalar(select(Contact).options(
        selectinload(Contact.links).joinedload(ContactLink.company))
        .where(Contact.id == contact_id, contact_clause(actor)))
    if contact is None:
        raise NotFound(_("No such contact."))
    return contact


def deal_clause(actor: User):
    if sees_all(actor):
        return Deal.id.is_not(None)
    return or_(Deal.company_id.in_(visible_companies(actor)),
               Deal.responsible_id.in_(directed_ids(actor)))


def get_deal(actor: User, deal_id: int) -> Deal:
    deal = db.session.scalar(select(Deal).options(
        joinedload(Deal.company), joinedload(Deal.stage), joinedload(Deal.pipeline),
        joinedload(Deal.responsible)).where(Deal.id == deal_id, deal_clause(actor)))
    if deal is None:
        raise NotFound(_("No such deal."))
    return deal


def lead_clause(actor: User):
    if sees_all(actor):
        return Lead.id.is_not(None)
    return or_(Lead.responsible_id.in_(directed_ids(actor)), Lead.responsible_id.is_(None))


def get_lead(actor: User, lead_id: int) -> Lead:
    lead = db.session.scalar(select(Lead).where(Lead.id == lead_id, lead_clause(actor)))
    if lead is None:
        raise NotFound(_("No such lead."))
    return lead


def link_company(actor: User, company_id: int):
    try:
        company = get_company(actor, company_id)
    except NotFound:
        return None
    return company.name, company_path(company.id)


def link_deal(actor: User, deal_id: int):
    try:
        deal = get_deal(actor, deal_id)
    except NotFound:
        return None
    return f"{deal.title} ({deal.company.name})", deal_path(deal.id)


def link_pipeline(actor: User, pipeline_id: int):
    pipeline = db.session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.archived_at is not None:
        return None
    return pipeline.name, links.path_for("clients.board", f"/clients/pipelines/{pipeline_id}/board",
                                         pipeline_id=pipeline_id)


# --- normalising --------------------------------------------------------------------------

def digits(phone: str) -> str:
    """A phone as its digits, a leading 8 of a Russian number read as 7."""
    only = re.sub(r"\D", "", phone or "")
    return "7" + only[1:] if len(only) == 11 and only.startswith("8") else only


def _clean_list(values: Iterable[str], lower: bool = False) -> list[str]:
    out = []
    for value in values:
        value = " ".join((value or "").split())
        if value and (value.lower() if lower else value) not in out:
            out.append(value.lower() if lower else value)
    return out


def _search_text(*parts: str, phones: Iterable[str] = (), emails: Iterable[str] = ()) -> str:
    words = [" ".join(p.lower().split()) for p in parts if p]
    return " ".join([*words, *(digits(p) for p in phones), *(e.lower() for e in emails)])


def _categories(names: list[str]) -> list[Category]:
    names = _clean_list(names)
    if not names:
        return []
    found = {c.name.lower(): c for c in db.session.scalars(
        select(Category).where(func.lower(Category.name).in_([n.lower() for n in names])))}
    out = []
    for name in names:
        category = found.get(name.lower())
        if category is None:
            category = Category(name=name)
            db.session.add(category)
            found[name.lower()] = category
        out.append(category)
    return out


def _check_parent(company: Company | None, parent_id: int | None, actor: User) -> None:
    """A holding is a tree: a company is never its own parent or ancestor."""
    if parent_id is None:
        return
    parent = db.session.scalar(select(Company).where(Company.id == parent_id,
                                                     company_clause(actor)))
    if parent is None or parent.archived_at is not None:
        raise _fail("parent_id", _("No such parent company."))
    if company is None:
        return
    seen, current = set(), parent
    while current is not None:
        if current.id == company.id:
            raise _fail("parent_id", _("A company cannot be inside itself or its own "
                                       "subsidiary."))
        if current.id in seen or len(seen) > MAX_DEPTH:
            raise _fail("parent_id", _("The holding is too deep."))
        seen.add(current.id)
        current = db.session.get(Company, current.parent_id) if current.parent_id else None


def _responsible(actor: User, responsible_id: int | None) -> int:
    """A company goes to the actor, or to someone they direct (anyone, for see-all posts)."""
    if responsible_id is None or responsible_id == actor.id:
        return actor.id
    error = responsible_error(db.session.get(User, responsible_id), directed_ids(actor),
                              sees_all(actor))
    if error:
        raise _fail("responsible_id", error)
    return responsible_id


def responsible_error(user: User | None, directed: set[int], all_clients: bool) -> str | None:
    """Why a company may not go to `user` (None if it may): to an active person the actor
    directs (`directed`, the actor included), or to anyone active for see-all posts."""
    if user is None or not user.is_active:
        return _("No such person.")
    if user.id not in directed and not all_clients:
        return _("You may give clients only to yourself or to someone below you on the chart.")
    return None


# --- companies ----------------------------------------------------------------------------

def company_fields(values: Mapping) -> dict:
    """The columns that validated input (CompanyIn) sets, as every path stores them: text
    trimmed, no tax number as NULL, tags as ",a,b,", lists without repeats. Only the
    fields present in `values`; categories, parent and responsible are not columns here."""
    out = {}
    for name in ("legal_name", "short_name", "industry", "website", "notes", "status",
                 "is_client", "is_supplier", "is_partner", "next_step", "next_step_at"):
        if name in values:
            value = values[name]
            out[name] = value.strip() if isinstance(value, str) else value
    if "tax_number" in values:
        out["tax_number"] = (values["tax_number"] or "").strip() or None
    if "tags" in values:
        tags = _clean_list(values["tags"], lower=True)
        out["tags"] = f",{','.join(t.replace(',', ' ') for t in tags)}," if tags else ""
    if "phones" in values:
        out["phones"] = _clean_list(values["phones"])
    if "emails" in values:
        out["emails"] = _clean_list(values["emails"], lower=True)
    if "addresses" in values:
        out["addresses"] = [{"kind": a["kind"], "text": a["text"].strip()} for a in values["addresses"]]
    return out


def company_search_text(legal_name: str, short_name: str, tax_number: str | None,
                        phones: Iterable[str], emails: Iterable[str]) -> str:
    return _search_text(legal_name, short_name, tax_number or "", phones=phones, emails=emails)


def _apply_company(actor: User, company: Company, values: Mapping) -> None:
    for name, value in company_fields(values).items():
        setattr(company, name, value)
    if "categories" in values:
        company.categories = _categories(values["categories"])
    if "parent_id" in values:
        _check_parent(company if company.id else None, values["parent_id"], actor)
        company.parent_id = values["parent_id"]
    if "responsible_id" in values:
        company.responsible_id = _responsible(actor, values["responsible_id"])
    if not company.legal_name:
        raise _fail("legal_name", _("A legal name is required."))
    company.search_text = company_search_text(company.legal_name, company.short_name,
                                              company.tax_number, company.phones, company.emails)
    company.updated_at = utcnow()


def _company_snapshot(company: Company) -> dict:
    return {"legal_name": company.legal_name, "short_name": company.short_name,
            "tax_number": company.tax_number, "status": company.status,
            "responsible_id": company.responsible_id, "parent_id": company.parent_id,
            "next_step": company.next_step,
            "next_step_at": company.next_step_at.isoformat() if company.next_step_at else None}


def create_company(actor: User, data: Mapping) -> Company:
    values = load(CompanyIn(), data)
    company = Company(created_at=utcnow())
    values.setdefault("responsible_id", None)
    _apply_company(actor, company, values)
    db.session.add(company)
    db.session.flush()
    audit.record(actor, "company.create", "company", company.id, after=_company_snapshot(company))
    return company


def update_company(actor: User, company_id: int, data: Mapping) -> Company:
    values = load(CompanyIn(), data, partial=True)
    company = _editable(actor, company_id)
    before = _company_snapshot(company)
    _apply_company(actor, company, values)
    db.session.flush()
    audit.record(actor, "company.update", "company", company.id, before=before,
                 after=_company_snapshot(company))
    return company


def archive_company(actor: User, company_id: int) -> Company:
    company = _editable(actor, company_id)
    company.archived_at = company.archived_at or utcnow()
    audit.record(actor, "company.archive", "company", company.id)
    return company


def share(actor: User, company_id: int, data: Mapping) -> list[int]:
    values = load(ShareIn(), data)
    company = _editable(actor, company_id)
    users = db.session.scalars(select(User).where(User.id.in_(values["user_ids"]))).all()
    if len(users) != len(set(values["user_ids"])) or not all(u.is_active for u in users):
        raise _fail("user_ids", _("Unknown person."))
    db.session.execute(Share.__table__.delete().where(Share.company_id == company.id))
    db.session.add_all(Share(company_id=company.id, user_id=u.id) for u in users)
    db.session.flush()
    audit.record(actor, "company.share", "company", company.id,
                 after={"user_ids": sorted(u.id for u in users)})
    return sorted(u.id for u in users)


def holding_ids(company_id: int) -> list[int]:
    """The company and every company under it, any depth."""
    ids, frontier = [company_id], [company_id]
    for _depth in range(MAX_DEPTH):
        frontier = list(db.session.scalars(select(Company.id).where(
            Company.parent_id.in_(frontier), Company.archived_at.is_(None))))
        if not frontier:
            break
        ids += frontier
    return ids


# Figures other modules add to a holding's card (finance: invoices, payments, debts):
# name -> fn(company ids) -> {label: formatted value}
_rollups: dict[str, object] = {}


def register_rollup(name: str, fn) -> None:
    _rollups[name] = fn


def rollup(actor: User, company_id: int) -> dict:
    """A holding's figures: its companies' deals (and what other modules register)."""
    company = get_company(actor, company_id)
    ids = holding_ids(company.id)
    rows = db.session.execute(
        select(Deal.status, Deal.currency, func.count(), func.coalesce(func.sum(Deal.amount_minor), 0))
        .where(Deal.company_id.in_(ids)).group_by(Deal.status, Deal.currency)).all()
    deals = [{"status": s, "currency": c, "count": n, "amount_minor": int(a)} for s, c, n, a in rows]
    extra = {name: fn(ids) for name, fn in _rollups.items()}
    return {"company_ids": ids, "deals": deals, **extra}


def hand_over(actor: User, data: Mapping) -> dict[str, int]:
    """Everything one person is responsible for (companies, deals, leads) goes to another in
    one step; the history stays with the clients."""
    values = load(HandOverIn(), data)
    source = db.session.get(User, values["from_user_id"])
    target = db.session.get(User, values["to_user_id"])
    if source is None or target is None or not target.is_active:
        raise _fail("to_user_id", _("Unknown person."))
    if source.id == target.id:
        raise _fail("to_user_id", _("Choose someone else to hand the clients to."))
    if not (is_admin(actor) or sees_all(actor) or {source.id, target.id} <= directed_ids(actor)):
        raise PermissionDenied(_("Only their managers hand clients over."))
    moved = {}
    for model in (Company, Deal, Lead):
        moved[model.__tablename__] = db.session.execute(
            update(model).where(model.responsible_id == source.id)
            .values(responsible_id=target.id).execution_options(synchronize_session=False)
        ).rowcount
    audit.record(actor, "clients.hand_over", "user", source.id,
                 after={"to": target.id, **moved})
    notifications.notify(target.id, "clients", _l("Clients handed over to you"),
                         _l("From %(name)s", name=source.name), None)
    return moved


def without_next_step(actor: User, now: datetime | None = None, overdue: bool = False):
    """A select() of active companies with no next step (or an overdue one)."""
    now = now or utcnow()
    cond = Company.next_step_at < now if overdue else Company.next_step_at.is_(None)
    return (select(Company).options(joinedload(Company.responsible))
            .where(company_clause(actor), Company.archived_at.is_(None),
                   Company.status != "former", cond)
            .order_by(Company.next_step_at, Company.id))


def deals_without_next_step(actor: User, now: datetime | None = None, overdue: bool = False):
    now = now or utcnow()
    cond = Deal.next_step_at < now if overdue else Deal.next_step_at.is_(None)
    return (select(Deal).options(joinedload(Deal.company), joinedload(Deal.responsible))
            .where(deal_clause(actor), Deal.status == "open", cond)
            .order_by(Deal.next_step_at, Deal.id))


# --- search and duplicates ----------------------------------------------------------------

def search_companies(actor: User, q: str, limit: int = 50):
    """A select() of companies by name, tax number, phone or e-mail, tolerant of typos on
    PostgreSQL (trigram similarity) and of partial input everywhere."""
    q = " ".join((q or "").lower().split())[:200]
    stmt = select(Company).where(company_clause(actor), Company.archived_at.is_(None))
    if not q:
        return stmt.order_by(Company.legal_name)
    needle = digits(q) if re.fullmatch(r"[\d\s()+\-]{5,}", q) else q
    like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if db.session.get_bind().dialect.name == "postgresql":
        matches = Company.search_text.like(like, escape="\\")
        if re.search(r"[^\W\d_]", needle) and "@" not in needle:
            # words forgive typos; numbers and e-mails match (in part) as typed
            # pg_trgm's threshold (0.6) misses a name typed without its short words:
            # "Рогакопыта" is 0.56 like "Рога и копыта". Lowered for this transaction.
            db.session.execute(select(func.set_config("pg_trgm.word_similarity_threshold",
                                                      SEARCH_SIMILARITY, True)))
            # word similarity, through the trigram index
            matches = or_(matches, Company.search_text.op("%>")(needle))
        return (stmt.where(matches)
                .order_by(func.word_similarity(needle, Company.search_text).desc(),
                          Company.legal_name).limit(limit))
    return stmt.where(Company.search_text.like(like, escape="\\")).order_by(
        Company.legal_name).limit(limit)


def _like(text_: str) -> str:
    return "%" + text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def find_companies(actor: User, q: str = "", *, status: str | None = None,
                   responsible_id: int | None = None, kind: str | None = None,
                   tag: str | None = None, category: str | None = None,
                   parent_id: int | None = None, next_step: str | None = None,
                   now: datetime | None = None):
    """A select() of the companies one may see, searched as search_companies does and
    filtered: status, responsible, kind (client, supplier, partner), a tag, a category name,
    a parent (its direct subsidiaries), next step "none" or "overdue" (not former ones)."""
    stmt = search_companies(actor, q, limit=None).options(joinedload(Company.responsible))
    if status:
        stmt = stmt.where(Company.status == status)
    if responsible_id:
        stmt = stmt.where(Company.responsible_id == responsible_id)
    if kind in ("client", "supplier", "partner"):
        stmt = stmt.where(getattr(Company, f"is_{kind}").is_(True))
    if tag and tag.strip():
        stmt = stmt.where(Company.tags.like(_like(f",{tag.strip().lower()},"), escape="\\"))
    if category and category.strip():
        stmt = stmt.where(Company.categories.any(func.lower(Category.name)
                                                 == category.strip().lower()))
    if parent_id:
        stmt = stmt.where(Company.parent_id == parent_id)
    if next_step in ("none", "overdue"):
        cond = Company.next_step_at.is_(None) if next_step == "none" \
            else Company.next_step_at < (now or utcnow())
        stmt = stmt.where(Company.status != "former", cond)
    return stmt.order_by(Company.id)


def duplicates(email: str = "", phone: str = "", tax_number: str = "") -> list[Company]:
    """Companies that look like the same one: by tax number, an e-mail or a phone."""
    conds = []
    if tax_number.strip():
        conds.append(Company.tax_number == tax_number.strip())
    if email.strip():
        conds.append(Company.search_text.like(_like(email.strip().lower()), escape="\\"))
    if len(digits(phone)) >= 6:
        conds.append(Company.search_text.like(_like(digits(phone)), escape="\\"))
    if not conds:
        return []
    return list(db.session.scalars(select(Company).where(or_(*conds), Company.archived_at.is_(None))
                                   .order_by(Company.id).limit(10)))


def search_contacts(actor: User, q: str, limit: int = 500):
    """A select() of the contacts the actor may see by name, phone or e-mail (partial input;
    typos too on PostgreSQL)."""
    q = " ".join((q or "").lower().split())[:200]
    stmt = select(Contact).where(contact_clause(actor), Contact.archived_at.is_(None))
    if not q:
        return stmt.order_by(Contact.name, Contact.id)
    needle = digits(q) if re.fullmatch(r"[\d\s()+\-]{5,}", q) else q
    like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if db.session.get_bind().dialect.name == "postgresql":
        similar = Contact.search_text.op("%>")(needle)
        return (stmt.where(or_(Contact.search_text.like(like, escape="\\"), similar))
                .order_by(func.word_similarity(needle, Contact.search_text).desc(), Contact.name)
                .limit(limit))
    return stmt.where(Contact.search_text.like(like, escape="\\")).order_by(Contact.name).limit(limit)


def contact_duplicates(actor: User, email: str = "", phone: str = "") -> list[Contact]:
    """Contacts the actor may see with this e-mail or phone (a lead's person, known already)."""
    conds = []
    if email.strip():
        conds.append(Contact.search_text.like(f"%{email.strip().lower()}%"))
    if len(digits(phone)) >= 6:
        conds.append(Contact.search_text.like(f"%{digits(phone)}%"))
    if not conds:
        return []
    return list(db.session.scalars(select(Contact).where(or_(*conds), contact_clause(actor),
                                                         Contact.archived_at.is_(None))
                                   .order_by(Contact.id).limit(10)))


# --- contacts -----------------------------------------------------------------------------

def contact_fields(values: Mapping) -> dict:
    """The columns that validated input (ContactIn) sets, as every path stores them (only
    the fields present; the companies are links, not columns)."""
    out = {}
    for name in ("name", "birthday", "consent", "notes"):
        if name in values:
            value = values[name]
            out[name] = value.strip() if isinstance(value, str) else value
    if "phones" in values:
        out["phones"] = _clean_list(values["phones"])
    if "emails" in values:
        out["emails"] = _clean_list(values["emails"], lower=True)
    if "messengers" in values:
        out["messengers"] = [dict(m) for m in values["messengers"]]
    return out


def contact_search_text(name: str, phones: Iterable[str], emails: Iterable[str]) -> str:
    return _search_text(name, phones=phones, emails=emails)


def _apply_contact(actor: User, contact: Contact, values: Mapping) -> None:
    for name, value in contact_fields(values).items():
        setattr(contact, name, value)
    if "companies" in values:
        wanted = {c["company_id"]: c["position"] for c in values["companies"]}
        for company_id in wanted:
            get_company(actor, company_id)  # 404 for a company one may not see
        contact.links = [ContactLink(company_id=cid, position=pos.strip())
                         for cid, pos in wanted.items()]
    if not contact.name:
        raise _fail("name", _("A name is required."))
    contact.search_text = contact_search_text(contact.name, contact.phones, contact.emails)


def create_contact(actor: User, data: Mapping) -> Contact:
    values = load(ContactIn(), data)
    contact = Contact(created_by_id=actor.id, created_at=utcnow())
    _apply_contact(actor, contact, values)
    db.session.add(contact)
    db.session.flush()
    audit.record(actor, "contact.create", "contact", contact.id, after={"name": contact.name})
    return contact


def update_contact(actor: User, contact_id: int, data: Mapping) -> Contact:
    values = load(ContactIn(), data, partial=True)
    contact = get_contact(actor, contact_id)
    before = {"name": contact.name, "companies": [link.company_id for link in contact.links]}
    _apply_contact(actor, contact, values)
    db.session.flush()
    audit.record(actor, "contact.update", "contact", contact.id, before=before,
                 after={"name": contact.name, "companies": [lk.company_id for lk in contact.links]})
    return contact


def find_contacts(actor: User, q: str = "", company_id: int | None = None):
    """A select() of the contacts one may see, by name, phone or e-mail, or at one company
    (404 for a company one may not see)."""
    stmt = (select(Contact).options(selectinload(Contact.links).joinedload(ContactLink.company))
            .where(contact_clause(actor), Contact.archived_at.is_(None)))
    if company_id is not None:
        get_company(actor, company_id)
        stmt = stmt.where(Contact.id.in_(select(ContactLink.contact_id)
                                         .where(ContactLink.company_id == company_id)))
    q = " ".join((q or "").lower().split())[:200]
    if q:
        needle = digits(q) if re.fullmatch(r"[\d\s()+\-]{5,}", q) else q
        stmt = stmt.where(Contact.search_text.like(_like(needle), escape="\\"))
    return stmt.order_by(Contact.name, Contact.id)


def contacts_of(actor: User, company_id: int) -> list[ContactLink]:
    get_company(actor, company_id)
    return list(db.session.scalars(select(ContactLink).options(joinedload(ContactLink.contact))
                                   .where(ContactLink.company_id == company_id)
                                   .order_by(ContactLink.contact_id)))


# --- the history and the next step --------------------------------------------------------

def reasons(kind: str) -> list[Reason]:
    return list(db.session.scalars(select(Reason).where(Reason.kind == kind,
                                                        Reason.archived_at.is_(None))
                                   .order_by(Reason.name)))


def add_reason(actor: User, data: Mapping) -> Reason:
    require_admin(actor)
    values = load(ReasonIn(), data)
    if db.session.scalar(select(Reason.id).where(Reason.kind == values["kind"],
                                                 Reason.name == values["name"].strip())):
        raise _fail("name", _("This reason is already on the list."))
    reason = Reason(kind=values["kind"], name=values["name"].strip())
    db.session.add(reason)
    db.session.flush()
    return reason


def _reason(reason_id: int | None, kind: str, field: str = "reason_id") -> Reason:
    reason = db.session.get(Reason, reason_id) if reason_id else None
    if reason is None or reason.kind != kind or reason.archived_at is not None:
        raise _fail(field, _("Choose a reason from the list."))
    return reason


def log_interaction(actor: User, data: Mapping) -> Interaction:
    """A call, meeting, e-mail, note, complaint or refusal on a client's card. With an
    outcome it moves the next step of the deal (or, without a deal, of the company):
    advance sets a new step, postpone the same step at a new date, refuse needs a reason."""
    values = load(InteractionIn(), data)
    company = get_company(actor, values["company_id"])
    deal = get_deal(actor, values["deal_id"]) if values["deal_id"] else None
    if deal is not None and deal.company_id != company.id:
        raise _fail("deal_id", _("This deal is another company's."))
    if deal is not None and values["outcome"] == "refuse" and not can_edit_deal(actor, deal):
        # refusing loses the deal: the same people as move it
        raise PermissionDenied(_("Only the deal's responsible manager and those above them may "
                                 "change it."))
    if values["contact_id"]:
        contact = get_contact(actor, values["contact_id"])
        if all(link.company_id != company.id for link in contact.links):
            raise _fail("contact_id", _("This contact is not at this company."))
    now = utcnow()
    outcome, target = values["outcome"], deal or company
    reason = None
    if values["kind"] in ("refusal", "complaint") or outcome == "refuse":
        kind = "complaint" if values["kind"] == "complaint" else "refusal"
        if values["reason_id"] or outcome == "refuse" or values["kind"] == "refusal":
            reason = _reason(values["reason_id"], kind)
    if outcome == "advance":
        if not values["next_step"].strip() or values["next_step_at"] is None:
            raise _fail("next_step", _("Advancing needs the next step and its date."))
        if values["next_step_at"] <= now:
            raise _fail("next_step_at", _("The next step's date must be ahead."))
        target.next_step, target.next_step_at = values["next_step"].strip(), values["next_step_at"]
    elif outcome == "postpone":
        if values["next_step_at"] is None or values["next_step_at"] <= now:
            raise _fail("next_step_at", _("Postponing needs a new date ahead."))
        target.next_step_at = values["next_step_at"]
        if values["next_step"].strip():
            target.next_step = values["next_step"].strip()
    elif outcome == "refuse":
        target.next_step, target.next_step_at = "", None
        if deal is not None:
            lost = next((s for s in deal.pipeline.stages if s.kind == "lost"), None)
            if lost is None:
                raise _fail("deal_id", _("This pipeline has no stage for lost deals."))
            _enter_stage(actor, deal, lost, now)
            deal.lost_reason_id = reason.id
        else:
            company.status = "former"
    row = Interaction(company_id=company.id, contact_id=values["contact_id"],
                      deal_id=deal.id if deal else None, kind=values["kind"],
                      subject=values["subject"].strip(), body=values["body"],
                      outcome=outcome, reason_id=reason.id if reason else None,
                      occurred_at=values["occurred_at"] or now, author_id=actor.id)
    if company.status == "prospect" and outcome == "advance":
        company.status = "active"
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "interaction.create", "company", company.id,
                 after={"interaction_id": row.id, "kind": row.kind, "outcome": outcome})
    return row


def history(actor: User, company_id: int, limit: int = 200) -> list[dict]:
    """The card's history, newest first: contacts, and what other modules link to the
    company or its deals (tasks and programme runs; app.core.links.backlinks)."""
    company = get_company(actor, company_id)
    rows = db.session.scalars(select(Interaction).options(
        joinedload(Interaction.author), joinedload(Interaction.contact), joinedload(Interaction.reason))
        .where(Interaction.company_id == company.id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(limit)).all()
    items = [{"at": r.occurred_at, "kind": r.kind, "title": r.subject, "row": r} for r in rows]
    deal_ids = list(db.session.scalars(select(Deal.id).where(Deal.company_id == company.id)))
    items += links.backlinks(actor, "client", [company.id]) + links.backlinks(actor, "deal", deal_ids)
    return sorted(items, key=lambda i: i["at"], reverse=True)[:limit]


def find_interactions(actor: User, company_id: int | None = None, deal_id: int | None = None,
                      kind: str | None = None):
    """A select() of contacts with clients, newest first: of one company or deal (404 when
    one may not see it), or of every company one sees."""
    stmt = select(Interaction).options(joinedload(Interaction.author),
                                       joinedload(Interaction.contact),
                                       joinedload(Interaction.reason))
    if company_id is not None:
        stmt = stmt.where(Interaction.company_id == get_company(actor, company_id).id)
    else:
        stmt = stmt.where(Interaction.company_id.in_(visible_companies(actor)))
    if deal_id is not None:
        stmt = stmt.where(Interaction.deal_id == get_deal(actor, deal_id).id)
    if kind:
        stmt = stmt.where(Interaction.kind == kind)
    return stmt.order_by(Interaction.occurred_at.desc(), Interaction.id.desc())


def on_message_sent_external(message, address: str = "", actor=None, **_kw) -> None:
    """Mail copied to a client's address joins that client's history."""
    address = (address or "").strip().lower()
    if not address:
        return
    company_ids = set(db.session.scalars(select(Company.id).where(
        Company.search_text.like(f"%{address}%"), Company.archived_at.is_(None))))
    company_ids |= set(db.session.scalars(select(ContactLink.company_id).join(Contact).where(
        Contact.search_text.like(f"%{address}%"))))
    for company_id in sorted(company_ids):
        db.session.add(Interaction(company_id=company_id, kind="email",
                                   subject=(message.subject or "")[:300],
                                   body=message.body or "", occurred_at=utcnow(),
                                   author_id=message.sender_id, message_id=message.id))


# --- pipelines and deals ------------------------------------------------------------------

def pipelines(include_archived: bool = False) -> list[Pipeline]:
    stmt = select(Pipeline).options(selectinload(Pipeline.stages))
    if not include_archived:
        stmt = stmt.where(Pipeline.archived_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Pipeline.position, Pipeline.id)))


def save_pipeline(actor: User, data: Mapping, pipeline_id: int | None = None) -> Pipeline:
    """An administrator sets a pipeline's stages in order; at least one open stage, one won
    and one lost. Stages with deals in them are kept (archived when removed)."""
    require_admin(actor)
    values = load(PipelineIn(), data)
    kinds = [s["kind"] for s in values["stages"]]
    if "open" not in kinds or kinds.count("won") != 1 or kinds.count("lost") != 1:
        raise _fail("stages", _("A pipeline needs open stages, one won stage and one lost "
                                "stage."))
    pipeline = Pipeline(name="", position=0) if pipeline_id is None else db.session.get(
        Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(_("No such pipeline."))
    pipeline.name = values["name"].strip()
    existing = {s.id: s for s in pipeline.stages}
    kept = []
    for position, row in enumerate(values["stages"], start=1):
        stage = existing.pop(row["id"], None) if row["id"] else None
        if row["id"] and stage is None:
            raise _fail("stages", _("A stage from another pipeline."))
        stage = stage or Stage(pipeline=pipeline)
        stage.position, stage.name, stage.kind = position, row["name"].strip(), row["kind"]
        stage.probability, stage.archived_at = row["probability"], None
        kept.append(stage)
    for gone in existing.values():
        gone.archived_at, gone.position = utcnow(), 1000 + gone.position
        if db.session.scalar(select(Deal.id).where(Deal.stage_id == gone.id,
                                                   Deal.status == "open").limit(1)):
            raise _fail("stages", _("The stage %(name)s still has deals; move them first.",
                                    name=gone.name))
    db.session.add(pipeline)
    db.session.flush()
    audit.record(actor, "pipeline.save", "pipeline", pipeline.id,
                 after={"name": pipeline.name, "stages": [s.name for s in kept]})
    return pipeline


def _stage(pipeline_id: int, stage_id: int | None) -> Stage:
    pipeline = db.session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.archived_at is not None:
        raise _fail("pipeline_id", _("No such pipeline."))
    live = [s for s in pipeline.stages if s.archived_at is None]
    if stage_id is None:
        return next(s for s in live if s.kind == "open")
    stage = next((s for s in live if s.id == stage_id), None)
    if stage is None:
        raise _fail("stage_id", _("This stage is not in the deal's pipeline."))
    return stage


def can_edit_deal(actor: User, deal: Deal) -> bool:
    """A deal is changed by its responsible manager, those above them, and whoever may
    change its company; a colleague the company is shared with only reads it."""
    return can_edit(actor, deal.company) or deal.responsible_id in directed_ids(actor)


def _deal_editable(actor: User, deal_id: int) -> Deal:
    deal = get_deal(actor, deal_id)
    if not can_edit_deal(actor, deal):
        raise PermissionDenied(_("Only the deal's responsible manager and those above them may "
                                 "change it."))
    return deal


def create_deal(actor: User, data: Mapping) -> Deal:
    values = load(DealIn(), data)
    company = get_company(actor, values["company_id"])
    if values["contact_id"]:
        contact = get_contact(actor, values["contact_id"])
        if all(link.company_id != company.id for link in contact.links):
            raise _fail("contact_id", _("This contact is not at this company."))
    pipeline_id = values["pipeline_id"] or next((p.id for p in pipelines()), None)
    if pipeline_id is None:
        raise _fail("pipeline_id", _("No pipeline yet: an administrator sets one up first."))
    stage = _stage(pipeline_id, values["stage_id"])
    if stage.kind != "open":
        raise _fail("stage_id", _("A new deal starts in an open stage."))
    now = utcnow()
    deal = Deal(title=values["title"].strip(), company_id=company.id,
                contact_id=values["contact_id"], pipeline_id=pipeline_id, stage_id=stage.id,
                amount_minor=to_minor(values["amount"], values["currency"]),
                currency=values["currency"], probability=values["probability"]
                if values["probability"] is not None else stage.probability,
                expected_close=values["expected_close"],
                responsible_id=_responsible(actor, values["responsible_id"]),
                next_step=values["next_step"].strip(), next_step_at=values["next_step_at"],
                created_at=now, updated_at=now)
    deal.history = [StageChange(stage_id=stage.id, entered_at=now, by_id=actor.id)]
    db.session.add(deal)
    db.session.flush()
    audit.record(actor, "deal.create", "deal", deal.id,
                 after={"title": deal.title, "company_id": company.id, "stage": stage.name})
    return deal


def update_deal(actor: User, deal_id: int, data: Mapping) -> Deal:
    values = load(DealIn(), data, partial=True)
    deal = _deal_editable(actor, deal_id)
    if "company_id" in values and values["company_id"] != deal.company_id:
        get_company(actor, values["company_id"])
        deal.company_id = values["company_id"]
    if "probability" in values and values["probability"] is None:
        values["probability"] = deal.stage.probability  # none given: the stage's, as on create
    for name in ("title", "probability", "expected_close", "next_step", "next_step_at"):
        if name in values:
            value = values[name]
            setattr(deal, name, value.strip() if isinstance(value, str) else value)
    if "amount" in values or "currency" in values:
        currency = values.get("currency", deal.currency)
        if "amount" in values:
            deal.amount_minor = to_minor(values["amount"], currency)
        deal.currency = currency
    if "responsible_id" in values:
        deal.responsible_id = _responsible(actor, values["responsible_id"])
    deal.updated_at = utcnow()
    db.session.flush()
    audit.record(actor, "deal.update", "deal", deal.id, after={"title": deal.title})
    return deal


def find_deals(actor: User, *, q: str = "", pipeline_id: int | None = None,
               stage_id: int | None = None, status: str | None = None,
               company_id: int | None = None, responsible_id: int | None = None,
               next_step: str | None = None, now: datetime | None = None):
    """A select() of the deals one may see, latest changed first, filtered: title, pipeline,
    stage, status, company (with its holding's companies), responsible, next step "none" or
    "overdue" (open deals only)."""
    stmt = (select(Deal).options(joinedload(Deal.company), joinedload(Deal.stage),
                                 joinedload(Deal.responsible))
            .where(deal_clause(actor)))
    q = " ".join((q or "").split())[:200]
    if q:
        stmt = stmt.where(func.lower(Deal.title).like(_like(q.lower()), escape="\\"))
    if pipeline_id:
        stmt = stmt.where(Deal.pipeline_id == pipeline_id)
    if stage_id:
        stmt = stmt.where(Deal.stage_id == stage_id)
    if status:
        stmt = stmt.where(Deal.status == status)
    if company_id:
        stmt = stmt.where(Deal.company_id.in_(holding_ids(get_company(actor, company_id).id)))
    if responsible_id:
        stmt = stmt.where(Deal.responsible_id == responsible_id)
    if next_step in ("none", "overdue"):
        cond = Deal.next_step_at.is_(None) if next_step == "none" \
            else Deal.next_step_at < (now or utcnow())
        stmt = stmt.where(Deal.status == "open", cond)
    return stmt.order_by(Deal.updated_at.desc(), Deal.id.desc())


def _enter_stage(actor: User, deal: Deal, stage: Stage, now: datetime) -> None:
    deal.stage_id, deal.stage = stage.id, stage
    deal.status = {"won": "won", "lost": "lost"}.get(stage.kind, "open")
    deal.closed_at = now if deal.status != "open" else None
    deal.probability = stage.probability
    deal.updated_at = now
    deal.history.append(StageChange(stage_id=stage.id, entered_at=now, by_id=actor.id))


def move_deal(actor: User, deal_id: int, data: Mapping) -> Deal:
    """Move a deal to another stage of its pipeline; losing it needs a reason; winning it
    tells the modules that listen (a programme can start, a draft invoice be made)."""
    values = load(MoveIn(), data)
    deal = _deal_editable(actor, deal_id)
    stage = _stage(deal.pipeline_id, values["stage_id"])
    if stage.id == deal.stage_id:
        return deal
    before = {"stage": deal.stage.name, "status": deal.status}
    reason = _reason(values["reason_id"], "lost") if stage.kind == "lost" else None
    _enter_stage(actor, deal, stage, utcnow())
    deal.lost_reason_id = reason.id if reason else None
    deal.lost_note = values["note"].strip() if reason else ""
    if deal.status != "open":
        deal.next_step, deal.next_step_at = "", None
    db.session.flush()
    audit.record(actor, "deal.move", "deal", deal.id, before=before,
                 after={"stage": stage.name, "status": deal.status,
                        "reason": reason.name if reason else None})
    if deal.status == "won":
        signals.deal_won.send(deal, actor=actor)
    return deal


def board(actor: User, pipeline_id: int, limit: int = 200) -> dict[int, list[Deal]]:
    """A pipeline's open stages (and the last month's won and lost) with their deals."""
    pipeline = db.session.get(Pipeline, pipeline_id)
    if pipeline is None or pipeline.archived_at is not None:
        raise NotFound(_("No such pipeline."))
    since = utcnow() - timedelta(days=30)
    deals = db.session.scalars(select(Deal).options(joinedload(Deal.company),
                                                    joinedload(Deal.responsible))
                               .where(Deal.pipeline_id == pipeline.id, deal_clause(actor),
                                      or_(Deal.status == "open", Deal.closed_at >= since))
                               .order_by(Deal.updated_at.desc()).limit(limit * 10)).all()
    out: dict[int, list[Deal]] = {s.id: [] for s in pipeline.stages if s.archived_at is None}
    for deal in deals:
        if deal.stage_id in out and len(out[deal.stage_id]) < limit:
            out[deal.stage_id].append(deal)
    return out


# --- leads --------------------------------------------------------------------------------

def _lead_owner() -> int | None:
    """New leads go to the holder of the post the administrator chose (from above when
    vacant)."""
    post_id = settings()["lead_post_id"]
    chart = charts.load()
    if not post_id or post_id not in chart.posts:
        return None
    users = chart.holding(chart.posts[post_id]).users
    return users[0].id if users else None


def create_lead(actor: User | None, data: Mapping, form: WebForm | None = None) -> Lead:
    """A lead from a form, a call, a referral or the public web form; it must be contacted
    within the minutes the administrator set."""
    values = load(LeadIn(), data)
    if not (values["name"].strip() or values["email"] or values["phone"].strip()
            or values["company_name"].strip()):
        raise _fail("name", _("A lead needs at least a name, an e-mail or a phone."))
    now = utcnow()
    owner = values["responsible_id"] if actor is not None and values["responsible_id"] else None
    if owner is not None:
        owner = _responsible(actor, owner)
    lead = Lead(source="web" if form else values["source"], form_id=form.id if form else None,
                name=values["name"].strip(), company_name=values["company_name"].strip(),
                email=(values["email"] or "").lower(), phone=values["phone"].strip(),
                tax_number=values["tax_number"].strip(), message=values["message"],
                responsible_id=owner or _lead_owner(), created_at=now,
                contact_due_at=now + timedelta(minutes=settings()["lead_minutes"]))
    db.session.add(lead)
    db.session.flush()
    audit.record(actor, "lead.create", "lead", lead.id, after={"source": lead.source})
    if lead.responsible_id:
        notifications.notify(lead.responsible_id, "lead", _l("New lead: contact it now"),
                             lead.name or lead.company_name or lead.email, lead_path(lead.id))
    return lead


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_web_form(actor: User, name: str) -> tuple[WebForm, str]:
    """A public form and its key, shown once."""
    require_admin(actor)
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise _fail("name", _("A name of up to 120 characters is required."))
    key = secrets.token_urlsafe(24)
    form = WebForm(name=name, key_hash=_key_hash(key), key_hint=key[-4:])
    db.session.add(form)
    db.session.flush()
    audit.record(actor, "web_form.create", "web_form", form.id, after={"name": name})
    return form, key


def form_for_key(key: str | None) -> WebForm:
    form = db.session.scalar(select(WebForm).where(WebForm.key_hash == _key_hash(key or ""),
                                                   WebForm.archived_at.is_(None))) if key else None
    if form is None:
        raise PermissionDenied(_("This form's key is not valid."))
    return form


def mark_contacted(actor: User, lead_id: int) -> Lead:
    lead = get_lead(actor, lead_id)
    if lead.status != "new":
        raise Conflict(_("This lead has been handled already."))
    lead.status, lead.contacted_at = "contacted", utcnow()
    lead.responsible_id = lead.responsible_id or actor.id
    audit.record(actor, "lead.contacted", "lead", lead.id)
    return lead


def reject_lead(actor: User, lead_id: int, reason: str) -> Lead:
    lead = get_lead(actor, lead_id)
    if lead.status in ("converted", "rejected"):
        raise Conflict(_("This lead has been handled already."))
    if not (reason or "").strip():
        raise _fail("reason", _("Say why the lead is rejected."))
    lead.status, lead.reject_reason = "rejected", reason.strip()[:2000]
    lead.contacted_at = lead.contacted_at or utcnow()
    audit.record(actor, "lead.reject", "lead", lead.id, after={"reason": lead.reject_reason})
    return lead


def lead_duplicates(actor: User, lead_id: int) -> list[Company]:
    lead = get_lead(actor, lead_id)
    return duplicates(lead.email, lead.phone, lead.tax_number)


def convert_lead(actor: User, lead_id: int, data: Mapping) -> Lead:
    """A lead becomes a company (or joins a duplicate chosen by the user), a contact and a
    deal, in one step."""
    values = load(ConvertIn(), data)
    lead = get_lead(actor, lead_id)
    if lead.status in ("converted", "rejected"):
        raise Conflict(_("This lead has been handled already."))
    if values["company_id"]:
        company = get_company(actor, values["company_id"])
    else:
        company = create_company(actor, {
            "legal_name": lead.company_name or lead.name or lead.email or lead.phone,
            "tax_number": lead.tax_number or None, "status": "prospect",
            "emails": [lead.email] if lead.email and not lead.company_name else [],
            "phones": [lead.phone] if lead.phone and not lead.company_name else []})
    if values["contact_id"]:
        contact = get_contact(actor, values["contact_id"])
        if all(link.company_id != company.id for link in contact.links):
            contact.links.append(ContactLink(company_id=company.id))
    else:
        contact = create_contact(actor, {
            "name": lead.name or lead.email or lead.company_name or lead.phone,
            "emails": [lead.email] if lead.email else [],
            "phones": [lead.phone] if lead.phone else [],
            "companies": [{"company_id": company.id}]})
    deal = create_deal(actor, {
        "title": values["deal_title"].strip() or (lead.message[:80].strip() or company.name),
        "company_id": company.id, "contact_id": contact.id,
        "pipeline_id": values["pipeline_id"], "amount": values["amount"],
        "currency": values["currency"]})
    lead.status, lead.company_id, lead.contact_id, lead.deal_id = ("converted", company.id,
                                                                   contact.id, deal.id)
    lead.contacted_at = lead.contacted_at or utcnow()
    lead.responsible_id = lead.responsible_id or actor.id
    db.session.flush()
    audit.record(actor, "lead.convert", "lead", lead.id,
                 after={"company_id": company.id, "contact_id": contact.id, "deal_id": deal.id})
    return lead


def escalate_lead(lead: Lead, now: datetime) -> list[int]:
    """A lead nobody contacted in time: the responsible's superior (the head of sales) is
    told; with nobody responsible, the lead post's head."""
    chart = charts.load()
    told = [u.id for u in chart.superiors_of(lead.responsible_id)][:1] if lead.responsible_id \
        else []
    if not told:
        post_id = settings()["lead_post_id"]
        post = chart.posts.get(post_id)
        above = chart.superior_post(post) if post else None
        told = [u.id for u in chart.holding(above).users][:1] if above else []
    lead.escalated_at = now
    for uid in told:
        notifications.notify(uid, "lead_overdue", _l("A lead was not contacted in time"),
                             lead.name or lead.company_name or lead.email, lead_path(lead.id))
    audit.record(None, "lead.escalate", "lead", lead.id, after={"told": told})
    return told


def find_leads(actor: User, status: str | None = None, overdue: bool = False,
               now: datetime | None = None):
    """A select() of the leads one may see, newest first; overdue: new ones past their
    contact deadline."""
    stmt = select(Lead).options(joinedload(Lead.responsible)).where(lead_clause(actor))
    if status:
        stmt = stmt.where(Lead.status == status)
    if overdue:
        stmt = stmt.where(Lead.status == "new", Lead.contact_due_at < (now or utcnow()))
    return stmt.order_by(Lead.created_at.desc(), Lead.id.desc())


def overdue_leads(actor: User, now: datetime | None = None):
    now = now or utcnow()
    return (select(Lead).where(lead_clause(actor), Lead.status == "new",
                               Lead.contact_due_at < now).order_by(Lead.contact_due_at))


# --- significant dates --------------------------------------------------------------------

def add_date(actor: User, data: Mapping) -> SignificantDate:
    values = load(DateIn(), data)
    if bool(values["company_id"]) == bool(values["contact_id"]):
        raise _fail("company_id", _("A date belongs to a company or to a contact."))
    if values["company_id"]:
        get_company(actor, values["company_id"])
    else:
        get_contact(actor, values["contact_id"])
    row = SignificantDate(**values)
    db.session.add(row)
    db.session.flush()
    return row


def next_occurrence(row: SignificantDate, today) -> object:
    if not row.yearly:
        return row.on
    for year in (today.year, today.year + 1):
        try:
            candidate = row.on.replace(year=year)
        except ValueError:  # 29 February in a common year
            candidate = row.on.replace(year=year, day=28)
        if candidate >= today:
            return candidate
    return row.on


DATE_KIND_NAMES = {"birthday": _l("Birthday"), "contract_end": _l("Contract ends"),
                   "founding": _l("Founding day"), "other": _l("Significant date")}
MAX_REMIND_DAYS = 60  # DateIn's limit: how far ahead a reminder may look


def _month_days(today: date, days: int) -> list[int]:
    """month * 100 + day of each day from today to `days` ahead (29 February with 28th)."""
    out = {(d.month * 100 + d.day) for d in (today + timedelta(days=i) for i in range(days + 1))}
    if 228 in out:
        out.add(229)
    return sorted(out)


def dates_to_remind(today: date, after_id: int = 0, limit: int = 200) -> list[SignificantDate]:
    """Dates whose reminder may be due today, by id after `after_id`, locked for this worker:
    one-off dates up to MAX_REMIND_DAYS ahead, yearly ones whose day falls in that window,
    not reminded of an occurrence from today on. The exact rule is in remind_due."""
    month_day = func.extract("month", SignificantDate.on) * 100 + func.extract(
        "day", SignificantDate.on)
    return list(db.session.scalars(
        select(SignificantDate).where(
            SignificantDate.id > after_id,
            or_(SignificantDate.reminded_for.is_(None), SignificantDate.reminded_for < today),
            or_(SignificantDate.yearly.is_(False)
                & (SignificantDate.on >= today)
                & (SignificantDate.on <= today + timedelta(days=MAX_REMIND_DAYS)),
                SignificantDate.yearly.is_(True)
                & month_day.in_(_month_days(today, MAX_REMIND_DAYS))))
        .order_by(SignificantDate.id).limit(limit).with_for_update(skip_locked=True)))


def remind_due(rows: list[SignificantDate], today: date) -> int:
    """Tell the responsible managers of the dates whose reminder is due: `remind_days`
    before the occurrence (services.next_occurrence), once per occurrence. A company's
    date goes to its responsible manager; a contact's to the managers of the companies they
    are at, or to whoever keeps the contact when they are at none. A few queries for the
    whole batch, then a notification each."""
    due = []
    for row in rows:
        when = next_occurrence(row, today)
        if when >= today and (when - today).days <= row.remind_days and row.reminded_for != when:
            due.append((row, when))
    if not due:
        return 0
    company_ids = {r.company_id for r, _w in due if r.company_id}
    contact_ids = {r.contact_id for r, _w in due if r.contact_id}
    companies = {cid: (name, responsible) for cid, name, responsible in db.session.execute(
        select(Company.id, func.coalesce(func.nullif(Company.short_name, ""), Company.legal_name),
               Company.responsible_id)
        .where(Company.id.in_(company_ids), Company.archived_at.is_(None)))} if company_ids else {}
    contacts = {cid: (name, keeper) for cid, name, keeper in db.session.execute(
        select(Contact.id, Contact.name, Contact.created_by_id)
        .where(Contact.id.in_(contact_ids), Contact.archived_at.is_(None)))} if contact_ids else {}
    managers: dict[int, set[int]] = {}
    if contacts:
        for contact_id, responsible in db.session.execute(
                select(ContactLink.contact_id, Company.responsible_id)
                .join(Company, Company.id == ContactLink.company_id)
                .where(ContactLink.contact_id.in_(list(contacts)), Company.archived_at.is_(None),
                       Company.responsible_id.is_not(None))):
            managers.setdefault(contact_id, set()).add(responsible)
    wanted = {u for _n, u in companies.values()} | {u for _n, u in contacts.values()} | {
        u for ids in managers.values() for u in ids}
    active = set(db.session.scalars(select(User.id).where(User.id.in_(
        [u for u in wanted if u]), User.active.is_(True)))) if wanted else set()
    told = 0
    for row, when in due:
        row.reminded_for = when
        if row.company_id:
            name, responsible = companies.get(row.company_id, (None, None))
            people, url = {responsible}, company_path(row.company_id)
        else:
            name, keeper = contacts.get(row.contact_id, (None, None))
            people = managers.get(row.contact_id) or {keeper}
            url = links.path_for("clients.contact", f"/clients/contacts/{row.contact_id}",
                                 contact_id=row.contact_id)
        if name is None:  # archived since
            continue
        title = _l("%(kind)s: %(name)s, %(date)s", kind=DATE_KIND_NAMES[row.kind], name=name,
                   date=LazyString(format_date, when, "d MMMM"))
        body = _l("In %(days)s days. %(title)s", days=(when - today).days, title=row.title) \
            if when > today else _l("Today. %(title)s", title=row.title)
        for uid in sorted(u for u in people if u in active):
            notifications.notify(uid, "client_date", title, body, url)
            told += 1
        audit.record(None, "date.remind", "client_date", row.id,
                     after={"on": when.isoformat(), "told": sorted(u for u in people if u in active)})
    return told


# --- greetings ----------------------------------------------------------------------------

GREETING_FIELDS = ("name", "company", "sender")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def fill_greeting(text: str, values: Mapping[str, str]) -> str:
    """{name}, {company} and {sender} filled in; nothing else in the text is read (a
    template is never a format string)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _check_placeholders(values: Mapping) -> None:
    for field in ("subject", "body"):
        unknown = sorted({m for m in _PLACEHOLDER.findall(values[field])
                          if m not in GREETING_FIELDS})
        if unknown:
            raise _fail(field, _("Unknown placeholder %(names)s: use {name}, {company} and "
                                 "{sender}.", names=", ".join("{" + u + "}" for u in unknown)))


def greeting_templates() -> list[GreetingTemplate]:
    return list(db.session.scalars(select(GreetingTemplate).order_by(GreetingTemplate.name,
                                                                     GreetingTemplate.id)))


def save_greeting_template(actor: User, data: Mapping,
                           template_id: int | None = None) -> GreetingTemplate:
    """An administrator writes a greeting: subject and body with {name}, {company} and
    {sender}."""
    require_admin(actor)
    values = load(GreetingIn(), data)
    _check_placeholders(values)
    row = GreetingTemplate() if template_id is None else db.session.get(GreetingTemplate,
                                                                        template_id)
    if row is None:
        raise NotFound(_("No such greeting."))
    row.name, row.subject, row.body = (values["name"].strip(), values["subject"].strip(),
                                       values["body"])
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "greeting.save", "client_greeting", row.id,
                 after={"name": row.name, "subject": row.subject})
    return row


def send_greeting(actor: User, contact_id: int, data: Mapping):
    """A greeting e-mail from a template to a contact who agreed to be contacted, at their
    first e-mail, queued for the mail job; it joins the company's history as an e-mail."""
    values = load(GreetingSendIn(), data)
    contact = get_contact(actor, contact_id)
    template = db.session.get(GreetingTemplate, values["template_id"])
    if template is None:
        raise _fail("template_id", _("Choose a greeting from the list."))
    if not contact.consent:
        raise _fail("consent", _("This person has not agreed to be contacted."))
    if not contact.emails:
        raise _fail("emails", _("This person has no e-mail address."))
    at = [link.company_id for link in contact.links]
    visible = set(db.session.scalars(select(Company.id).where(
        Company.id.in_(at), company_clause(actor), Company.archived_at.is_(None)))) if at else set()
    if values["company_id"] is not None:
        if values["company_id"] not in visible:
            raise _fail("company_id", _("This person is not at this company."))
        company_id = values["company_id"]
    else:
        company_id = next((cid for cid in sorted(visible)), None)
    company = db.session.get(Company, company_id) if company_id else None
    filled = {"name": contact.name, "company": company.name if company else "",
              "sender": actor.name}
    subject = fill_greeting(template.subject, filled)
    body = fill_greeting(template.body, filled)
    row = mail.queue_email(contact.emails[0], subject, body)
    if company is not None:
        log_interaction(actor, {"company_id": company.id, "contact_id": contact.id,
                                "kind": "email", "subject": subject[:300], "body": body})
    db.session.flush()
    audit.record(actor, "contact.greeting", "contact", contact.id,
                 after={"template_id": template.id, "to": contact.emails[0],
                        "company_id": company.id if company else None})
    return row


# --- many at once (imports) ---------------------------------------------------------------
# An import checks thousands of rows against the rules above without a query per row: it
# takes the actor's Scope once, holds the companies in memory, and writes through these.

class Scope:
    """What an actor may see and change, computed once for many rows (imports, exports):
    the same rules as company_clause, can_edit and contact_clause."""

    def __init__(self, actor: User):
        self.actor_id = actor.id
        self.all = sees_all(actor)
        self.directed = directed_ids(actor)
        self.shared = set() if self.all else set(db.session.scalars(
            select(Share.company_id).where(Share.user_id == actor.id)))

    def sees_company(self, company_id: int, responsible_id: int | None) -> bool:
        return self.all or responsible_id in self.directed or company_id in self.shared

    def edits_company(self, responsible_id: int | None) -> bool:
        return self.all or responsible_id in self.directed

    def sees_contact(self, created_by_id: int | None, company_ids: Iterable[int],
                     visible_company_ids: set[int]) -> bool:
        return (self.all or created_by_id == self.actor_id
                or any(cid in visible_company_ids for cid in company_ids))

    def responsible_error(self, user: User | None) -> str | None:
        return responsible_error(user, self.directed, self.all)


def holding_error(parent_of: Mapping[object, object], company, parent) -> str | None:
    """_check_parent's rule over a map company -> parent held in memory (keys may be ids or
    the rows of a file not saved yet): never inside itself or a subsidiary, at most
    MAX_DEPTH deep."""
    seen, current = set(), parent
    while current is not None:
        if current == company:
            return _("A company cannot be inside itself or its own subsidiary.")
        if current in seen or len(seen) > MAX_DEPTH:
            return _("The holding is too deep.")
        seen.add(current)
        current = parent_of.get(current)
    return None


def category_ids(names: Iterable[str]) -> dict[str, int]:
    """Category ids by lower-case name; the missing categories are created."""
    wanted = {}
    for name in _clean_list(names):
        wanted.setdefault(name.lower(), name)
    found: dict[str, int] = {}
    keys = sorted(wanted)
    for i in range(0, len(keys), 500):
        for cid, name in db.session.execute(select(Category.id, Category.name).where(
                func.lower(Category.name).in_(keys[i:i + 500]))):
            found.setdefault(name.lower(), cid)
    missing = [wanted[k] for k in keys if k not in found]
    if missing:
        table = Category.__table__
        ids = db.session.scalars(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                                 [{"name": n} for n in missing]).all()
        found.update({n.lower(): cid for n, cid in zip(missing, ids, strict=True)})
    return found


def link_categories(pairs: Iterable[tuple[int, int]]) -> None:
    """(company id, category id) links, in one statement per thousand."""
    rows = [{"company_id": c, "category_id": k} for c, k in dict.fromkeys(pairs)]
    if rows:
        db.session.execute(CompanyCategory.__table__.insert(), rows)


def insert_companies(rows: list[dict]) -> list[int]:
    """New companies, many per statement; their ids in the order of `rows`. Each row holds
    every column of company_fields, responsible_id and parent_id, checked by the caller with
    Scope and holding_error; the search text and times are set here."""
    if not rows:
        return []
    now = utcnow()
    table = Company.__table__
    full = [{**row, "search_text": company_search_text(row["legal_name"], row["short_name"],
                                                       row["tax_number"], row["phones"],
                                                       row["emails"]),
             "created_at": now, "updated_at": now, "next_step": row.get("next_step", ""),
             "next_step_at": row.get("next_step_at")} for row in rows]
    return list(db.session.scalars(
        table.insert().returning(table.c.id, sort_by_parameter_order=True), full))


def update_companies(rows: list[dict]) -> None:
    """Changed companies: each row is {"id", column: value, ...} with the company's whole
    state for the search text (legal_name, short_name, tax_number, phones, emails) and the
    columns that change; one executemany per set of changed columns."""
    now = utcnow()
    table = Company.__table__
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        values = {**row, "search_text": company_search_text(row["legal_name"], row["short_name"],
                                                            row["tax_number"], row["phones"],
                                                            row["emails"]), "updated_at": now}
        values["_id"] = values.pop("id")
        groups.setdefault(tuple(sorted(values)), []).append(values)
    for keys, group in groups.items():
        stmt = update(table).where(table.c.id == bindparam("_id")).values(
            {k: bindparam(k) for k in keys if k != "_id"})
        db.session.execute(stmt, group, execution_options={"synchronize_session": False})


def insert_contacts(actor: User, rows: list[dict]) -> list[int]:
    """New contacts (every column of contact_fields), kept by the actor; ids in order."""
    if not rows:
        return []
    now = utcnow()
    table = Contact.__table__
    full = [{**row, "search_text": contact_search_text(row["name"], row["phones"], row["emails"]),
             "created_by_id": actor.id, "created_at": now} for row in rows]
    return list(db.session.scalars(
        table.insert().returning(table.c.id, sort_by_parameter_order=True), full))


def update_contacts(rows: list[dict]) -> None:
    """Changed contacts: {"id", column: value, ...} with name, phones and emails always."""
    table = Contact.__table__
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        values = {**row, "search_text": contact_search_text(row["name"], row["phones"],
                                                            row["emails"])}
        values["_id"] = values.pop("id")
        groups.setdefault(tuple(sorted(values)), []).append(values)
    for keys, group in groups.items():
        stmt = update(table).where(table.c.id == bindparam("_id")).values(
            {k: bindparam(k) for k in keys if k != "_id"})
        db.session.execute(stmt, group, execution_options={"synchronize_session": False})


def save_contact_links(new: Iterable[tuple[int, int, str]],
                       positions: Iterable[tuple[int, int, str]] = ()) -> None:
    """Contacts joining companies (contact, company, position), and new positions at
    companies they are at already; the caller checked that the companies are visible."""
    table = ContactLink.__table__
    rows = [{"contact_id": c, "company_id": k, "position": p.strip()} for c, k, p in new]
    if rows:
        db.session.execute(table.insert(), rows)
    changed = [{"_c": c, "_k": k, "position": p.strip()} for c, k, p in positions]
    if changed:
        db.session.execute(update(table).where(table.c.contact_id == bindparam("_c"),
                                               table.c.company_id == bindparam("_k"))
                           .values(position=bindparam("position")), changed,
                           execution_options={"synchronize_session": False})
