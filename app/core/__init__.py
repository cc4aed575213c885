"""Core: accounts, auth, audit, attachments, notifications, jobs, the API base, the shell."""

from __future__ import annotations

from flask import Flask, url_for
from flask_babel import lazy_gettext as _l
from flask_login import user_loaded_from_cookie
from werkzeug.routing import IntegerConverter


def register(app: Flask) -> None:
    from app.core import access, feed, mail, realtime  # noqa: F401 - registers jobs and socket handlers
    from app.core.api import ALL as core_apis
    from app.core.api_base import api
    from app.core.templating import register as register_templating
    from app.core.views import bp
    from app.extensions import db, login_manager

    app.url_map.converters["int"] = DatabaseInt
    login_manager.login_view = "core.login"
    login_manager.login_message = _l("Sign in to continue.")
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(session_id: str):
        from app.core.models import User

        user_id, _sep, version = session_id.partition(":")
        if not (user_id.isdigit() and version.isdigit()):
            return None
        user = db.session.get(User, int(user_id))
        if user is None or not user.is_active or user.session_version != int(version):
            return None
        return user

    @user_loaded_from_cookie.connect_via(app)
    def restored_from_cookie(sender, user):
        import secrets

        from flask import session

        session["login_id"] = secrets.token_hex(16)  # so sign-out can end its sockets

    access.register(app)
    feed.register_socket_events()
    register_templating(app)
    app.register_blueprint(bp)
    api.init_app(app)
    _guard_api_docs(app)
    for blp in core_apis:
        api.register_blueprint(blp)
    app.extensions["crm_nav"] = []
    add_nav(app, "core.home", _l("Home"), "house")


class DatabaseInt(IntegerConverter):
    """<int:...> in every route stops at the database's integer range: a larger id is a 404."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _guard_api_docs(app: Flask) -> None:
    """The OpenAPI document is for signed-in people and token holders only."""
    from flask_login import current_user

    from app.core.api_base import authenticate_bearer

    @app.before_request
    def docs_need_auth():
        from flask import request

        if request.blueprint == "api-docs" and not current_user.is_authenticated:
            authenticate_bearer()


def add_home_card(app: Flask, template: str, context) -> None:
    """A module's card on the home page: `template` rendered with `context(user)`."""
    app.extensions.setdefault("crm_home_cards", []).append((template, context))


def add_nav(app: Flask, endpoint: str, label, icon: str) -> None:
    """A module's entry in the top navigation (label lazily translated, Bootstrap icon)."""
    app.extensions["crm_nav"].append((endpoint, label, icon))


def nav_items(app: Flask) -> list[tuple[str, str, str]]:
    return [(url_for(endpoint), label, icon) for endpoint, label, icon in app.extensions["crm_nav"]]
