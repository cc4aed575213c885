"""Links between records of different modules ("this task is about that client").

A module registers a kind of record it can be linked to ("message", "client", "deal",
"project") with a resolver that answers, for a person and an id, the record's title and
page, or None when the record does not exist or the person may not see it. A module that
stores links keeps (kind, id) and asks here; it never imports the other module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import gettext as _

from app.core.errors import ValidationError
from app.core.models import User


@dataclass(frozen=True)
class Link:
    kind: str
    id: int
    title: str
    url: str


Resolver = Callable[[User, int], tuple[str, str] | None]
_kinds: dict[str, tuple[object, Resolver]] = {}
# Kinds other modules name but do not link to (a programme started by a pipeline's won deals):
# kind -> fn(actor) -> [(id, title)] to choose from.
_named: dict[str, Callable[[User], list[tuple[int, str]]]] = {}


def register(kind: str, label, resolve: Resolver, *,
             choices: Callable[[User], list[tuple[int, str]]] | None = None,
             linkable: bool = True) -> None:
    _kinds[kind] = (label, resolve)
    if choices is not None:
        _named[kind] = choices
    if not linkable:
        _unlinkable.add(kind)


_unlinkable: set[str] = set()


def kinds() -> dict[str, object]:
    """{kind: its label} of every kind of record one can link to."""
    return {kind: label for kind, (label, _r) in _kinds.items() if kind not in _unlinkable}


def choices(actor: User, kind: str) -> list[tuple[int, str]]:
    """Records of a kind to choose from (empty when no module offers the kind)."""
    return _named[kind](actor) if kind in _named else []


def resolve(actor: User, kind: str | None, record_id: int | None) -> Link | None:
    """The linked record as the actor may see it; None when absent or out of their sight."""
    if not kind or record_id is None or kind not in _kinds:
        return None
    found = _kinds[kind][1](actor, record_id)
    return Link(kind, record_id, *found) if found else None


def parse(actor: User, token: str | None) -> tuple[str | None, int | None]:
    """"kind:id" checked against what the actor may see; ("", None) for no link."""
    if not token:
        return None, None
    kind, _sep, raw = token.partition(":")
    if raw.isdigit() and len(raw) < 10 and kind not in _unlinkable \
            and resolve(actor, kind, int(raw)) is not None:
        return kind, int(raw)
    raise ValidationError(_("Unknown linked record: %(token)s.", token=token[:40]),
                          {"link": [_("Unknown linked record: %(token)s.", token=token[:40])]})


# Records that point at others, for the others' history (tasks about a client):
# name -> fn(actor, kind, ids) -> [{"at", "kind", "title", "url"}], only what the actor sees.
_backlinks: dict[str, Callable[[User, str, list[int]], list[dict]]] = {}


def register_backlinks(name: str, find: Callable[[User, str, list[int]], list[dict]]) -> None:
    _backlinks[name] = find


def backlinks(actor: User, kind: str, ids: list[int]) -> list[dict]:
    """What every module links to these records, as history items the actor may see."""
    if not ids:
        return []
    return [item for find in _backlinks.values() for item in find(actor, kind, ids)]


def path_for(endpoint: str, fallback: str, **values) -> str:
    """A page's path built from the URL map, in a request or not (jobs, notifications);
    the fallback when the endpoint is not there."""
    from flask import current_app
    from werkzeug.routing import BuildError

    if endpoint not in current_app.view_functions:
        return fallback
    adapter = current_app.url_map.bind(
        "localhost", script_name=current_app.config.get("APPLICATION_ROOT") or "/")
    try:
        return adapter.build(endpoint, values)
    except BuildError:
        return fallback
