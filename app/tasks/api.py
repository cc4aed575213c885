"""JSON API of tasks and programmes under /api/v1."""

from __future__ import annotations

ALL: list = []  # flask-smorest blueprints, registered by app.tasks.register
