"""Password hashing (argon2) and the password policy."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import gettext as _

MIN_LENGTH = 10
_hasher = PasswordHasher()
# Verified against when the account is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@cache
def _common_passwords() -> frozenset[str]:
    path = Path(__file__).parent / "data" / "common-passwords.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return frozenset(line.strip().lower() for line in f if line.strip())


def policy_errors(password: str, email: str | None = None) -> list[str]:
    """Reasons a password is refused; an empty list means it is acceptable."""
    errors = []
    if len(password) < MIN_LENGTH:
        errors.append(_("Use at least %(n)d characters.", n=MIN_LENGTH))
    lowered = password.strip().lower()
    if email and (lowered == email.lower() or lowered == email.split("@")[0].lower()):
        errors.append(_("The password must not be your e-mail address."))
    if lowered in _common_passwords():
        errors.append(_("This password is too common."))
    return errors
