"""Jinja filters and globals shared by every module's templates."""

from __future__ import annotations

from datetime import datetime

from flask import Flask, current_app, request
from flask_babel import format_datetime, get_locale
from flask_login import current_user

from app.core import notifications
from app.core.money import format_money


def register(app: Flask) -> None:
    from app.core.services import is_admin

    app.jinja_env.globals.update(zip=zip, is_admin=is_admin)

    @app.template_filter("dt")
    def dt(value: datetime | None, fmt: str = "medium") -> str:
        return format_datetime(value, fmt) if value else "—"

    app.add_template_filter(format_money, "money")

    @app.template_filter("filesize")
    def filesize(n: int) -> str:
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1024 or unit == "GB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1024

    @app.context_processor
    def shell():
        from app.core import nav_items

        # Fragments (htmx) have no bell to fill.
        unread = notifications.unread_count(current_user.id) \
            if current_user.is_authenticated and not request.headers.get("HX-Request") else 0
        return {
            "nav": nav_items(current_app),
            "unread_notifications": unread,
            "languages": current_app.config["LANGUAGES"],
            "current_language": str(get_locale() or "en"),
        }
