"""Pages of tasks and programmes."""

from __future__ import annotations

from flask import render_template

from app.tasks import bp, services


@bp.get("/")
def my_day():
    from flask_login import current_user

    return render_template("tasks/my_day.html", day=services.my_day(current_user))
