"""Rules of the organisation chart: who may change it, and how; what others ask of it.

Services for other modules: superiors_of, subordinates_of, can_manage, holders_of,
capability, scope_of, can_see_all; and the workload provider interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.core import audit, signals
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.models import User
from app.core.money import to_minor
from app.core.services import is_admin, load, require_admin
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart.models import Assignment, Capability, Post, Setting, Unit
from app.orgchart.schemas import (
    AssignmentIn,
    AssignmentUpdate,
    CapabilityIn,
    PostIn,
    ThresholdsIn,
    UnitIn,
)

CAPABILITIES = {
    "approve_expenses": _l("Approve expenses up to an amount"),
    "pay": _l("Pay approved expenses"),
    "manage_chart": _l("Manage the organisation chart"),
    "administer_stats": _l("Administer statistics"),
    "see_all_clients": _l("See all clients"),
    "administer": _l("Administer the CRM"),
    "broadcast": _l("Send broadcasts to all staff or a unit"),
}
AMOUNT_CAPABILITIES = {"approve_expenses"}
# Only administrators grant these, or put people on posts that carry "administer":
# otherwise a chart editor could make themselves an administrator.
PRIVILEGED = {"administer", "manage_chart"}
DEFAULT_THRESHOLDS = {"overloaded_at": 15, "underloaded_at": 2}


# --- questions other modules ask -------------------------------------------------------

def holders_of(post: Post | int) -> charts.Holding:
    chart = charts.load()
    post = chart.posts.get(post if isinstance(post, int) else post.id)
    if post is None:
        raise NotFound(_("No such post."))
    return chart.holding(post)


def superiors_of(user: User) -> list[User]:
    return charts.load().superiors_of(user.id)


def subordinates_of(user: User) -> list[User]:
    return charts.load().subordinates_of(user.id)


def can_manage(actor: User, user: User) -> bool:
    """May the actor direct this person (assign work, see their load)?"""
    if is_admin(actor):
        return True
    return any(u.id == user.id for u in subordinates_of(actor))


def scope_of(user: User) -> set[int]:
    return charts.load().scope(user.id)


@dataclass(frozen=True)
class Grant:
    name: str
    amount_minor: int | None = None
    currency: str | None = None


def capability(user: User, name: str, currency: str | None = None) -> Grant | None:
    """The capability a person has through the posts they hold (own or from above);
    for money capabilities, the largest amount (in `currency` when given)."""
    if user is None or not user.is_active:
        return None
    post_ids = [p.id for p in charts.load().effective_posts(user.id)]
    if not post_ids:
        return None
    rows = _capabilities_of(tuple(post_ids))
    found = [c for c in rows if c.name == name and (currency is None or c.currency == currency)]
    if not found:
        return None
    best = max(found, key=lambda c: c.amount_minor or 0)
    return Grant(name, best.amount_minor, best.currency)


def _capabilities_of(post_ids: tuple[int, ...]) -> list[Capability]:
    from flask import g, has_app_context

    cache = g.setdefault("_cache_org_caps", {}) if has_app_context() else {}
    if post_ids not in cache:
        cache[post_ids] = list(db.session.scalars(
            select(Capability).where(Capability.post_id.in_(post_ids))))
    return cache[post_ids]


def administers(user: User) -> bool:
    """Holding a post with the "administer" capability makes one an administrator."""
    return capability(user, "administer") is not None


def can_edit_chart(user: User) -> bool:
    return is_admin(user) or capability(user, "manage_chart") is not None


def is_executive(user: User) -> bool:
    """Holds the head of a company or a post in the Executive division (number 7)."""
    chart = charts.load()
    for post in chart.effective_posts(user.id):
        unit = chart.units[post.unit_id]
        if (unit.kind == "company" and post.is_head) or any(
                u.number == "7" and u.kind == "division" for u in chart.path(unit.id)):
            return True
    return False


def can_see_all(user: User) -> bool:
    return is_admin(user) or is_executive(user)


def _require_editor(actor: User) -> None:
    if not can_edit_chart(actor):
        raise PermissionDenied(_("Only administrators and holders of a post that manages the "
                                 "chart may change it."))


def _guard_privileged_post(actor: User, post_id: int) -> None:
    """Who holds a post that administers the CRM is for administrators to decide."""
    if any(c.name == "administer" for c in _capabilities_of((post_id,))):
        require_admin(actor)


def _changed() -> None:
    charts.forget()
    from flask import g, has_app_context

    if has_app_context():
        g.pop("_cache_org_caps", None)


# --- units --------------------------------------------------------------------------------

def get_unit(unit_id: int, *, live: bool = True) -> Unit:
    unit = db.session.get(Unit, unit_id)
    if unit is None or (live and unit.archived):
        raise NotFound(_("No such unit."))
    return unit


def _unit_snapshot(unit: Unit) -> dict:
    return {"name": unit.name, "kind": unit.kind, "parent_id": unit.parent_id,
            "number": unit.number, "position": unit.position}


def _check_top(parent_id: int | None, kind: str) -> None:
    if parent_id is None and kind != "company":
        raise ValidationError(_("Only a company stands at the top."),
                              {"parent_id": [_("Choose where the unit belongs.")]})


def _created(actor: User, row, action: str, snapshot: dict):
    """Store a new unit, post or assignment, audit it, and add it to the snapshot."""
    db.session.add(row)
    db.session.flush()
    audit.record(actor, action, row.__tablename__, row.id, after=snapshot(row))
    charts.added(row)
    return row


def create_unit(actor: User, data: Mapping) -> Unit:
    _require_editor(actor)
    values = load(UnitIn(), data)
    _check_top(values["parent_id"], values["kind"])
    if values["parent_id"] is not None:
        get_unit(values["parent_id"])
    return _created(actor, Unit(**values), "org.unit.create", _unit_snapshot)


def update_unit(actor: User, unit_id: int, data: Mapping) -> Unit:
    """Rename, renumber, reorder or move a unit (never under itself)."""
    _require_editor(actor)
    unit = get_unit(unit_id)
    values = load(UnitIn(), data, partial=True)
    new_parent = values.get("parent_id", unit.parent_id)
    _check_top(new_parent, values.get("kind", unit.kind))
    if new_parent is not None and new_parent != unit.parent_id:
        get_unit(new_parent)
        if new_parent in charts.load().subtree(unit.id):
            raise ValidationError(_("A unit cannot move under itself or its own sub-units."),
                                  {"parent_id": [_("Choose another place.")]})
    before = _unit_snapshot(unit)
    for key, value in values.items():
        setattr(unit, key, value)
    audit.record(actor, "org.unit.update", "org_unit", unit.id, before=before,
                 after=_unit_snapshot(unit))
    _changed()
    return unit


def archive_unit(actor: User, unit_id: int) -> Unit:
    """Archive a unit with everything below it; its holders leave their posts."""
    _require_editor(actor)
    unit = get_unit(unit_id)
    chart = charts.load()
    now = utcnow()
    unit_ids = chart.subtree(unit.id)
    for uid in unit_ids:
        chart.units[uid].archived_at = now
    _archive_posts(actor, [p for uid in unit_ids for p in chart.unit_posts[uid]], now)
    audit.record(actor, "org.unit.archive", "org_unit", unit.id,
                 before=_unit_snapshot(unit), after={"archived_units": len(unit_ids)})
    _changed()
    return unit


# --- posts --------------------------------------------------------------------------------

def get_post(post_id: int, *, live: bool = True) -> Post:
    post = db.session.get(Post, post_id)
    if post is None or (live and post.archived):
        raise NotFound(_("No such post."))
    return post


def _post_snapshot(post: Post) -> dict:
    return {"title": post.title, "unit_id": post.unit_id, "is_head": post.is_head,
            "position": post.position}


def _check_head(unit_id: int, post_id: int | None) -> None:
    head = charts.load().head.get(unit_id)
    if head is not None and head.id != post_id:
        raise Conflict(_("This unit already has a head post: %(title)s.", title=head.title),
                       {"is_head": [_("One head per unit.")]})


def create_post(actor: User, data: Mapping) -> Post:
    _require_editor(actor)
    values = load(PostIn(), data)
    unit = db.session.get(Unit, values["unit_id"])
    if unit is None:
        raise NotFound(_("No such unit."))
    if unit.archived:
        raise ValidationError(_("The unit is archived."), {"unit_id": [_("The unit is archived.")]})
    if values["is_head"]:
        _check_head(unit.id, None)
    return _created(actor, Post(**values), "org.post.create", _post_snapshot)


def update_post(actor: User, post_id: int, data: Mapping) -> Post:
    _require_editor(actor)
    post = get_post(post_id)
    values = load(PostIn(), data, partial=True)
    unit_id = values.get("unit_id", post.unit_id)
    if unit_id != post.unit_id:
        target = db.session.get(Unit, unit_id)
        if target is None or target.archived:
            raise ValidationError(_("The unit is archived."),
                                  {"unit_id": [_("The unit is archived.")]})
    if values.get("is_head", post.is_head):
        _check_head(unit_id, post.id)
    before = _post_snapshot(post)
    for key, value in values.items():
        setattr(post, key, value)
    audit.record(actor, "org.post.update", "org_post", post.id, before=before,
                 after=_post_snapshot(post))
    _changed()
    return post


def archive_post(actor: User, post_id: int) -> Post:
    _require_editor(actor)
    post = get_post(post_id)
    _archive_posts(actor, [post], utcnow())
    _changed()
    return post


def _archive_posts(actor: User, posts: list[Post], now) -> None:
    """Archive posts and end their assignments, in one statement whatever their number."""
    for post in posts:
        post.archived_at = now
        audit.record(actor, "org.post.archive", "org_post", post.id, before=_post_snapshot(post))
    if posts:
        db.session.execute(update(Assignment)
                           .where(Assignment.post_id.in_([p.id for p in posts]),
                                  Assignment.ended_at.is_(None))
                           .values(ended_at=now).execution_options(synchronize_session=False))


# --- people on posts ----------------------------------------------------------------------

def get_assignment(assignment_id: int) -> Assignment:
    a = db.session.get(Assignment, assignment_id)
    if a is None:
        raise NotFound(_("No such assignment."))
    return a


def assign(actor: User, data: Mapping) -> Assignment:
    _require_editor(actor)
    values = load(AssignmentIn(), data)
    post = get_post(values["post_id"])
    user = db.session.get(User, values["user_id"])
    if user is None:
        raise NotFound(_("No such person."))
    if not user.is_active:
        raise ValidationError(_("A deactivated account cannot hold a post."),
                              {"user_id": [_("The account is deactivated.")]})
    _guard_privileged_post(actor, post.id)
    if any(a.user_id == user.id for a in charts.load().own[post.id]):
        raise Conflict(_("%(name)s already holds this post.", name=user.name))
    a = Assignment(post_id=post.id, user_id=user.id, acting=values["acting"], started_at=utcnow())
    db.session.add(a)
    db.session.flush()
    audit.record(actor, "org.assign", "org_post", post.id,
                 after={"user_id": user.id, "acting": a.acting, "assignment_id": a.id})
    charts.added(a)
    signals.post_holder_added.send(a, actor=actor)
    return a


def update_assignment(actor: User, assignment_id: int, data: Mapping) -> Assignment:
    _require_editor(actor)
    a = get_assignment(assignment_id)
    if a.ended_at is not None:
        raise ValidationError(_("This assignment has ended."))
    values = load(AssignmentUpdate(), data)
    before = {"acting": a.acting}
    a.acting = values["acting"]
    audit.record(actor, "org.assignment.update", "org_post", a.post_id, before=before,
                 after={"acting": a.acting, "assignment_id": a.id})
    _changed()
    return a


def end_assignment(actor: User, assignment_id: int) -> Assignment:
    _require_editor(actor)
    a = get_assignment(assignment_id)
    _guard_privileged_post(actor, a.post_id)
    if a.ended_at is None:
        a.ended_at = utcnow()
        audit.record(actor, "org.unassign", "org_post", a.post_id,
                     before={"user_id": a.user_id, "assignment_id": a.id})
        _changed()
        signals.post_holder_removed.send(a, actor=actor)
    return a


def leave_all_posts(user: User, actor: User | None) -> int:
    """A person who leaves gives up their posts; the posts are then held from above."""
    now, ended = utcnow(), []
    for a in db.session.scalars(select(Assignment).where(Assignment.user_id == user.id,
                                                         Assignment.ended_at.is_(None))):
        a.ended_at = now
        ended.append(a)
        audit.record(actor, "org.unassign", "org_post", a.post_id,
                     before={"user_id": user.id, "assignment_id": a.id, "reason": "deactivated"})
    _changed()
    for a in ended:
        signals.post_holder_removed.send(a, actor=actor)
    return len(ended)


def on_user_deactivated(user: User, actor: User | None = None, **kwargs) -> None:
    leave_all_posts(user, actor)


# --- capabilities ---------------------------------------------------------------------------

def capabilities_of_post(post_id: int) -> list[Capability]:
    return list(db.session.scalars(select(Capability).where(Capability.post_id == post_id)
                                   .order_by(Capability.name)))


def set_capability(actor: User, post_id: int, data: Mapping) -> Capability:
    _require_editor(actor)
    post = get_post(post_id)
    values = load(CapabilityIn(), data)
    if values["name"] in PRIVILEGED:
        require_admin(actor)
    _guard_privileged_post(actor, post.id)
    amount = values.get("amount")
    currency = values["currency"].upper() if amount is not None else None
    minor = to_minor(amount, currency) if amount is not None else None
    cap = db.session.scalar(select(Capability).where(Capability.post_id == post.id,
                                                     Capability.name == values["name"]))
    before = {"amount_minor": cap.amount_minor, "currency": cap.currency} if cap else None
    if cap is None:
        cap = Capability(post_id=post.id, name=values["name"])
        db.session.add(cap)
    cap.amount_minor, cap.currency = minor, currency
    db.session.flush()
    audit.record(actor, "org.capability.set", "org_post", post.id, before=before,
                 after={"name": cap.name, "amount_minor": minor, "currency": currency})
    _changed()
    return cap


def remove_capability(actor: User, post_id: int, name: str) -> None:
    _require_editor(actor)
    post = get_post(post_id)
    cap = db.session.scalar(select(Capability).where(Capability.post_id == post.id,
                                                     Capability.name == name))
    if cap is None:
        raise NotFound(_("The post has no such capability."))
    if name in PRIVILEGED:
        require_admin(actor)
    audit.record(actor, "org.capability.remove", "org_post", post.id,
                 before={"name": name, "amount_minor": cap.amount_minor, "currency": cap.currency})
    db.session.delete(cap)
    _changed()


# --- workload -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkloadProvider:
    key: str
    label: object
    by_user: Callable[[list[int]], dict[int, int]] | None = None
    by_post: Callable[[list[int]], dict[int, int]] | None = None


_providers: dict[str, WorkloadProvider] = {}


def register_workload_provider(key: str, label, *, by_user=None, by_post=None) -> None:
    """Modules add counts to the load: each function takes ids and answers {id: count}
    in one query for all of them."""
    _providers[key] = WorkloadProvider(key, label, by_user, by_post)


def providers() -> list[WorkloadProvider]:
    return list(_providers.values())


def thresholds() -> dict[str, int]:
    rows = {s.key: s.value for s in db.session.scalars(select(Setting))}
    return {k: rows.get(k, v) for k, v in DEFAULT_THRESHOLDS.items()}


def set_thresholds(actor: User, data: Mapping) -> dict[str, int]:
    _require_editor(actor)
    values = load(ThresholdsIn(), data)
    before = thresholds()
    for key, value in values.items():
        row = db.session.get(Setting, key) or Setting(key=key)
        row.value = value
        db.session.add(row)
    audit.record(actor, "org.thresholds", "org_setting", None, before=before, after=values)
    return values


@dataclass
class LoadRow:
    kind: str  # "user" or "post"
    id: int
    name: str
    load: int
    parts: dict[str, int]
    flag: str | None


def workload(actor: User) -> tuple[list[LoadRow], list[LoadRow]]:
    """People and posts the actor may see, with their load and flags."""
    chart = charts.load()
    people = chart.people()
    if can_see_all(actor):
        user_ids = list(people)
        post_ids = list(chart.posts)
    else:
        visible = {u.id for u in chart.subordinates_of(actor.id)} | {actor.id}
        user_ids = [uid for uid in people if uid in visible] or [actor.id]
        post_ids = sorted({p.id for post in chart.effective_posts(actor.id)
                           for p in [post, *chart.posts_below(post)]})
    names = {uid: people[uid].name if uid in people else actor.name for uid in user_ids}
    limits = thresholds()

    def flag(value: int) -> str | None:
        if value > limits["overloaded_at"]:
            return "overloaded"
        if value < limits["underloaded_at"]:
            return "underloaded"
        return None

    user_parts = {uid: {} for uid in user_ids}
    post_parts = {pid: {} for pid in post_ids}
    for p in _providers.values():
        if p.by_user:
            for uid, n in p.by_user(user_ids).items():
                if uid in user_parts:
                    user_parts[uid][p.key] = n
        if p.by_post:
            for pid, n in p.by_post(post_ids).items():
                if pid in post_parts:
                    post_parts[pid][p.key] = n
    users = [LoadRow("user", uid, names[uid], sum(user_parts[uid].values()), user_parts[uid],
                     flag(sum(user_parts[uid].values()))) for uid in user_ids]
    has_post_load = any(p.by_post for p in _providers.values())
    posts = [LoadRow("post", pid, chart.posts[pid].title, sum(post_parts[pid].values()),
                     post_parts[pid], flag(sum(post_parts[pid].values())) if has_post_load else None)
             for pid in post_ids]
    users.sort(key=lambda r: (-r.load, r.name))
    posts.sort(key=lambda r: (-r.load, r.name))
    return users, posts


def _posts_held(user_ids: list[int]) -> dict[int, int]:
    chart = charts.load()
    return {uid: len(chart.effective_posts(uid)) for uid in user_ids}


register_workload_provider("posts_held", _l("Posts held"), by_user=_posts_held)
