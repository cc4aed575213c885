"""The JSON API's base: the Api object, token authentication, pagination envelopes."""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields

from app.core.errors import Unauthorized
from app.extensions import csrf


class ErrorBody(Schema):
    code = fields.String()
    message = fields.String()
    fields = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody)


class CrmApi(Api):
    """flask-smorest's Api, leaving error mapping to app.core.errorhandlers."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        pass


api = CrmApi(spec_kwargs={
    "info": {"description": "JSON API of the CRM. Authenticate with "
                            "`Authorization: Bearer <personal API token>`."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
})


def authenticate_bearer() -> None:
    from app.core.services import user_for_token

    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    user = user_for_token(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise Unauthorized(_("A valid API token is required."))
    g.api_user = user


def api_blueprint(name: str, import_name: str, url_prefix: str, description: str = "") -> Blueprint:
    """A blueprint under /api/v1 whose every call needs a live bearer token."""
    blp = Blueprint(name, import_name, url_prefix=f"/api/v1{url_prefix}", description=description)
    blp.before_request(authenticate_bearer)
    csrf.exempt(blp)
    return blp


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def authenticate_session_or_bearer() -> None:
    """A bearer token when one is sent; otherwise the browser's signed-in session, whose
    changing calls must carry the CSRF token (`X-CSRFToken`) like any form."""
    from flask_login import current_user

    if request.headers.get("Authorization"):
        authenticate_bearer()
        return
    if current_user.is_authenticated:
        if request.method not in _SAFE_METHODS:
            csrf.protect()
        g.api_user = current_user._get_current_object()
        return
    raise Unauthorized(_("Sign in or send a valid API token."))


def session_api_blueprint(name: str, import_name: str, url_prefix: str,
                          description: str = "") -> Blueprint:
    """A blueprint under /api/v1 that the CRM's own pages call with their session as well as
    clients with a token."""
    blp = Blueprint(name, import_name, url_prefix=f"/api/v1{url_prefix}", description=description)
    blp.before_request(authenticate_session_or_bearer)
    csrf.exempt(blp)  # checked in authenticate_session_or_bearer for sessions; tokens need none
    return blp


def api_user():
    return g.api_user


class PageMeta(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


def page_envelope(item_schema: type[Schema]) -> type[Schema]:
    """A schema {items: [...], meta: {...}} for a paginated list of item_schema."""
    return type(f"{item_schema.__name__}Page", (Schema,), {
        "items": fields.List(fields.Nested(item_schema)),
        "meta": fields.Nested(PageMeta),
    })


def paginated(stmt, page: int, per_page: int) -> dict:
    from app.extensions import db

    result = db.paginate(stmt, page=page, per_page=per_page, error_out=False)
    return {"items": result.items, "meta": {"page": result.page, "per_page": result.per_page,
                                            "total": result.total, "pages": result.pages}}
