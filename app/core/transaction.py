"""One commit per request, in one place: commit on success, roll back otherwise.

Also the headers every response carries.
"""

from __future__ import annotations

from flask import Flask, Response

from app.extensions import db

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "font-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
       "base-uri 'self'; form-action 'self'")


def register(app: Flask) -> None:
    @app.after_request
    def commit_or_rollback(response: Response) -> Response:
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        return response

    @app.teardown_request
    def rollback_on_error(exc):
        if exc is not None:
            db.session.rollback()

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response
