"""Marshmallow schemas at the boundaries of the client base: pages, the API, imports."""

from __future__ import annotations

from datetime import UTC

from marshmallow import EXCLUDE, Schema, fields, validate

from app.clients.models import (
    COMPANY_STATUSES,
    DATE_KINDS,
    INTERACTION_KINDS,
    LEAD_SOURCES,
    OUTCOMES,
    REASON_KINDS,
    STAGE_KINDS,
)
from app.core.schemas import row_id

TEXT_MAX = 20_000
LIST_MAX = 20


class _In(Schema):
    class Meta:
        unknown = EXCLUDE




def _when(**kw):
    return fields.AwareDateTime(default_timezone=UTC, allow_none=True, **kw)


def _strings(max_len: int, **kw):
    return fields.List(fields.String(validate=validate.Length(max=max_len)),
                       validate=validate.Length(max=LIST_MAX), **kw)


class AddressIn(_In):
    kind = fields.String(load_default="office", validate=validate.Length(max=40))
    text = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CompanyIn(_In):
    legal_name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    short_name = fields.String(load_default="", validate=validate.Length(max=200))
    tax_number = fields.String(load_default=None, allow_none=True,
                               validate=validate.Regexp(r"^[0-9A-Za-z-]{0,32}$"))
    is_client = fields.Boolean(load_default=True)
    is_supplier = fields.Boolean(load_default=False)
    is_partner = fields.Boolean(load_default=False)
    categories = _strings(80, load_default=list)
    tags = _strings(60, load_default=list)
    industry = fields.String(load_default="", validate=validate.Length(max=120))
    addresses = fields.List(fields.Nested(AddressIn), load_default=list,
                            validate=validate.Length(max=LIST_MAX))
    phones = _strings(40, load_default=list)
    emails = fields.List(fields.Email(), load_default=list, validate=validate.Length(max=LIST_MAX))
    website = fields.String(load_default="", validate=validate.Length(max=300))
    responsible_id = row_id(load_default=None, allow_none=True)
    status = fields.String(load_default="prospect", validate=validate.OneOf(COMPANY_STATUSES))
    notes = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))
    parent_id = row_id(load_default=None, allow_none=True)
    next_step = fields.String(load_default="", validate=validate.Length(max=300))
    next_step_at = _when(load_default=None)


class ContactLinkIn(_In):
    company_id = row_id(required=True)
    position = fields.String(load_default="", validate=validate.Length(max=200))


class MessengerIn(_In):
    kind = fields.String(required=True, validate=validate.Length(min=1, max=40))
    handle = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ContactIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phones = _strings(40, load_default=list)
    emails = fields.List(fields.Email(), load_default=list, validate=validate.Length(max=LIST_MAX))
    messengers = fields.List(fields.Nested(MessengerIn), load_default=list,
                             validate=validate.Length(max=LIST_MAX))
    birthday = fields.Date(load_default=None, allow_none=True)
    consent = fields.Boolean(load_default=False)
    notes = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))
    companies = fields.List(fields.Nested(ContactLinkIn), load_default=list,
                            validate=validate.Length(max=LIST_MAX))


class InteractionIn(_In):
    company_id = row_id(required=True)
    contact_id = row_id(load_default=None, allow_none=True)
    deal_id = row_id(load_default=None, allow_none=True)
    kind = fields.String(required=True, validate=validate.OneOf(INTERACTION_KINDS))
    subject = fields.String(load_default="", validate=validate.Length(max=300))
    body = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))
    occurred_at = _when(load_default=None)
    # advance: a new next step; postpone: the same step at a new date; refuse: with a reason
    outcome = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(OUTCOMES))
    next_step = fields.String(load_default="", validate=validate.Length(max=300))
    next_step_at = _when(load_default=None)
    reason_id = row_id(load_default=None, allow_none=True)


class StageIn(_In):
    id = row_id(load_default=None, allow_none=True)  # an existing stage kept
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    kind = fields.String(load_default="open", validate=validate.OneOf(STAGE_KINDS))
    probability = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 100))


class PipelineIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    stages = fields.List(fields.Nested(StageIn), required=True,
                         validate=validate.Length(min=1, max=30))


class DealIn(_In):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    company_id = row_id(required=True)
    contact_id = row_id(load_default=None, allow_none=True)
    pipeline_id = row_id(load_default=None, allow_none=True)
    stage_id = row_id(load_default=None, allow_none=True)
    amount = fields.Decimal(load_default=0, places=None, as_string=False,
                            validate=validate.Range(min=0, max=10**13))
    currency = fields.String(load_default="RUB", validate=validate.Regexp(r"^[A-Z]{3}$"))
    probability = fields.Integer(strict=True, load_default=None, allow_none=True,
                                 validate=validate.Range(0, 100))
    expected_close = fields.Date(load_default=None, allow_none=True)
    responsible_id = row_id(load_default=None, allow_none=True)
    next_step = fields.String(load_default="", validate=validate.Length(max=300))
    next_step_at = _when(load_default=None)


class MoveIn(_In):
    stage_id = row_id(required=True)
    reason_id = row_id(load_default=None, allow_none=True)  # required to lose a deal
    note = fields.String(load_default="", validate=validate.Length(max=TEXT_MAX))


def _blank_or_email(value: str) -> None:
    """A form's e-mail field left empty is no e-mail; anything else must be one."""
    if value:
        validate.Email()(value)


class LeadIn(_In):
    source = fields.String(load_default="form", validate=validate.OneOf(LEAD_SOURCES))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    company_name = fields.String(load_default="", validate=validate.Length(max=300))
    email = fields.String(load_default="", validate=[validate.Length(max=254), _blank_or_email])
    phone = fields.String(load_default="", validate=validate.Regexp(r"^[0-9+()\- .]{0,40}$"))
    tax_number = fields.String(load_default="", validate=validate.Regexp(r"^[0-9A-Za-z-]{0,32}$"))
    message = fields.String(load_default="", validate=validate.Length(max=5000))
    responsible_id = row_id(load_default=None, allow_none=True)


class ConvertIn(_In):
    company_id = row_id(load_default=None, allow_none=True)  # an existing company (a duplicate)
    contact_id = row_id(load_default=None, allow_none=True)
    deal_title = fields.String(load_default="", validate=validate.Length(max=300))
    pipeline_id = row_id(load_default=None, allow_none=True)
    amount = fields.Decimal(load_default=0, places=None, validate=validate.Range(min=0, max=10**13))
    currency = fields.String(load_default="RUB", validate=validate.Regexp(r"^[A-Z]{3}$"))


class ReasonIn(_In):
    kind = fields.String(required=True, validate=validate.OneOf(REASON_KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class DateIn(_In):
    company_id = row_id(load_default=None, allow_none=True)
    contact_id = row_id(load_default=None, allow_none=True)
    kind = fields.String(required=True, validate=validate.OneOf(DATE_KINDS))
    title = fields.String(load_default="", validate=validate.Length(max=200))
    on = fields.Date(required=True)
    yearly = fields.Boolean(load_default=True)
    remind_days = fields.Integer(strict=True, load_default=3, validate=validate.Range(0, 60))


class HandOverIn(_In):
    from_user_id = row_id(required=True)
    to_user_id = row_id(required=True)


class ShareIn(_In):
    user_ids = fields.List(row_id(), required=True, validate=validate.Length(max=50))


class GreetingIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=300))
    body = fields.String(required=True, validate=validate.Length(min=1, max=TEXT_MAX))


class GreetingSendIn(_In):
    template_id = row_id(required=True)
    company_id = row_id(load_default=None, allow_none=True)  # the company named in {company}
