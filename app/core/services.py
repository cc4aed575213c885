"""Account rules: sign-in, profiles, passwords, administration of users, API tokens.

Every function takes the acting user, checks permission, validates with a
schema, changes rows, records the audit event; the request commits.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping

from flask_babel import gettext as _
from marshmallow import Schema
from marshmallow import ValidationError as MaValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.core import audit, notifications
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, PermissionDenied, Unauthorized, ValidationError
from app.core.i18n import translate_library_message
from app.core.models import ApiToken, User
from app.core.passwords import hash_password, policy_errors, verify_password
from app.core.realtime import end_token_sockets, end_user_sockets
from app.core.schemas import (
    PasswordChangeSchema,
    PasswordResetSchema,
    ProfileSchema,
    TokenCreateSchema,
    UserCreateSchema,
    UserUpdateSchema,
)
from app.extensions import db

TOKEN_PREFIX = "crm_"  # noqa: S105 - a marker, not a secret
_AUDITED_USER_FIELDS = ("email", "name", "language", "timezone", "active", "is_admin")


def _sentences(messages, prefix: str = "") -> list[str]:
    """A field's messages as translated sentences; those of list items and nested rows say
    where ("2: post_id: This field is required.", rows counted from 1)."""
    if isinstance(messages, dict):
        out = []
        for key, inner in messages.items():
            where = f"{key + 1}: " if isinstance(key, int) else f"{key}: "
            out += _sentences(inner, prefix + where)
        return out
    if isinstance(messages, list | tuple):
        return [m for inner in messages for m in _sentences(inner, prefix)]
    return [prefix + translate_library_message(str(messages))]


def load(schema: Schema, data: Mapping, *, partial: bool = False) -> dict:
    """Validate input with a schema, turning its errors into a domain ValidationError."""
    try:
        return schema.load(dict(data), partial=partial)
    except MaValidationError as exc:
        fields = {k: _sentences(v) for k, v in exc.normalized_messages().items()}
        raise ValidationError(_("Please correct the highlighted fields."), fields) from exc


_admin_sources: list[Callable[[User], bool]] = []


def register_admin_source(check: Callable[[User], bool]) -> None:
    """Let a module grant administration (the chart: posts with the capability)."""
    _admin_sources.append(check)


def is_admin(user: User | None) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_admin or any(check(user) for check in _admin_sources)


def require_admin(actor: User) -> None:
    if not is_admin(actor):
        raise PermissionDenied(_("Only administrators may do this."))


def snapshot(user: User) -> dict:
    return {f: getattr(user, f) for f in _AUDITED_USER_FIELDS}


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("No such user."))
    return user


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


# --- signing in -----------------------------------------------------------------------

def authenticate(email: str, password: str) -> User:
    """The user for these credentials; one message for every failure, so nothing leaks."""
    user = find_by_email(email or "")
    ok = verify_password(user.password_hash if user else None, password or "")
    if not ok or user is None or not user.is_active:
        raise Unauthorized(_("Wrong e-mail or password."))
    user.last_login_at = utcnow()
    audit.record(user, "user.sign_in", "user", user.id)
    return user


def _check_password(password: str, email: str) -> None:
    errors = policy_errors(password, email)
    if errors:
        raise ValidationError(_("Please choose a stronger password."), {"password": errors})


# --- own account ------------------------------------------------------------------------

def update_profile(actor: User, data: Mapping) -> User:
    values = load(ProfileSchema(), data)
    before = snapshot(actor)
    for key, value in values.items():
        setattr(actor, key, value)
    audit.record(actor, "user.profile", "user", actor.id, before=before, after=snapshot(actor))
    return actor


def change_password(actor: User, data: Mapping) -> None:
    values = load(PasswordChangeSchema(), data)
    if not verify_password(actor.password_hash, values["current_password"]):
        raise ValidationError(
            _("Please correct the highlighted fields."),
            {"current_password": [_("The current password is wrong.")]},
        )
    try:
        _check_password(values["new_password"], actor.email)
    except ValidationError as exc:
        exc.fields = {"new_password": exc.fields["password"]}
        raise
    actor.password_hash = hash_password(values["new_password"])
    actor.end_sessions()  # other browsers signed in as this person are signed out
    audit.record(actor, "user.password_change", "user", actor.id)
    notifications.notify(actor.id, "security", _("Your password was changed."))


# --- administration -------------------------------------------------------------------

def create_user(actor: User, data: Mapping) -> User:
    require_admin(actor)
    return _new_user(actor, data)


def bootstrap_admin(data: Mapping) -> User:
    """The first administrator, from the command line (no acting user yet)."""
    return _new_user(None, {**data, "is_admin": True})


def _new_user(actor: User | None, data: Mapping) -> User:
    values = load(UserCreateSchema(), data)
    values["email"] = values["email"].strip().lower()
    if find_by_email(values["email"]):
        raise Conflict(_("An account with this e-mail already exists."),
                       {"email": [_("Already in use.")]})
    _check_password(values["password"], values["email"])
    user = User(password_hash=hash_password(values.pop("password")), **values)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", "user", user.id, after=snapshot(user))
    return user


def update_user(actor: User, user: User, data: Mapping) -> User:
    require_admin(actor)
    values = load(UserUpdateSchema(), data, partial=True)
    if "email" in values:
        values["email"] = values["email"].strip().lower()
        other = find_by_email(values["email"])
        if other is not None and other.id != user.id:
            raise Conflict(_("An account with this e-mail already exists."),
                           {"email": [_("Already in use.")]})
    if user.id == actor.id and (values.get("active") is False or values.get("is_admin") is False):
        raise ValidationError(_("You cannot deactivate yourself or drop your own administrator "
                                "rights."))
    before = snapshot(user)
    for key, value in values.items():
        setattr(user, key, value)
    after = snapshot(user)
    if after != before:
        action = "user.update"
        if before["active"] != after["active"]:
            action = "user.activate" if after["active"] else "user.deactivate"
        audit.record(actor, action, "user", user.id, before=before, after=after)
        db.session.flush()
        from app.core import signals

        if before["active"] and not after["active"]:
            user.end_sessions()
            end_user_sockets(user.id)
            signals.user_deactivated.send(user, actor=actor)
    return user


def set_active(actor: User, user: User, active: bool) -> User:
    return update_user(actor, user, {"active": active})


def reset_password(actor: User, user: User, data: Mapping) -> None:
    require_admin(actor)
    values = load(PasswordResetSchema(), data)
    _check_password(values["password"], user.email)
    user.password_hash = hash_password(values["password"])
    user.end_sessions()
    end_user_sockets(user.id)
    audit.record(actor, "user.password_reset", "user", user.id)
    notifications.notify(user.id, "security", _("An administrator set a new password for you."))


def users_query(search: str | None = None, include_inactive: bool = True):
    stmt = select(User).order_by(User.name, User.id)
    if search:
        q = search.strip().lower()
        stmt = stmt.where(func.lower(User.name).contains(q, autoescape=True)
                          | func.lower(User.email).contains(q, autoescape=True))
    if not include_inactive:
        stmt = stmt.where(User.active.is_(True))
    return stmt


# --- API tokens -----------------------------------------------------------------------

def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(actor: User, data: Mapping) -> tuple[ApiToken, str]:
    """A new personal token; the plain text is returned once and never stored."""
    values = load(TokenCreateSchema(), data)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=actor.id, name=values["name"], prefix=plain[:10],
                     token_hash=_digest(plain))
    db.session.add(token)
    db.session.flush()
    audit.record(actor, "token.create", "api_token", token.id, after={"name": token.name})
    notifications.notify(actor.id, "security",
                         _("A new API token “%(name)s” was created.", name=token.name),
                         url="/account/tokens")
    return token, plain


def tokens_of(actor: User) -> list[ApiToken]:
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == actor.id).order_by(ApiToken.created_at.desc())))


def revoke_token(actor: User, token_id: int) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != actor.id:
        raise NotFound(_("No such token."))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        end_token_sockets(token.id)
        audit.record(actor, "token.revoke", "api_token", token.id, before={"name": token.name})
    return token


def user_for_token(plain: str) -> User | None:
    """The active owner of a live token, or None."""
    token = live_token(plain)
    return token.user if token is not None else None


def live_token(plain: str) -> ApiToken | None:
    """The unrevoked token of an active account with this secret, or None."""
    if not plain or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    token = db.session.scalar(select(ApiToken).options(joinedload(ApiToken.user))
                              .where(ApiToken.token_hash == _digest(plain)))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    now = utcnow()
    # Touch at most once a minute so reads stay reads.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
    return token
