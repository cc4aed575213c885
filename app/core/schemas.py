"""Marshmallow schemas at the core's boundaries (forms, JSON)."""

from __future__ import annotations

from zoneinfo import available_timezones

from flask import current_app
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, fields, validate
from marshmallow import ValidationError as MaValidationError

from app.core.forms import MAX_ID

_TIMEZONES = frozenset(available_timezones())


ID_RANGE = validate.Range(min=1, max=MAX_ID)


def row_id(**kw) -> fields.Integer:
    """A row's id in a request: a whole number the database can hold."""
    kw.setdefault("strict", True)
    return fields.Integer(validate=ID_RANGE, **kw)


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


def _language(value: str) -> None:
    if value not in current_app.config["LANGUAGES"]:
        raise MaValidationError(str(_l("Unknown language.")))


def _timezone(value: str) -> None:
    if value not in _TIMEZONES:
        raise MaValidationError(str(_l("Unknown time zone.")))


class ProfileSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    language = fields.String(required=True, validate=_language)
    timezone = fields.String(required=True, validate=_timezone)


class PasswordChangeSchema(_Strict):
    current_password = fields.String(required=True)
    new_password = fields.String(required=True, validate=validate.Length(max=256))


class UserCreateSchema(ProfileSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(max=256))
    is_admin = fields.Boolean(load_default=False)
    language = fields.String(load_default="en", validate=_language)
    timezone = fields.String(load_default="UTC", validate=_timezone)


class UserUpdateSchema(_Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    email = fields.Email(validate=validate.Length(max=254))
    language = fields.String(validate=_language)
    timezone = fields.String(validate=_timezone)
    is_admin = fields.Boolean()
    active = fields.Boolean()


class PasswordResetSchema(_Strict):
    password = fields.String(required=True, validate=validate.Length(max=256))


class TokenCreateSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    language = fields.String()
    timezone = fields.String()
    active = fields.Boolean()
    is_admin = fields.Boolean()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class NotificationSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    title = fields.String()
    body = fields.String()
    url = fields.String(allow_none=True)
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotificationReadSchema(_Strict):
    ids = fields.List(fields.Integer(), load_default=None)
    all = fields.Boolean(load_default=False)


class AuditEventSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.Integer(allow_none=True)
    action = fields.String()
    entity_type = fields.String()
    entity_id = fields.String(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    address = fields.String(allow_none=True)


class AuditFilterSchema(_Strict):
    actor_id = fields.Integer()
    action = fields.String(validate=validate.Length(max=64))
    entity_type = fields.String(validate=validate.Length(max=64))
    entity_id = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(default_timezone=None)
    until = fields.AwareDateTime(default_timezone=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))


class AttachmentSchema(Schema):
    id = fields.Integer()
    owner_type = fields.String()
    owner_id = fields.Integer()
    filename = fields.String()
    size = fields.Integer()
    mime = fields.String()
    sha256 = fields.String()
    uploaded_by_id = fields.Integer()
    created_at = fields.DateTime()


class OwnerSchema(_Strict):
    owner_type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    owner_id = fields.Integer(required=True, strict=False)


class PageArgsSchema(_Strict):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))
