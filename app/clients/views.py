"""Pages of the client base."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user

from app.clients import bp, services
from app.extensions import db


@bp.get("/")
def index():
    companies = db.session.scalars(services.search_companies(current_user, "")).all()
    return render_template("clients/index.html", companies=companies)
