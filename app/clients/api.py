"""JSON API of the client base under /api/v1/clients: companies and holdings, contacts, the
history of the relationship, leads, deals, pipelines and their boards, reasons, hand-over.

Every call acts as the bearer of a personal token, or as the signed-in person of a browser
session (then changing calls carry the page's CSRF token in `X-CSRFToken`). The services
decide everything; these endpoints only shape what goes in and what comes out. A company,
contact, deal or lead the caller may not see is 404, as if it did not exist.
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import get_currency_precision
from flask import g
from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.clients import services
from app.clients.models import (
    COMPANY_STATUSES,
    DEAL_STATUSES,
    INTERACTION_KINDS,
    LEAD_STATUSES,
    REASON_KINDS,
    Company,
    Deal,
    Interaction,
    Lead,
    Pipeline,
    Share,
    StageChange,
)
from app.clients.schemas import (
    CompanyIn,
    ContactIn,
    ConvertIn,
    DealIn,
    HandOverIn,
    InteractionIn,
    LeadIn,
    MoveIn,
    PipelineIn,
    ReasonIn,
    ShareIn,
    StageIn,
)
from app.core.api_base import page_envelope, paginated, session_api_blueprint
from app.core.clock import utcnow
from app.core.errors import NotFound
from app.core.forms import MAX_ID
from app.core.models import User
from app.core.money import from_minor
from app.extensions import db

ALL: list = []  # flask-smorest blueprints, registered by app.clients.register

def _blueprint(name: str, url_prefix: str, description: str):
    return session_api_blueprint(name, __name__, f"/clients{url_prefix}", description)


def _me() -> User:
    return g.api_user


companies_api = _blueprint("clients_companies_api", "/companies",
                           "Client base: companies (clients, suppliers, partners) and holdings")
contacts_api = _blueprint("clients_contacts_api", "/contacts", "Client base: contacts (people)")
interactions_api = _blueprint("clients_interactions_api", "/interactions",
                              "Client base: calls, meetings, e-mails, notes, complaints, "
                              "refusals and the next step")
leads_api = _blueprint("clients_leads_api", "/leads",
                       "Client base: leads, their contact deadline and conversion")
deals_api = _blueprint("clients_deals_api", "/deals", "Client base: deals and their stages")
pipelines_api = _blueprint("clients_pipelines_api", "/pipelines",
                           "Client base: pipelines, their stages and boards")
reasons_api = _blueprint("clients_reasons_api", "/reasons",
                         "Client base: reasons for refusals, lost deals and complaints")
handover_api = _blueprint("clients_handover_api", "/hand-over",
                          "Client base: hand one person's clients to another")


# --- what comes out -----------------------------------------------------------------------

class ClientPerson(Schema):
    id = fields.Integer()
    name = fields.String()


class ClientRef(Schema):
    id = fields.Integer()
    name = fields.String()


class ClientAddress(Schema):
    kind = fields.String()
    text = fields.String()


class ClientCompany(Schema):
    id = fields.Integer()
    legal_name = fields.String(metadata={"description": "plain text; escape it when showing it"})
    short_name = fields.String()
    name = fields.String(metadata={"description": "the short name, or the legal one"})
    tax_number = fields.String(allow_none=True)
    is_client = fields.Boolean()
    is_supplier = fields.Boolean()
    is_partner = fields.Boolean()
    tags = fields.List(fields.String())
    industry = fields.String()
    status = fields.String(metadata={"description": ", ".join(COMPANY_STATUSES)})
    responsible = fields.Nested(ClientPerson, allow_none=True)
    parent_id = fields.Integer(allow_none=True, metadata={"description": "the holding above"})
    next_step = fields.String()
    next_step_at = fields.DateTime(allow_none=True)
    next_step_overdue = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    archived_at = fields.DateTime(allow_none=True)


class ClientCompanyContact(Schema):
    id = fields.Integer()
    name = fields.String()
    position = fields.String()
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())


class ClientCompanyDetail(ClientCompany):
    categories = fields.List(fields.String())
    addresses = fields.List(fields.Nested(ClientAddress))
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    website = fields.String()
    notes = fields.String()
    parent = fields.Nested(ClientRef, allow_none=True,
                           metadata={"description": "when the caller may see it"})
    subsidiaries = fields.List(fields.Nested(ClientRef),
                               metadata={"description": "the direct ones the caller may see"})
    holding_ids = fields.List(fields.Integer(),
                              metadata={"description": "the company and all below it"})
    contacts = fields.List(fields.Nested(ClientCompanyContact))
    shared_with = fields.List(fields.Nested(ClientPerson))
    editable = fields.Boolean(metadata={"description": "the caller may change it"})


class ClientShared(Schema):
    user_ids = fields.List(fields.Integer())


class ClientRollupDeals(Schema):
    status = fields.String()
    currency = fields.String()
    count = fields.Integer()
    amount_minor = fields.Integer()
    amount = fields.Decimal(as_string=True)


class ClientRollup(Schema):
    company_ids = fields.List(fields.Integer(), metadata={"description": "the whole holding"})
    deals = fields.List(fields.Nested(ClientRollupDeals))
    figures = fields.Dict(metadata={"description": "what other modules add (finance: invoices, "
                                                   "payments, debts), by module"})


class ClientReason(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": ", ".join(REASON_KINDS)})
    name = fields.String()


class ClientInteraction(Schema):
    id = fields.Integer()
    company_id = fields.Integer()
    contact = fields.Nested(ClientRef, allow_none=True)
    deal_id = fields.Integer(allow_none=True)
    kind = fields.String(metadata={"description": ", ".join(INTERACTION_KINDS)})
    subject = fields.String(metadata={"description": "plain text; escape it when showing it"})
    body = fields.String(metadata={"description": "plain text; escape it when showing it"})
    outcome = fields.String(allow_none=True, metadata={"description": "advance, postpone, refuse"})
    reason = fields.Nested(ClientReason, allow_none=True)
    occurred_at = fields.DateTime()
    author = fields.Nested(ClientPerson, allow_none=True)
    message_id = fields.Integer(allow_none=True, metadata={"description": "a mail copied to it"})


class ClientHistoryItem(Schema):
    at = fields.DateTime()
    kind = fields.String(metadata={"description": "an interaction's kind, or what another "
                                                  "module adds (mail, task, invoice...)"})
    title = fields.String()
    url = fields.String(allow_none=True)
    interaction = fields.Nested(ClientInteraction, allow_none=True)


class ClientHistory(Schema):
    items = fields.List(fields.Nested(ClientHistoryItem))


class ClientMessenger(Schema):
    kind = fields.String()
    handle = fields.String()


class ClientContactCompany(Schema):
    company_id = fields.Integer()
    name = fields.String()
    position = fields.String()


class ClientContact(Schema):
    id = fields.Integer()
    name = fields.String(metadata={"description": "plain text; escape it when showing it"})
    phones = fields.List(fields.String())
    emails = fields.List(fields.String())
    messengers = fields.List(fields.Nested(ClientMessenger))
    birthday = fields.Date(allow_none=True)
    consent = fields.Boolean(metadata={"description": "agreed to be contacted"})
    notes = fields.String()
    companies = fields.List(fields.Nested(ClientContactCompany),
                            metadata={"description": "the ones the caller may see"})
    created_at = fields.DateTime()


class ClientLead(Schema):
    id = fields.Integer()
    source = fields.String(metadata={"description": "form, call, referral or web"})
    form_id = fields.Integer(allow_none=True, metadata={"description": "the public web form"})
    name = fields.String(metadata={"description": "plain text as sent; escape it when showing it"})
    company_name = fields.String()
    email = fields.String()
    phone = fields.String()
    tax_number = fields.String()
    message = fields.String(metadata={"description": "plain text as sent; escape it when "
                                                     "showing it"})
    status = fields.String(metadata={"description": ", ".join(LEAD_STATUSES)})
    responsible = fields.Nested(ClientPerson, allow_none=True)
    created_at = fields.DateTime()
    contact_due_at = fields.DateTime()
    contacted_at = fields.DateTime(allow_none=True)
    escalated_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean(metadata={"description": "new and past its contact deadline"})
    reject_reason = fields.String()
    company_id = fields.Integer(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    deal_id = fields.Integer(allow_none=True)


class ClientDuplicates(Schema):
    items = fields.List(fields.Nested(ClientCompany),
                        metadata={"description": "matches the caller may see"})
    hidden = fields.Integer(metadata={"description": "matches outside the caller's reach: "
                                                     "someone else works with this client"})


class ClientStage(Schema):
    id = fields.Integer()
    position = fields.Integer()
    name = fields.String()
    kind = fields.String(metadata={"description": "open, won or lost"})
    probability = fields.Integer()


class ClientPipeline(Schema):
    id = fields.Integer()
    name = fields.String()
    position = fields.Integer()
    archived_at = fields.DateTime(allow_none=True)
    stages = fields.List(fields.Nested(ClientStage), metadata={"description": "in order"})


class ClientDeal(Schema):
    id = fields.Integer()
    title = fields.String(metadata={"description": "plain text; escape it when showing it"})
    company = fields.Nested(ClientRef)
    contact_id = fields.Integer(allow_none=True)
    pipeline_id = fields.Integer()
    stage = fields.Nested(ClientStage)
    amount = fields.Decimal(as_string=True, metadata={"description": "in major units"})
    amount_minor = fields.Integer()
    currency = fields.String()
    probability = fields.Integer()
    expected_close = fields.Date(allow_none=True)
    responsible = fields.Nested(ClientPerson, allow_none=True)
    status = fields.String(metadata={"description": ", ".join(DEAL_STATUSES)})
    lost_reason_id = fields.Integer(allow_none=True)
    next_step = fields.String()
    next_step_at = fields.DateTime(allow_none=True)
    next_step_overdue = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)


class ClientStageChange(Schema):
    stage = fields.Nested(ClientStage)
    entered_at = fields.DateTime()
    by = fields.Nested(ClientPerson, allow_none=True)


class ClientDealDetail(ClientDeal):
    contact = fields.Nested(ClientRef, allow_none=True)
    pipeline = fields.Nested(ClientRef)
    lost_reason = fields.Nested(ClientReason, allow_none=True)
    lost_note = fields.String()
    history = fields.List(fields.Nested(ClientStageChange),
                          metadata={"description": "each stage entered, oldest first"})


class ClientBoardColumn(Schema):
    stage = fields.Nested(ClientStage)
    deals = fields.List(fields.Nested(ClientDeal))


class ClientBoard(Schema):
    pipeline = fields.Nested(ClientPipeline)
    columns = fields.List(fields.Nested(ClientBoardColumn))


class ClientHandedOver(Schema):
    companies = fields.Integer()
    deals = fields.Integer()
    leads = fields.Integer()


# --- what goes in (beyond app.clients.schemas) --------------------------------------------

def _query_id(**kw):
    """An id in a query string (text, unlike the strict ids of JSON bodies)."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kw)


def _next_step_filter():
    return fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(("none", "overdue")),
                         metadata={"description": "none: without a next step; overdue: past it"})


class ClientPageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_ID))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


class CompanyListArgs(ClientPageArgs):
    q = fields.String(load_default="", validate=validate.Length(max=200),
                      metadata={"description": "name, tax number, phone or e-mail; typos and "
                                               "partial input are forgiven"})
    status = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(COMPANY_STATUSES))
    kind = fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(("client", "supplier", "partner")))
    responsible_id = _query_id(load_default=None, allow_none=True)
    tag = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60))
    category = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=80))
    parent_id = _query_id(load_default=None, allow_none=True,
                          metadata={"description": "the direct subsidiaries of a company"})
    next_step = _next_step_filter()


class HistoryArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=200))


class ContactListArgs(ClientPageArgs):
    q = fields.String(load_default="", validate=validate.Length(max=200),
                      metadata={"description": "name, phone or e-mail, in part"})
    company_id = _query_id(load_default=None, allow_none=True)


class InteractionListArgs(ClientPageArgs):
    company_id = _query_id(load_default=None, allow_none=True)
    deal_id = _query_id(load_default=None, allow_none=True)
    kind = fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(INTERACTION_KINDS))


class LeadListArgs(ClientPageArgs):
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LEAD_STATUSES))
    overdue = fields.Boolean(load_default=False,
                             metadata={"description": "new leads past their contact deadline"})


class DealListArgs(ClientPageArgs):
    q = fields.String(load_default="", validate=validate.Length(max=200),
                      metadata={"description": "a part of the title"})
    pipeline_id = _query_id(load_default=None, allow_none=True)
    stage_id = _query_id(load_default=None, allow_none=True)
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DEAL_STATUSES))
    company_id = _query_id(load_default=None, allow_none=True,
                           metadata={"description": "its deals and those of its holding"})
    responsible_id = _query_id(load_default=None, allow_none=True)
    next_step = _next_step_filter()


class BoardArgs(Schema):
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=500),
                           metadata={"description": "deals per stage"})


class ReasonArgs(Schema):
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(REASON_KINDS))


class CompanyPatch(CompanyIn):
    """Only the fields given change."""


class ContactPatch(ContactIn):
    """Only the fields given change; `companies` replaces the list."""


def _moved_only(_value) -> None:
    raise ValidationError(_("A deal changes stage through POST /deals/<id>/move."))


class DealPatch(DealIn):
    """Only the fields given change; the stage changes by a move."""

    pipeline_id = fields.Integer(validate=_moved_only, metadata={"description": "not here"})
    stage_id = fields.Integer(validate=_moved_only, metadata={"description": "not here"})


class DealMoveIn(MoveIn):
    """To a stage of the deal's own pipeline; to its lost stage only with a reason."""


class LeadRejectIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class PipelineStageIn(StageIn):
    """A stage; give the `id` of an existing one to keep it (and its deals)."""


class PipelineBody(PipelineIn):
    stages = fields.List(fields.Nested(PipelineStageIn), required=True,
                         validate=validate.Length(min=1, max=30))


ClientCompanyPage = page_envelope(ClientCompany)
ClientContactPage = page_envelope(ClientContact)
ClientInteractionPage = page_envelope(ClientInteraction)
ClientLeadPage = page_envelope(ClientLead)
ClientDealPage = page_envelope(ClientDeal)


# --- shaping ------------------------------------------------------------------------------

def _overdue(when, now) -> bool:
    return when is not None and when < now


def _company(company: Company, now) -> dict:
    return {"id": company.id, "legal_name": company.legal_name, "short_name": company.short_name,
            "name": company.name, "tax_number": company.tax_number,
            "is_client": company.is_client, "is_supplier": company.is_supplier,
            "is_partner": company.is_partner, "tags": company.tag_list,
            "industry": company.industry, "status": company.status,
            "responsible": company.responsible, "parent_id": company.parent_id,
            "next_step": company.next_step, "next_step_at": company.next_step_at,
            "next_step_overdue": company.status != "former"
            and _overdue(company.next_step_at, now),
            "created_at": company.created_at, "updated_at": company.updated_at,
            "archived_at": company.archived_at}


def _companies(rows) -> list[dict]:
    now = utcnow()
    return [_company(c, now) for c in rows]


def _company_detail(company_id: int) -> dict:
    """A company the caller may see, with its holding, contacts and shares (404 otherwise)."""
    me = _me()
    company = services.get_company(me, company_id)
    parent = services.link_company(me, company.parent_id) if company.parent_id else None
    children = db.session.scalars(services.find_companies(me, parent_id=company.id)
                                  .limit(200)).all()
    shared = db.session.scalars(select(User).join(Share, Share.user_id == User.id)
                                .where(Share.company_id == company.id).order_by(User.name)).all()
    return {**_company(company, utcnow()),
            "categories": [c.name for c in company.categories],
            "addresses": list(company.addresses or []), "phones": list(company.phones or []),
            "emails": list(company.emails or []), "website": company.website,
            "notes": company.notes,
            "parent": {"id": company.parent_id, "name": parent[0]} if parent else None,
            "subsidiaries": [{"id": c.id, "name": c.name} for c in children],
            "holding_ids": services.holding_ids(company.id),
            "contacts": [{"id": link.contact.id, "name": link.contact.name,
                          "position": link.position, "phones": link.contact.phones,
                          "emails": link.contact.emails}
                         for link in services.contacts_of(me, company.id)],
            "shared_with": shared, "editable": services.can_edit(me, company)}


def _visible_company_ids(ids: set[int]) -> set[int]:
    """Of these companies, the ones the caller may see: one query."""
    if not ids:
        return set()
    return set(db.session.scalars(select(Company.id).where(
        Company.id.in_(ids), services.company_clause(_me()))))


def _contacts(rows) -> list[dict]:
    visible = _visible_company_ids({link.company_id for c in rows for link in c.links})
    return [{"id": c.id, "name": c.name, "phones": c.phones, "emails": c.emails,
             "messengers": c.messengers, "birthday": c.birthday, "consent": c.consent,
             "notes": c.notes, "created_at": c.created_at,
             "companies": [{"company_id": link.company_id, "name": link.company.name,
                            "position": link.position}
                           for link in c.links if link.company_id in visible]}
            for c in rows]


def _contact_detail(contact_id: int) -> dict:
    return _contacts([services.get_contact(_me(), contact_id)])[0]


def _interaction(row: Interaction) -> dict:
    return {"id": row.id, "company_id": row.company_id,
            "contact": {"id": row.contact.id, "name": row.contact.name} if row.contact else None,
            "deal_id": row.deal_id, "kind": row.kind, "subject": row.subject, "body": row.body,
            "outcome": row.outcome, "reason": row.reason, "occurred_at": row.occurred_at,
            "author": row.author, "message_id": row.message_id}


def _interaction_out(row_id: int) -> dict:
    row = db.session.scalar(select(Interaction).options(
        joinedload(Interaction.author), joinedload(Interaction.contact),
        joinedload(Interaction.reason)).where(Interaction.id == row_id))
    return _interaction(row)


def _lead(lead: Lead, now) -> dict:
    return {"id": lead.id, "source": lead.source, "form_id": lead.form_id, "name": lead.name,
            "company_name": lead.company_name, "email": lead.email, "phone": lead.phone,
            "tax_number": lead.tax_number, "message": lead.message, "status": lead.status,
            "responsible": lead.responsible, "created_at": lead.created_at,
            "contact_due_at": lead.contact_due_at, "contacted_at": lead.contacted_at,
            "escalated_at": lead.escalated_at,
            "overdue": lead.status == "new" and _overdue(lead.contact_due_at, now),
            "reject_reason": lead.reject_reason, "company_id": lead.company_id,
            "contact_id": lead.contact_id, "deal_id": lead.deal_id}


def _lead_detail(lead_id: int) -> dict:
    return _lead(services.get_lead(_me(), lead_id), utcnow())


def _amount(minor: int, currency: str):
    """Major units with the currency's own number of decimals (1100.50 RUB, 500 JPY)."""
    return from_minor(minor, currency).quantize(Decimal(1).scaleb(-get_currency_precision(currency)))


def _deal(deal: Deal, now) -> dict:
    return {"id": deal.id, "title": deal.title,
            "company": {"id": deal.company.id, "name": deal.company.name},
            "contact_id": deal.contact_id, "pipeline_id": deal.pipeline_id, "stage": deal.stage,
            "amount": _amount(deal.amount_minor, deal.currency),
            "amount_minor": deal.amount_minor, "currency": deal.currency,
            "probability": deal.probability, "expected_close": deal.expected_close,
            "responsible": deal.responsible, "status": deal.status,
            "lost_reason_id": deal.lost_reason_id, "next_step": deal.next_step,
            "next_step_at": deal.next_step_at,
            "next_step_overdue": deal.status == "open" and _overdue(deal.next_step_at, now),
            "created_at": deal.created_at, "updated_at": deal.updated_at,
            "closed_at": deal.closed_at}


def _deals(rows) -> list[dict]:
    now = utcnow()
    return [_deal(d, now) for d in rows]


def _deal_detail(deal_id: int) -> dict:
    """A deal the caller may see, with its stage history (404 otherwise)."""
    me = _me()
    deal = services.get_deal(me, deal_id)
    changes = db.session.scalars(select(StageChange).options(joinedload(StageChange.stage))
                                 .where(StageChange.deal_id == deal.id)
                                 .order_by(StageChange.id)).all()
    by_ids = {c.by_id for c in changes if c.by_id}
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(by_ids)))} \
        if by_ids else {}
    contact = deal.contact
    return {**_deal(deal, utcnow()),
            "contact": {"id": contact.id, "name": contact.name} if contact else None,
            "pipeline": {"id": deal.pipeline.id, "name": deal.pipeline.name},
            "lost_reason": deal.lost_reason, "lost_note": deal.lost_note,
            "history": [{"stage": c.stage, "entered_at": c.entered_at,
                         "by": people.get(c.by_id)} for c in changes]}


def _pipeline(pipeline: Pipeline) -> dict:
    return {"id": pipeline.id, "name": pipeline.name, "position": pipeline.position,
            "archived_at": pipeline.archived_at,
            "stages": _live_stages(pipeline)}


def _live_stages(pipeline: Pipeline) -> list:
    return sorted((s for s in pipeline.stages if s.archived_at is None), key=lambda s: s.position)


def _pipeline_of(pipeline_id: int) -> Pipeline:
    found = next((p for p in services.pipelines(include_archived=True) if p.id == pipeline_id),
                 None)
    if found is None:
        raise NotFound(_("No such pipeline."))
    return found


def _page(stmt, args: dict, shape) -> dict:
    page = paginated(stmt, args["page"], args["per_page"])
    page["items"] = shape(page["items"])
    return page


# --- companies ----------------------------------------------------------------------------

@companies_api.route("")
class Companies(MethodView):
    @companies_api.arguments(CompanyListArgs, location="query")
    @companies_api.response(200, ClientCompanyPage)
    def get(self, args):
        """The companies the caller may see (not archived), searched and filtered.

        `q` finds a name, tax number, phone or e-mail, in part and with typos (best matches
        first); without it companies come by legal name. `next_step`: `none` lists active
        ones without a next step, `overdue` those whose next step has passed."""
        stmt = services.find_companies(
            _me(), args["q"], status=args["status"], responsible_id=args["responsible_id"],
            kind=args["kind"], tag=args["tag"], category=args["category"],
            parent_id=args["parent_id"], next_step=args["next_step"])
        return _page(stmt, args, _companies)

    @companies_api.arguments(CompanyIn)
    @companies_api.response(201, ClientCompanyDetail)
    def post(self, data):
        """A new company. `responsible_id` is the caller (the default) or someone below them
        on the chart; `parent_id` puts it in a holding."""
        company = services.create_company(_me(), data)
        return _company_detail(company.id)


@companies_api.route("/<int:company_id>")
class CompanyItem(MethodView):
    @companies_api.response(200, ClientCompanyDetail)
    def get(self, company_id):
        """A company with its categories, tags, holding (parent, subsidiaries), contacts,
        next step and the colleagues it is shared with."""
        return _company_detail(company_id)

    @companies_api.arguments(CompanyPatch(partial=True))
    @companies_api.response(200, ClientCompanyDetail)
    def patch(self, data, company_id):
        """Change a company (its responsible manager, those above them, see-all posts; 403
        for a colleague it is only shared with). Fields left out keep their value; lists
        given replace the old ones. A parent that is the company itself or one of its
        subsidiaries is 422."""
        services.update_company(_me(), company_id, data)
        return _company_detail(company_id)

    @companies_api.response(204)
    def delete(self, company_id):
        """Archive the company: it leaves the lists and search; its history stays."""
        services.archive_company(_me(), company_id)


@companies_api.route("/<int:company_id>/share", methods=["PUT"])
@companies_api.arguments(ShareIn)
@companies_api.response(200, ClientShared)
def share_company(data, company_id):
    """Replace the colleagues the company is shared with by name: they see it and log
    contacts with it."""
    return {"user_ids": services.share(_me(), company_id, data)}


@companies_api.route("/<int:company_id>/rollup")
@companies_api.response(200, ClientRollup)
def company_rollup(company_id):
    """The holding's figures: the deals of the company and every company below it, by status
    and currency, and what other modules add."""
    rollup = services.rollup(_me(), company_id)
    figures = {k: v for k, v in rollup.items() if k not in ("company_ids", "deals")}
    return {"company_ids": rollup["company_ids"], "figures": figures,
            "deals": [{**d, "amount": _amount(d["amount_minor"], d["currency"])}
                      for d in rollup["deals"]]}


@companies_api.route("/<int:company_id>/history")
@companies_api.arguments(HistoryArgs, location="query")
@companies_api.response(200, ClientHistory)
def company_history(args, company_id):
    """The card's history, newest first: contacts with the client, and what other modules
    add (mail, tasks, invoices and payments)."""
    items = services.history(_me(), company_id, limit=args["limit"])
    return {"items": [{"at": i["at"], "kind": i["kind"], "title": i.get("title") or "",
                       "url": i.get("url"),
                       "interaction": _interaction(i["row"]) if i.get("row") is not None
                       else None} for i in items]}


# --- contacts -----------------------------------------------------------------------------

@contacts_api.route("")
class Contacts(MethodView):
    @contacts_api.arguments(ContactListArgs, location="query")
    @contacts_api.response(200, ClientContactPage)
    def get(self, args):
        """The contacts the caller may see (at companies they see, or their own), by name;
        `q` finds a name, phone or e-mail in part; `company_id` those at one company."""
        return _page(services.find_contacts(_me(), args["q"], args["company_id"]), args,
                     _contacts)

    @contacts_api.arguments(ContactIn)
    @contacts_api.response(201, ClientContact)
    def post(self, data):
        """A new contact; `companies` links them to companies (with a position) the caller
        may see."""
        contact = services.create_contact(_me(), data)
        return _contact_detail(contact.id)


@contacts_api.route("/<int:contact_id>")
class ContactItem(MethodView):
    @contacts_api.response(200, ClientContact)
    def get(self, contact_id):
        """A contact with the companies they are at."""
        return _contact_detail(contact_id)

    @contacts_api.arguments(ContactPatch(partial=True))
    @contacts_api.response(200, ClientContact)
    def patch(self, data, contact_id):
        """Change a contact; fields left out keep their value, `companies` replaces the
        links."""
        services.update_contact(_me(), contact_id, data)
        return _contact_detail(contact_id)


# --- interactions -------------------------------------------------------------------------

@interactions_api.route("")
class Interactions(MethodView):
    @interactions_api.arguments(InteractionListArgs, location="query")
    @interactions_api.response(200, ClientInteractionPage)
    def get(self, args):
        """Contacts with clients, newest first: of one company (`company_id`) or deal
        (`deal_id`), or of every company the caller sees."""
        stmt = services.find_interactions(_me(), args["company_id"], args["deal_id"],
                                          args["kind"])
        return _page(stmt, args, lambda rows: [_interaction(r) for r in rows])

    @interactions_api.arguments(InteractionIn)
    @interactions_api.response(201, ClientInteraction)
    def post(self, data):
        """Log a call, meeting, e-mail, note, complaint or refusal. An `outcome` moves the
        next step of the deal (or, without `deal_id`, of the company): `advance` needs
        `next_step` and a future `next_step_at`; `postpone` a future `next_step_at`;
        `refuse` a `reason_id` from the refusal list (a deal goes to its lost stage)."""
        row = services.log_interaction(_me(), data)
        return _interaction_out(row.id)


# --- leads --------------------------------------------------------------------------------

@leads_api.route("")
class Leads(MethodView):
    @leads_api.arguments(LeadListArgs, location="query")
    @leads_api.response(200, ClientLeadPage)
    def get(self, args):
        """The leads the caller may see (theirs and their team's, and unassigned ones),
        newest first; `overdue` keeps new leads past their contact deadline."""
        now = utcnow()
        stmt = services.find_leads(_me(), args["status"], args["overdue"], now=now)
        return _page(stmt, args, lambda rows: [_lead(r, now) for r in rows])

    @leads_api.arguments(LeadIn)
    @leads_api.response(201, ClientLead)
    def post(self, data):
        """A lead from a call, a form or a referral. It must be contacted within the
        minutes the administrator set; it goes to the lead post's holder unless
        `responsible_id` names the caller or someone below them."""
        lead = services.create_lead(_me(), data)
        return _lead(lead, utcnow())  # the caller sees what they made, whoever it went to


@leads_api.route("/<int:lead_id>")
@leads_api.response(200, ClientLead)
def get_lead(lead_id):
    """A lead, with its deadline and, once converted, its company, contact and deal."""
    return _lead_detail(lead_id)


@leads_api.route("/<int:lead_id>/contacted", methods=["POST"])
@leads_api.response(200, ClientLead)
def lead_contacted(lead_id):
    """The lead was contacted (409 when it was handled already)."""
    services.mark_contacted(_me(), lead_id)
    return _lead_detail(lead_id)


@leads_api.route("/<int:lead_id>/reject", methods=["POST"])
@leads_api.arguments(LeadRejectIn)
@leads_api.response(200, ClientLead)
def lead_reject(data, lead_id):
    """Reject the lead, saying why (409 when converted or rejected already)."""
    services.reject_lead(_me(), lead_id, data["reason"])
    return _lead_detail(lead_id)


@leads_api.route("/<int:lead_id>/convert", methods=["POST"])
@leads_api.arguments(ConvertIn)
@leads_api.response(200, ClientLead)
def lead_convert(data, lead_id):
    """Convert the lead in one step into a company (or `company_id`, an existing one such
    as a duplicate), a contact (or `contact_id`) and a deal in `pipeline_id` (the first
    pipeline by default). The answer carries the new ids."""
    services.convert_lead(_me(), lead_id, data)
    return _lead_detail(lead_id)


@leads_api.route("/<int:lead_id>/duplicates")
@leads_api.response(200, ClientDuplicates)
def lead_duplicates(lead_id):
    """Companies that look like the lead's by tax number, e-mail or phone: those the caller
    may see, and how many others exist beyond their reach."""
    found = services.lead_duplicates(_me(), lead_id)
    visible = _visible_company_ids({c.id for c in found})
    return {"items": _companies([c for c in found if c.id in visible]),
            "hidden": sum(c.id not in visible for c in found)}


# --- deals --------------------------------------------------------------------------------

@deals_api.route("")
class Deals(MethodView):
    @deals_api.arguments(DealListArgs, location="query")
    @deals_api.response(200, ClientDealPage)
    def get(self, args):
        """The deals the caller may see, latest changed first, filtered. `next_step`:
        `none` lists open deals without a next step, `overdue` those past it."""
        stmt = services.find_deals(
            _me(), q=args["q"], pipeline_id=args["pipeline_id"], stage_id=args["stage_id"],
            status=args["status"], company_id=args["company_id"],
            responsible_id=args["responsible_id"], next_step=args["next_step"])
        return _page(stmt, args, _deals)

    @deals_api.arguments(DealIn)
    @deals_api.response(201, ClientDealDetail)
    def post(self, data):
        """A new deal with a company the caller may see, in an open stage of `pipeline_id`
        (the first pipeline and its first stage by default). `amount` is in major units of
        `currency`."""
        deal = services.create_deal(_me(), data)
        return _deal_detail(deal.id)


@deals_api.route("/<int:deal_id>")
class DealItem(MethodView):
    @deals_api.response(200, ClientDealDetail)
    def get(self, deal_id):
        """A deal with its stage history."""
        return _deal_detail(deal_id)

    @deals_api.arguments(DealPatch(partial=True))
    @deals_api.response(200, ClientDealDetail)
    def patch(self, data, deal_id):
        """Change a deal's title, amount, probability, expected close, responsible or next
        step; fields left out keep their value. The stage changes by POST .../move."""
        services.update_deal(_me(), deal_id, data)
        return _deal_detail(deal_id)


@deals_api.route("/<int:deal_id>/move", methods=["POST"])
@deals_api.arguments(DealMoveIn)
@deals_api.response(200, ClientDealDetail)
def move_deal(data, deal_id):
    """Move the deal to another stage of its pipeline (a stage of another pipeline is 422).
    The lost stage needs a `reason_id` from the lost list (and takes a `note`); the won
    stage tells the modules that listen (a programme can start, a draft invoice be made)."""
    services.move_deal(_me(), deal_id, data)
    return _deal_detail(deal_id)


# --- pipelines ----------------------------------------------------------------------------

@pipelines_api.route("")
class Pipelines(MethodView):
    @pipelines_api.response(200, ClientPipeline(many=True))
    def get(self):
        """The live pipelines in order, with their stages."""
        return [_pipeline(p) for p in services.pipelines()]

    @pipelines_api.arguments(PipelineBody)
    @pipelines_api.response(201, ClientPipeline)
    def post(self, data):
        """A new pipeline (administrators): stages in order, open ones, exactly one won and
        one lost."""
        pipeline = services.save_pipeline(_me(), data)
        return _pipeline(_pipeline_of(pipeline.id))


@pipelines_api.route("/<int:pipeline_id>")
class PipelineItem(MethodView):
    @pipelines_api.response(200, ClientPipeline)
    def get(self, pipeline_id):
        """A pipeline with its stages."""
        return _pipeline(_pipeline_of(pipeline_id))

    @pipelines_api.arguments(PipelineBody)
    @pipelines_api.response(200, ClientPipeline)
    def put(self, data, pipeline_id):
        """Replace the name and stages (administrators). Give an existing stage's `id` to
        keep it; a stage left out is archived, which is refused while open deals are in it;
        the id of another pipeline's stage is 422."""
        services.save_pipeline(_me(), data, pipeline_id)
        return _pipeline(_pipeline_of(pipeline_id))


@pipelines_api.route("/<int:pipeline_id>/board")
@pipelines_api.arguments(BoardArgs, location="query")
@pipelines_api.response(200, ClientBoard)
def pipeline_board(args, pipeline_id):
    """The board: each live stage with the deals in it the caller may see (open ones, and
    those won or lost in the last 30 days), latest changed first."""
    columns = services.board(_me(), pipeline_id, args["limit"])
    pipeline = _pipeline_of(pipeline_id)
    now = utcnow()
    return {"pipeline": _pipeline(pipeline),
            "columns": [{"stage": s, "deals": [_deal(d, now) for d in columns.get(s.id, [])]}
                        for s in _live_stages(pipeline)]}


# --- reasons ------------------------------------------------------------------------------

@reasons_api.route("")
class Reasons(MethodView):
    @reasons_api.arguments(ReasonArgs, location="query")
    @reasons_api.response(200, ClientReason(many=True))
    def get(self, args):
        """The reasons to choose from by name: `kind` refusal, lost or complaint (all kinds
        without it)."""
        kinds = [args["kind"]] if args["kind"] else list(REASON_KINDS)
        return [r for kind in kinds for r in services.reasons(kind)]

    @reasons_api.arguments(ReasonIn)
    @reasons_api.response(201, ClientReason)
    def post(self, data):
        """Add a reason to a list (administrators; 422 for one already there)."""
        return services.add_reason(_me(), data)


# --- hand-over ----------------------------------------------------------------------------

@handover_api.route("", methods=["POST"])
@handover_api.arguments(HandOverIn)
@handover_api.response(200, ClientHandedOver)
def hand_over(data):
    """Everything `from_user_id` is responsible for (companies, deals, leads) goes to
    `to_user_id` in one step, with its whole history (their managers, see-all posts and
    administrators). Answers how many of each moved."""
    moved = services.hand_over(_me(), data)
    return {"companies": moved.get(Company.__tablename__, 0),
            "deals": moved.get(Deal.__tablename__, 0), "leads": moved.get(Lead.__tablename__, 0)}


ALL.extend([companies_api, contacts_api, interactions_api, leads_api, deals_api, pipelines_api,
            reasons_api, handover_api])
