"""Tasks with ordered steps, and programmes of stages given to posts."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_babel import lazy_gettext as _l

bp = Blueprint("tasks", __name__, url_prefix="/tasks", template_folder="templates")


def register(app: Flask) -> None:
    from app.core import add_nav, feed, links, signals
    from app.core.api_base import api
    from app.orgchart import services as org
    from app.tasks import api as tasks_api
    from app.tasks import demo, jobs, models, services, views  # noqa: F401 - routes, jobs, tables

    app.register_blueprint(bp)
    for blp in tasks_api.ALL:
        api.register_blueprint(blp)
    add_nav(app, "tasks.my_day", _l("Tasks"), "check2-square")
    signals.post_holder_added.connect(services.on_post_holder_added)
    signals.deal_won.connect(services.on_deal_won)
    signals.post_holder_removed.connect(services.on_post_holder_removed)
    feed.register_counter("tasks_due", services.due_counts)
    links.register("task", _l("Task"), services.resolve_task_link)
    links.register("project", _l("Project"), services.resolve_project)
    links.register_backlinks("tasks", services.backlinks)
    org.register_workload_provider("tasks_open", _l("Open tasks and stages"),
                                   by_user=services.open_by_user, by_post=services.open_by_post)
    org.register_workload_provider("tasks_overdue", _l("Overdue tasks and stages"),
                                   by_user=services.overdue_by_user,
                                   by_post=services.overdue_by_post)
