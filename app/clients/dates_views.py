"""Greetings sent from a contact's page (significant dates remind by app.clients.jobs)."""

from __future__ import annotations
