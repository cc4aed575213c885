"""Locale and time-zone selection for Flask-Babel, and the strings of libraries we show."""

from __future__ import annotations

from flask import current_app, g, has_request_context, request, session
from flask_babel import lazy_gettext as _l
from flask_login import current_user


def _user():
    if not has_request_context():
        return None
    api_user = g.get("api_user")
    if api_user is not None:
        return api_user
    return current_user if current_user and current_user.is_authenticated else None


def select_locale() -> str | None:
    languages = current_app.config["LANGUAGES"]
    user = _user()
    if user is not None and user.language in languages:
        return user.language
    if has_request_context():
        chosen = session.get("language")
        if chosen in languages:
            return chosen
        return request.accept_languages.best_match(list(languages))
    return None


def select_timezone() -> str | None:
    user = _user()
    return user.timezone if user is not None else None


# Messages marshmallow and the framework produce, so the catalogue carries them.
LIBRARY_MESSAGES = {
    "Missing data for required field.": _l("Missing data for required field."),
    "Not a valid email address.": _l("Not a valid email address."),
    "Not a valid integer.": _l("Not a valid integer."),
    "Not a valid string.": _l("Not a valid string."),
    "Not a valid boolean.": _l("Not a valid boolean."),
    "Not a valid datetime.": _l("Not a valid datetime."),
    "Field may not be null.": _l("Field may not be null."),
    "Unknown field.": _l("Unknown field."),
    "Invalid input type.": _l("Invalid input type."),
}


def translate_library_message(message: str) -> str:
    known = LIBRARY_MESSAGES.get(message)
    if known is not None:
        return str(known)
    if message.startswith("Longer than maximum length "):
        return str(_l("At most %(n)s characters.", n=message.rsplit(" ", 1)[-1].rstrip(".")))
    if message.startswith("Length must be between") or message.startswith("Shorter than") \
            or message.startswith("Longer than"):
        return str(_l("The length is out of range."))
    if message.startswith("Must be greater than") or message.startswith("Must be less than"):
        return str(_l("The value is out of range."))
    return message
