"""Marshmallow schemas at the chart's boundaries (forms, JSON, imports)."""

from __future__ import annotations

from babel.numbers import list_currencies
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MaValidationError

from app.core.money import MAX_MAJOR
from app.orgchart.models import UNIT_KINDS

SEPARATOR = " / "  # joins unit names into a path in imports and exports


def _no_separator(value: str) -> None:
    if SEPARATOR in value:
        raise MaValidationError(str(_l("A name cannot contain “ / ” (it separates units in a "
                                       "path).")))

CURRENCIES = frozenset(list_currencies())


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


class UnitIn(_In):
    parent_id = fields.Integer(allow_none=True, load_default=None)
    kind = fields.String(required=True, validate=validate.OneOf(UNIT_KINDS))
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200),
                                                  _no_separator])
    number = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=16))
    position = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))
    description = fields.String(load_default="", validate=validate.Length(max=20_000))


class UnitPatch(UnitIn):
    """A partial change of a unit (its own name in the API document)."""


class PostIn(_In):
    unit_id = fields.Integer(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    is_head = fields.Boolean(load_default=False)
    position = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))
    functions = fields.String(load_default="", validate=validate.Length(max=20_000))
    duties = fields.String(load_default="", validate=validate.Length(max=20_000))
    authority = fields.String(load_default="", validate=validate.Length(max=20_000))
    product = fields.String(load_default="", validate=validate.Length(max=20_000))


class PostPatch(PostIn):
    """A partial change of a post."""


class AssignmentIn(_In):
    post_id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    acting = fields.Boolean(load_default=False)


class AssignmentUpdate(_In):
    acting = fields.Boolean(required=True)


class CapabilityIn(_In):
    name = fields.String(required=True)
    amount = fields.Decimal(allow_none=True, load_default=None, as_string=False,
                            validate=validate.Range(max=MAX_MAJOR))
    currency = fields.String(allow_none=True, load_default=None)

    @validates_schema
    def _amount(self, data, **kwargs):
        from app.orgchart.services import AMOUNT_CAPABILITIES, CAPABILITIES

        if data["name"] not in CAPABILITIES:
            raise MaValidationError(str(_l("Unknown capability.")), "name")
        if data["name"] not in AMOUNT_CAPABILITIES:
            data["amount"] = data["currency"] = None  # only money capabilities carry one
        else:
            if data.get("amount") is None:
                raise MaValidationError(str(_l("Give the amount.")), "amount")
            if data["amount"] < 0:
                raise MaValidationError(str(_l("The amount cannot be below zero.")), "amount")
            if (data.get("currency") or "").upper() not in CURRENCIES:
                raise MaValidationError(str(_l("Unknown currency.")), "currency")


class ThresholdsIn(_In):
    overloaded_at = fields.Integer(required=True, validate=validate.Range(min=1, max=100_000))
    underloaded_at = fields.Integer(required=True, validate=validate.Range(min=0, max=100_000))

    @validates_schema
    def _order(self, data, **kwargs):
        if data["underloaded_at"] >= data["overloaded_at"]:
            raise MaValidationError(str(_l("Must be below the overload threshold.")),
                                    "underloaded_at")


class TemplateIn(_In):
    company = fields.String(required=True, validate=validate.Length(min=1, max=200))
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru"]))


# --- output ---------------------------------------------------------------------------

class UnitOut(Schema):
    id = fields.Integer()
    parent_id = fields.Integer(allow_none=True)
    kind = fields.String()
    name = fields.String()
    number = fields.String(allow_none=True)
    position = fields.Integer()
    description = fields.String()
    archived_at = fields.DateTime(allow_none=True)


class PostOut(Schema):
    id = fields.Integer()
    unit_id = fields.Integer()
    title = fields.String()
    is_head = fields.Boolean()
    position = fields.Integer()
    functions = fields.String()
    duties = fields.String()
    authority = fields.String()
    product = fields.String()
    archived_at = fields.DateTime(allow_none=True)


class AssignmentOut(Schema):
    id = fields.Integer()
    post_id = fields.Integer()
    user_id = fields.Integer()
    acting = fields.Boolean()
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)


class WorkloadRow(Schema):
    kind = fields.String()
    id = fields.Integer()
    name = fields.String()
    load = fields.Integer()
    parts = fields.Dict(keys=fields.String(), values=fields.Integer())
    flag = fields.String(allow_none=True)
