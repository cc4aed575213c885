"""The organisation chart: the base every other module hangs from."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_babel import lazy_gettext as _l

bp = Blueprint("orgchart", __name__, url_prefix="/org", template_folder="templates")


def register(app: Flask) -> None:
    from app.core import add_home_card, add_nav, signals
    from app.core.api_base import api
    from app.core.services import register_admin_source
    from app.orgchart import api as org_api
    from app.orgchart import demo, io_views, services, views  # noqa: F401 - routes, demo

    app.register_blueprint(bp)
    for blp in org_api.ALL:
        api.register_blueprint(blp)
    add_nav(app, "orgchart.board", _l("Organisation chart"), "diagram-3")
    add_home_card(app, "orgchart/_home_card.html", views.home_card)
    register_admin_source(services.administers)
    signals.user_deactivated.connect(services.on_user_deactivated)
