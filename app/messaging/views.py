"""Pages of the mail: folders, a thread, compose, lists, labels, settings."""

from __future__ import annotations

from flask import render_template

from app.messaging import bp


@bp.route("/")
def inbox():
    return render_template("messaging/placeholder.html")
