"""Sign-in is required everywhere except the few views marked public."""

from __future__ import annotations

from flask import Flask, g, redirect, request, url_for
from flask_login import current_user


def public(view):
    """Mark a view as reachable without signing in."""
    view._crm_public = True
    return view


def register(app: Flask) -> None:
    @app.before_request
    def require_sign_in():
        if request.path.startswith("/api/") or request.endpoint in (None, "static"):
            return None  # the API authenticates by token; 404s render as usual
        view = app.view_functions.get(request.endpoint)
        if getattr(view, "_crm_public", False) or current_user.is_authenticated:
            return None
        g.login_required = True
        if request.headers.get("HX-Request"):
            return "", 401, {"HX-Redirect": url_for("core.login")}
        return redirect(url_for("core.login", next=request.full_path.rstrip("?")))
