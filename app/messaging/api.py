"""JSON API of the mail under /api/v1."""

from __future__ import annotations

ALL: list = []  # flask-smorest blueprints, registered by app.messaging.register
