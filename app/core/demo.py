"""The demo company: each module registers a loader; loading twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from sqlalchemy import select

from app.core.models import User
from app.core.passwords import hash_password
from app.extensions import db

Loader = Callable[[], None]
_loaders: list[tuple[int, str, Loader]] = []
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed for the demo on purpose
DEMO_PEOPLE = [
    ("admin@demo.crm", "Anna Administrator", True, "en"),
    ("ceo@demo.crm", "Boris Executive", False, "ru"),
    ("sales@demo.crm", "Svetlana Sales", False, "ru"),
    ("finance@demo.crm", "Fyodor Finance", False, "en"),
    ("staff@demo.crm", "Olga Staff", False, "en"),
]


def demo_loader(order: int, name: str) -> Callable[[Loader], Loader]:
    def register(fn: Loader) -> Loader:
        _loaders.append((order, name, fn))
        return fn

    return register


def load_all() -> list[str]:
    done = []
    for _order, name, fn in sorted(_loaders, key=lambda x: x[0]):
        fn()
        db.session.commit()
        done.append(name)
    return done


@cache
def _demo_hash() -> str:
    return hash_password(DEMO_PASSWORD)  # one argon2 hash for all demo accounts


def ensure_user(email: str, name: str, *, is_admin: bool = False, language: str = "en",
                timezone: str = "Europe/Moscow") -> User:
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name, is_admin=is_admin, language=language,
                    timezone=timezone, password_hash=_demo_hash())
        db.session.add(user)
        db.session.flush()
        from app.core import audit
        from app.core.services import snapshot

        audit.record(None, "user.create", "user", user.id, after=snapshot(user))
    return user


@demo_loader(0, "accounts")
def load_accounts() -> None:
    from app.core import notifications
    from app.core.models import Notification

    for email, name, is_admin, language in DEMO_PEOPLE:
        user = ensure_user(email, name, is_admin=is_admin, language=language)
        if db.session.scalar(select(Notification.id).where(Notification.user_id == user.id)
                             .limit(1)) is None:
            notifications.notify(user.id, "welcome", "Welcome to the CRM",
                                 "Your account is ready. Set your time zone in My account.",
                                 url="/account")
