"""The single mapping of errors to pages and JSON: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.core.errors import DomainError
from app.extensions import db

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best == "application/json")


def error_response(status: int, code: str, message: str, fields: dict | None = None,
                   headers: dict | None = None):
    if wants_json():
        resp = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    else:
        template = "core/error_fragment.html" if request.headers.get("HX-Request") \
            else "core/error.html"
        resp = render_template(template, status=status, message=message, fields=fields or {})
    if isinstance(resp, str):
        resp = make_response(resp)
    resp.status_code = status
    if request.headers.get("HX-Request") and not wants_json():
        resp.headers["HX-Retarget"] = "#flash-area"
        resp.headers["HX-Reswap"] = "innerHTML"
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


_HTTP_MESSAGES = {
    400: ("bad_request", lambda: _("The request could not be understood.")),
    401: ("unauthorized", lambda: _("Sign in to continue.")),
    403: ("permission_denied", lambda: _("You may not do this.")),
    404: ("not_found", lambda: _("Nothing was found here.")),
    405: ("method_not_allowed", lambda: _("This action is not allowed here.")),
    413: ("too_large", lambda: _("The upload is too large.")),
    422: ("validation_error", lambda: _("Please correct the highlighted fields.")),
    429: ("rate_limited", lambda: _("Too many attempts. Wait a minute and try again.")),
}


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        db.session.rollback()
        return error_response(exc.status, exc.code, exc.message, exc.fields)

    @app.errorhandler(DataError)
    def data_error(exc: DataError):
        """A value the database cannot hold (an id beyond its integers): bad input, not a crash."""
        db.session.rollback()
        return error_response(422, "validation_error", _("A value is out of range."))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, "csrf_failed",
                              _("The form has expired or was not sent from this site. "
                                "Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, InternalServerError):
            return internal_error(exc)
        code, message = _HTTP_MESSAGES.get(exc.code or 500, ("error", lambda: exc.description))
        fields = {}
        data = getattr(exc, "data", None)  # webargs puts validation messages here
        if data and "messages" in data:
            for location, messages in data["messages"].items():
                if isinstance(messages, dict):
                    fields.update({k: v if isinstance(v, list) else [v] for k, v in messages.items()})
                else:  # the body itself is wrong (e.g. not JSON)
                    fields[location] = messages if isinstance(messages, list) else [messages]
        return error_response(exc.code or 500, code, message(), fields,
                              dict(data.get("headers") or {}) if data else None)

    @app.errorhandler(Exception)
    def internal_error(exc):
        db.session.rollback()
        log.exception("unhandled error", exc_info=getattr(exc, "original_exception", exc))
        return error_response(500, "internal_error",
                              _("Something went wrong on our side. It has been logged."))
