"""Notifications: a row per user, pushed live to the user's sockets after commit."""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import force_locale
from sqlalchemy import func, select, update

from app.core.clock import utcnow
from app.core.models import Notification, User
from app.core.realtime import emit_to_user
from app.core.schemas import NotificationReadSchema
from app.extensions import db


def notify(user_id: int, kind: str, title, body="", url: str | None = None) -> Notification:
    """A notification row, pushed live. A lazy title or body (lazy_gettext) is put in the
    recipient's language, not the one of whoever caused it."""
    if not (isinstance(title, str) and isinstance(body, str)):
        user = db.session.get(User, user_id)
        with force_locale((user.language if user else None) or "en"):
            title, body = str(title), str(body)
    note = Notification(user_id=user_id, kind=kind, title=title[:300], body=body, url=url)
    db.session.add(note)
    db.session.flush()
    emit_to_user(user_id, "notification", {
        "id": note.id, "kind": kind, "title": note.title, "body": body, "url": url,
        "unread": unread_count(user_id),
    })
    return note


def unread_count(user_id: int) -> int:
    return db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.user_id == user_id, Notification.read_at.is_(None))) or 0


def query_for(user: User):
    return (select(Notification).where(Notification.user_id == user.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc()))


def mark_read(actor: User, data: Mapping) -> int:
    """Mark the given ids (or all) read; only the actor's own notifications are touched."""
    from app.core.services import load

    values = load(NotificationReadSchema(), data)
    stmt = (update(Notification)
            .where(Notification.user_id == actor.id, Notification.read_at.is_(None))
            .values(read_at=utcnow()))
    if not values["all"]:
        stmt = stmt.where(Notification.id.in_(values["ids"] or []))
    changed = db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount
    emit_to_user(actor.id, "notifications_read", {"unread": unread_count(actor.id)})
    return changed
