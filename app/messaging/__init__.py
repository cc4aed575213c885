"""Internal mail: to people, posts, units and lists; live, searchable, never lost."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_babel import lazy_gettext as _l

bp = Blueprint("messaging", __name__, url_prefix="/mail", template_folder="templates")


def register(app: Flask) -> None:
    from app.core import add_nav, feed, links, signals
    from app.core.api_base import api
    from app.messaging import (  # noqa: F401 - routes, sockets, jobs, tables
        analytics_views,
        demo,
        events,
        jobs,
        models,
        search_views,
        services,
        views,
    )
    from app.messaging import api as mail_api
    from app.orgchart import services as org

    app.register_blueprint(bp)
    for blp in mail_api.ALL:
        api.register_blueprint(blp)
    add_nav(app, "messaging.inbox", _l("Mail"), "envelope")
    signals.post_holder_added.connect(services.on_post_holder_added)
    feed.register_counter("mail_unread", services.unread_counts)
    links.register("message", _l("Message"), _message_link)
    org.register_workload_provider("mail_unanswered", _l("Unanswered requests"),
                                   by_user=services.unanswered_by_user,
                                   by_post=services.unanswered_by_post)


def _message_link(actor, message_id: int):
    """A message as a linked record (a task made from it): its subject and thread page, for
    those who have it in their mailbox."""
    from flask_babel import gettext as _

    from app.core.errors import NotFound
    from app.messaging import services
    from app.messaging.jobs import thread_path

    try:
        msg = services.box_of(actor, message_id).message
    except NotFound:
        return None
    return msg.subject or _("(no subject)"), thread_path(msg.id)
