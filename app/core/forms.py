"""Shaping what a page's form sends before a service's schema reads it, and the reader's
time zone. What cannot be read is passed on as typed, so the schema says what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import to_user_timezone

MAX_ID = 2**31 - 1  # row ids are 32-bit integers on PostgreSQL


def zone_of(user) -> ZoneInfo:
    """A person's time zone; UTC when theirs is unknown."""
    try:
        return ZoneInfo(getattr(user, "timezone", None) or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_input(value: datetime | None) -> str:
    """A stored UTC time as a datetime-local field value in the reader's zone."""
    return to_user_timezone(value).strftime("%Y-%m-%dT%H:%M") if value else ""


def utc_from_local(value: str | None, user=None):
    """A datetime-local field (the user's zone, the signed-in person's by default) as aware
    UTC in ISO form."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        if user is None:
            from flask_login import current_user as user
        moment = moment.replace(tzinfo=zone_of(user))
    return moment.astimezone(UTC).isoformat()


def form_int(value: str | None):
    """An id or a whole number: empty is none; what is not one in range is passed on."""
    value = (value or "").strip()
    if not value:
        return None
    return int(value) if value.isdigit() and int(value) <= MAX_ID else value
