"""Core pages: sign-in, own account, tokens, notifications, administration, files."""

from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from app.core import attachments, audit, notifications, services
from app.core.access import public
from app.core.api import send_attachment
from app.core.errors import DomainError, Unauthorized, ValidationError
from app.core.realtime import end_login_sockets
from app.extensions import db, limiter

bp = Blueprint("core", __name__, template_folder="templates")
TIMEZONES = sorted(available_timezones())


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _account_key() -> str:
    return "login:" + (request.form.get("email") or "").strip().lower()[:254]


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc:
        return target
    return url_for("core.home")


def form_errors(exc: DomainError) -> dict:
    return exc.fields


@bp.route("/health")
@public
def health():
    return {"status": "ok"}


@bp.route("/")
def home():
    cards = [(template, context(current_user))
             for template, context in current_app.extensions.get("crm_home_cards", [])]
    return render_template("core/home.html", cards=cards)


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, key_func=_account_key, methods=["POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("core.home"))
    error = None
    if request.method == "POST":
        try:
            user = services.authenticate(request.form.get("email", ""),
                                         request.form.get("password", ""))
        except Unauthorized as exc:
            error = exc.message
        else:
            session.clear()
            login_user(user, remember=bool(request.form.get("remember")))
            session["login_id"] = secrets.token_hex(16)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("core/login.html", error=error,
                           email=request.form.get("email", "")), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    login_id = session.get("login_id")
    language = current_user.language
    logout_user()
    session.clear()
    session["language"] = language  # the sign-in page stays in the person's language
    if login_id:
        end_login_sockets(login_id)
    flash(_("You have signed out."), "info")
    return redirect(url_for("core.login"))


@bp.route("/language", methods=["POST"])
@public
def language():
    code = request.form.get("language", "")
    if code not in current_app.config["LANGUAGES"]:
        abort(400)
    session["language"] = code
    if current_user.is_authenticated:
        services.update_profile(current_user, {"name": current_user.name, "language": code,
                                               "timezone": current_user.timezone})
    return redirect(_safe_next(request.form.get("next")))


# --- own account ------------------------------------------------------------------------

@bp.route("/account", methods=["GET", "POST"])
def account():
    errors, status = {}, 200
    if request.method == "POST":
        try:
            services.update_profile(current_user, request.form)
        except ValidationError as exc:
            errors, status = form_errors(exc), 422
        else:
            flash(_("Your profile is saved."), "success")
            return redirect(url_for("core.account"))
    return render_template("core/account.html", errors=errors, timezones=TIMEZONES,
                           form=request.form if errors else None), status


def _user_key() -> str:
    return f"password:{current_user.get_id()}"


@bp.route("/account/password", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=_user_key, methods=["POST"])
def password():
    errors, status = {}, 200
    if request.method == "POST":
        try:
            services.change_password(current_user, request.form)
        except ValidationError as exc:
            errors, status = form_errors(exc), 422
        else:
            login_user(current_user._get_current_object())  # this browser stays signed in
            flash(_("Your password is changed."), "success")
            return redirect(url_for("core.account"))
    return render_template("core/password.html", errors=errors), status


@bp.route("/account/tokens", methods=["GET", "POST"])
def tokens():
    errors, status, new_token = {}, 200, None
    if request.method == "POST":
        try:
            _token, new_token = services.create_token(current_user, request.form)
        except ValidationError as exc:
            errors, status = form_errors(exc), 422
    return render_template("core/tokens.html", tokens=services.tokens_of(current_user),
                           errors=errors, new_token=new_token), status


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
def revoke_token(token_id: int):
    token = services.revoke_token(current_user, token_id)
    flash(_("The token “%(name)s” is revoked.", name=token.name), "success")
    return redirect(url_for("core.tokens"))


# --- notifications ----------------------------------------------------------------------

@bp.route("/notifications")
def notification_list():
    page = db.paginate(notifications.query_for(current_user), per_page=25, error_out=False)
    return render_template("core/notifications.html", page=page)


@bp.route("/notifications/bell")
def notification_bell():
    items = db.session.scalars(notifications.query_for(current_user).limit(8)).all()
    return render_template("core/_bell_items.html", items=items)


@bp.route("/notifications/read", methods=["POST"])
def notifications_read():
    ids = request.form.getlist("ids", type=int)
    notifications.mark_read(current_user, {"ids": ids, "all": not ids})
    return redirect(_safe_next(request.form.get("next") or url_for("core.notification_list")))


# --- administration ---------------------------------------------------------------------

@bp.route("/admin/users")
def users():
    services.require_admin(current_user)
    q = request.args.get("q", "").strip()
    page = db.paginate(services.users_query(q), per_page=current_app.config["PER_PAGE"],
                       error_out=False)
    return render_template("core/users.html", page=page, q=q)


@bp.route("/admin/users/new", methods=["GET", "POST"])
def user_new():
    services.require_admin(current_user)
    errors, status = {}, 200
    if request.method == "POST":
        data = request.form.to_dict()
        data["is_admin"] = "is_admin" in request.form
        try:
            user = services.create_user(current_user, data)
        except DomainError as exc:
            errors, status = form_errors(exc) or {"email": [exc.message]}, exc.status
        else:
            flash(_("The account of %(name)s is created.", name=user.name), "success")
            return redirect(url_for("core.user_edit", user_id=user.id))
    return render_template("core/user_form.html", user=None, errors=errors,
                           form=request.form, timezones=TIMEZONES), status


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):
    services.require_admin(current_user)
    user = services.get_user(user_id)
    errors, status = {}, 200
    if request.method == "POST":
        data = {k: request.form.get(k) for k in ("name", "email", "language", "timezone")}
        data["is_admin"] = "is_admin" in request.form
        try:
            services.update_user(current_user, user, data)
        except DomainError as exc:
            errors, status = form_errors(exc) or {"email": [exc.message]}, exc.status
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("core.user_edit", user_id=user.id))
    return render_template("core/user_form.html", user=user, errors=errors,
                           form=request.form if errors else None, timezones=TIMEZONES), status


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
def user_active(user_id: int):
    services.require_admin(current_user)
    user = services.get_user(user_id)
    active = request.form.get("active") == "1"
    services.set_active(current_user, user, active)
    flash(_("The account is active again.") if active else
          _("The account is deactivated; its data stays."), "success")
    return redirect(url_for("core.user_edit", user_id=user.id))


@bp.route("/admin/users/<int:user_id>/password", methods=["POST"])
def user_password(user_id: int):
    services.require_admin(current_user)
    user = services.get_user(user_id)
    try:
        services.reset_password(current_user, user, request.form)
    except ValidationError as exc:
        return render_template("core/user_form.html", user=user, errors=form_errors(exc),
                               form=None, timezones=TIMEZONES), 422
    flash(_("A new password is set for %(name)s.", name=user.name), "success")
    return redirect(url_for("core.user_edit", user_id=user.id))


def _day(value: str | None, tz: ZoneInfo, end: bool = False) -> datetime | None:
    """A date from a filter field as the start (or the end) of that day in the user's zone."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day + timedelta(days=1 if end else 0), time.min, tzinfo=tz)


@bp.route("/admin/audit")
def audit_log():
    services.require_admin(current_user)
    tz = ZoneInfo(current_user.timezone)
    args = request.args
    filters = {
        "actor_id": args.get("actor_id", type=int),
        "action": args.get("action") or None,
        "entity_type": args.get("entity_type") or None,
        "entity_id": args.get("entity_id") or None,
        "since": _day(args.get("since"), tz),
        "until": _day(args.get("until"), tz, end=True),
    }
    page = db.paginate(audit.query(filters), per_page=50, error_out=False)
    people = db.session.scalars(services.users_query(include_inactive=False)).all()
    return render_template("core/audit.html", page=page, args=args, actions=audit.actions(),
                           people=people)


# --- attachments --------------------------------------------------------------------------

def _owner_args(source) -> tuple[str, int]:
    owner_type = source.get("owner_type", "")
    owner_id = source.get("owner_id", type=int)
    if not owner_type or owner_id is None:
        abort(404)
    return owner_type, owner_id


@bp.route("/attachments/panel")
def attachment_panel():
    owner_type, owner_id = _owner_args(request.args)
    items = attachments.list_for(current_user, owner_type, owner_id)
    return render_template("core/_attachments.html", items=items, owner_type=owner_type,
                           owner_id=owner_id, error=None)


@bp.route("/attachments", methods=["POST"])
def attachment_upload():
    owner_type, owner_id = _owner_args(request.form)
    error, status = None, 200
    try:
        attachments.store(current_user, owner_type, owner_id, request.files.get("file"))
    except ValidationError as exc:
        error, status = exc.message, 422
    items = attachments.list_for(current_user, owner_type, owner_id)
    return render_template("core/_attachments.html", items=items, owner_type=owner_type,
                           owner_id=owner_id, error=error), status


@bp.route("/attachments/<int:attachment_id>")
def attachment_download(attachment_id: int):
    return send_attachment(attachments.get(current_user, attachment_id))


@bp.route("/attachments/<int:attachment_id>/delete", methods=["POST"])
def attachment_delete(attachment_id: int):
    att = attachments.get(current_user, attachment_id)
    owner_type, owner_id = att.owner_type, att.owner_id
    attachments.delete(current_user, attachment_id)
    items = attachments.list_for(current_user, owner_type, owner_id)
    return render_template("core/_attachments.html", items=items, owner_type=owner_type,
                           owner_id=owner_id, error=None)
