"""Socket.IO events of the mail. Each runs like a request (app.core.realtime.socket_event):
the signed-in person, one commit, an error answer on bad input. What recipients see
comes through their feed (app.core.feed), after commit."""

from __future__ import annotations

from app.core.realtime import socket_event
from app.messaging import services


@socket_event("mail.send")
def send(user, data: dict) -> dict:
    """{"to": [...], "subject", "body", "kind", ..., "local_id"}: a resend of the same
    local id answers with the first message and delivers nothing new."""
    msg = services.send(user, data)
    return {"message": services.summarize(msg), "local_id": msg.local_id}


@socket_event("mail.read")
def read(user, data: dict) -> dict:
    """{"ids": [...], "read": true|false}"""
    return {"changed": services.mark_read(user, data)}


@socket_event("mail.confirm")
def confirm(user, data: dict) -> dict:
    """{"id": message id}: a directive's recipient confirms it."""
    message_id = data.get("id")
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        from app.core.errors import ValidationError

        raise ValidationError("id: a message id is required.", {"id": ["Not a valid integer."]})
    box = services.confirm(user, message_id)
    return {"id": message_id, "confirmed_at": box.confirmed_at.isoformat()}
