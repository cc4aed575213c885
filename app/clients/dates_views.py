"""A greeting sent from a contact's page (significant dates remind by app.clients.jobs).

The contact page shows the form with `{% include "clients/_greeting_form.html" %}`; the
form lists the templates from `greeting_templates()`, which this module gives the client
base's templates."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.clients import bp, services
from app.core.errors import DomainError
from app.extensions import db


@bp.context_processor
def greeting_choices():
    return {"greeting_templates": services.greeting_templates}


def _id(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else (value or None)


@bp.post("/contacts/<int:contact_id>/greeting")
def contact_greeting(contact_id: int):
    """Queue a greeting e-mail to the contact from the chosen template."""
    back = url_for("clients.contact", contact_id=contact_id)
    data = {"template_id": _id(request.form.get("template_id")),
            "company_id": _id(request.form.get("company_id"))}
    try:
        services.send_greeting(current_user, contact_id, data)
    except DomainError as exc:
        if exc.status == 404:
            raise
        db.session.rollback()
        details = " ".join(m for msgs in exc.fields.values() for m in msgs)
        flash(details or exc.message, "danger")
        return redirect(back + "#greeting")
    flash(_("The greeting is on its way."), "success")
    return redirect(back + "#greeting")
