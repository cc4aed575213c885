"""The client base: companies and holdings, contacts, the history of the relationship and
its next step, leads, deals in pipelines, significant dates."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_babel import lazy_gettext as _l

bp = Blueprint("clients", __name__, url_prefix="/clients", template_folder="templates")


def register(app: Flask) -> None:
    import app.clients.report_views as _reports  # noqa: F401 - reports, greetings
    import app.clients.webform as _webform  # noqa: F401 - the public lead form
    from app.clients import api as clients_api
    from app.clients import (  # noqa: F401 - routes, jobs, tables, import and export pages
        demo,
        import_views,
        jobs,
        models,
        services,
        views,
    )
    from app.core import add_nav, links, signals
    from app.core.api_base import api

    app.register_blueprint(bp)
    for blp in clients_api.ALL:
        api.register_blueprint(blp)
    add_nav(app, "clients.index", _l("Clients"), "building")
    links.register("client", _l("Client"), services.link_company)
    links.register("deal", _l("Deal"), services.link_deal)
    links.register("pipeline", _l("Pipeline"), services.link_pipeline, linkable=False,
                   choices=lambda actor: [(p.id, p.name) for p in services.pipelines()])
    signals.message_sent_external.connect(services.on_message_sent_external)
