"""The public web form a site posts leads to: POST /clients/forms/lead.

Anyone may post (no sign-in, no CSRF token: the form lives on another site), so the post is
checked here before the services see it: the form's key (field `key` or header
`X-Form-Key`), a honeypot field robots fill and people do not see (`_gotcha`), a limit per
address and per key, the body's size and each field's length. Fields are kept as plain text
as sent; pages escape them. The answer is always JSON: {"ok": true}, or the error envelope
{"error": {"code", "message", "fields"}} with 401 (no key), 403 (a wrong or archived key),
413 (too large), 422 (bad fields) or 429 (too many posts); nothing is created on an error.
"""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from app.clients import bp as clients_bp
from app.clients import services
from app.core.access import public
from app.core.errors import DomainError, Unauthorized, ValidationError
from app.extensions import csrf, db, limiter

log = logging.getLogger(__name__)

HONEYPOT = "_gotcha"
MAX_BODY = 64 * 1024  # a lead is a few lines; anything bigger is not one
# form field -> lead field
FIELDS = {"name": "name", "company": "company_name", "email": "email", "phone": "phone",
          "message": "message"}
IP_LIMIT = "10 per minute;100 per day"
KEY_LIMIT = "60 per minute;2000 per day"

bp = Blueprint("webform", __name__, url_prefix="/forms")


def _ip_limit() -> str:
    return current_app.config.get("CLIENTS_WEBFORM_IP_LIMIT", IP_LIMIT)


def _key_limit() -> str:
    return current_app.config.get("CLIENTS_WEBFORM_KEY_LIMIT", KEY_LIMIT)


def _payload() -> dict:
    """The posted fields: a JSON object, or a form (urlencoded or multipart)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _TooLarge()
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError(_("Send the form's fields as a JSON object."),
                                  {"json": [_("Not a JSON object.")]})
        return data
    return request.form.to_dict()


def _given_key() -> str:
    key = request.headers.get("X-Form-Key") or ""
    if not key:
        try:
            value = _payload().get("key")
        except (DomainError, _TooLarge):
            value = None
        key = value if isinstance(value, str) else ""
    return key.strip()[:200]


def _key_bucket() -> str:
    """The rate-limit bucket of a form key (its hash: keys never reach the limiter's store)."""
    return "webform:" + hashlib.sha256(_given_key().encode()).hexdigest()[:32]


class _TooLarge(Exception):
    pass


def _error(status: int, code: str, message: str, fields: dict | None = None):
    db.session.rollback()
    resp = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    resp.status_code = status
    return resp


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    return _error(exc.status, exc.code, exc.message, exc.fields)


@bp.errorhandler(_TooLarge)
def _too_large(_exc):
    return _error(413, "too_large", _("The form is too large."))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if exc.code == 429:
        return _error(429, "rate_limited", _("Too many posts from here. Wait a minute and try "
                                             "again."))
    if exc.code == 413:
        return _error(413, "too_large", _("The form is too large."))
    return _error(exc.code or 400, "bad_request", _("The request could not be understood."))


@bp.route("/lead", methods=["POST"])
@public
@csrf.exempt
@limiter.limit(_ip_limit, key_func=get_remote_address)
@limiter.limit(_key_limit, key_func=_key_bucket)
def lead():
    """A lead from a site's form. See the module's docstring for what is checked."""
    data = _payload()
    key = _given_key()
    if not key:
        raise Unauthorized(_("This form's key is missing."))
    form = services.form_for_key(key)
    if str(data.get(HONEYPOT) or "").strip():
        # A robot filled the hidden field: it is told all is well and nothing is kept.
        log.info("web form %s: honeypot filled, post dropped", form.id)
        return jsonify({"ok": True})
    fields = {}
    for name, target in FIELDS.items():
        value = data.get(name)
        if value is None:
            continue
        fields[target] = value.strip() if isinstance(value, str) else value
    try:
        services.create_lead(None, fields, form=form)
    except ValidationError as exc:  # named as the form names its fields
        back = {target: name for name, target in FIELDS.items()}
        raise ValidationError(exc.message, {back.get(k, k): v for k, v in exc.fields.items()}) \
            from exc
    return jsonify({"ok": True})


clients_bp.register_blueprint(bp)
