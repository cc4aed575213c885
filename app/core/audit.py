"""The append-only audit log: who changed what, when, from where, before and after."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from sqlalchemy import event, select
from sqlalchemy.orm import selectinload

from app.core.clock import utcnow
from app.core.errors import PermissionDenied
from app.core.models import AuditEvent, User
from app.extensions import db


def record(
    actor: User | None,
    action: str,
    entity_type: str,
    entity_id: Any = None,
    *,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    ev = AuditEvent(
        at=utcnow(),
        actor_id=actor.id if actor else None,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
        address=request.remote_addr if has_request_context() else None,
    )
    db.session.add(ev)
    return ev


def query(filters: dict):
    """A select() of audit events matching the filters, newest first; the caller paginates."""
    stmt = (select(AuditEvent).options(selectinload(AuditEvent.actor))
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))
    if filters.get("actor_id"):
        stmt = stmt.where(AuditEvent.actor_id == filters["actor_id"])
    if filters.get("action"):
        stmt = stmt.where(AuditEvent.action == filters["action"])
    if filters.get("entity_type"):
        stmt = stmt.where(AuditEvent.entity_type == filters["entity_type"])
    if filters.get("entity_id"):
        stmt = stmt.where(AuditEvent.entity_id == str(filters["entity_id"]))
    if filters.get("since"):
        stmt = stmt.where(AuditEvent.at >= filters["since"])
    if filters.get("until"):
        stmt = stmt.where(AuditEvent.at < filters["until"])
    return stmt


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


@event.listens_for(AuditEvent, "before_update")
def _refuse_update(mapper, connection, target):
    raise PermissionDenied("The audit log is append-only.")


@event.listens_for(AuditEvent, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise PermissionDenied("The audit log is append-only.")
