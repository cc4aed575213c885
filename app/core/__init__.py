"""Core: accounts, auth, audit, attachments, notifications, jobs, the API base, the shell."""

from __future__ import annotations

from flask import Flask, url_for
from flask_babel import lazy_gettext as _l


def register(app: Flask) -> None:
    from app.core import access, mail, realtime  # noqa: F401 - registers jobs and socket handlers
    from app.core.api import ALL as core_apis
    from app.core.api_base import api
    from app.core.templating import register as register_templating
    from app.core.views import bp
    from app.extensions import db, login_manager

    login_manager.login_view = "core.login"
    login_manager.login_message = _l("Sign in to continue.")
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str):
        from app.core.models import User

        user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
        return user if user is not None and user.is_active else None

    access.register(app)
    register_templating(app)
    app.register_blueprint(bp)
    api.init_app(app)
    for blp in core_apis:
        api.register_blueprint(blp)
    app.extensions["crm_nav"] = []
    add_nav(app, "core.home", _l("Home"), "house")


def add_nav(app: Flask, endpoint: str, label, icon: str) -> None:
    """A module's entry in the top navigation (label lazily translated, Bootstrap icon)."""
    app.extensions["crm_nav"].append((endpoint, label, icon))


def nav_items(app: Flask) -> list[tuple[str, str, str]]:
    return [(url_for(endpoint), label, icon) for endpoint, label, icon in app.extensions["crm_nav"]]
