"""The clock every module asks for the time; tests freeze or move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_fixed: datetime | None = None


def utcnow() -> datetime:
    """Aware UTC now, or the frozen time while a test holds the clock."""
    return _fixed if _fixed is not None else datetime.now(UTC)


def freeze(at: datetime) -> None:
    global _fixed
    _fixed = at if at.tzinfo else at.replace(tzinfo=UTC)


def advance(delta: timedelta) -> None:
    freeze(utcnow() + delta)


def release() -> None:
    global _fixed
    _fixed = None
