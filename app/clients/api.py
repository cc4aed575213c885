"""JSON API of the client base under /api/v1/clients."""

from __future__ import annotations

ALL: list = []  # flask-smorest blueprints, registered by app.clients.register
