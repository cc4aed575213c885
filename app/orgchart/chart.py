"""A snapshot of the live chart loaded in three queries, and the tree rules over it.

Every question about the chart (who holds a post, from above or not; who is above or
below whom; a person's scope) is answered from one snapshot, so pages and services
never query inside a loop. The snapshot lives for one request (flask.g); a service that
creates a row adds it (`added`), any other change drops the snapshot (`forget`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from flask import g, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.core.models import User
from app.extensions import db
from app.orgchart.models import Assignment, Post, Unit


@dataclass(frozen=True)
class Holding:
    """Who does a post: its own holders, or (vacant) the holders of the post above."""

    post: Post
    users: tuple[User, ...]
    from_post: Post | None = None  # set when the post is held from above

    @property
    def vacant(self) -> bool:
        return self.from_post is not None or not self.users


@dataclass
class Chart:
    units: dict[int, Unit]
    posts: dict[int, Post]
    assignments: list[Assignment]
    children: dict[int | None, list[Unit]] = field(default_factory=lambda: defaultdict(list))
    unit_posts: dict[int, list[Post]] = field(default_factory=lambda: defaultdict(list))
    head: dict[int, Post] = field(default_factory=dict)
    own: dict[int, list[Assignment]] = field(default_factory=lambda: defaultdict(list))
    _holding: dict[int, Holding] = field(default_factory=dict)
    _effective: dict[int, list[Post]] | None = None

    def __post_init__(self):
        for unit in sorted(self.units.values(), key=_unit_order):
            self.children[self._parent_key(unit)].append(unit)
        for post in sorted(self.posts.values(), key=_post_order):
            self.unit_posts[post.unit_id].append(post)
            if post.is_head:
                self.head[post.unit_id] = post
        for a in self.assignments:
            if a.post_id in self.posts and a.user.is_active:
                self.own[a.post_id].append(a)

    def _parent_key(self, unit: Unit) -> int | None:
        return unit.parent_id if unit.parent_id in self.units else None

    def add(self, obj: Unit | Post | Assignment) -> None:
        """Take in a row just created, instead of reloading the whole chart."""
        if isinstance(obj, Unit):
            self.units[obj.id] = obj
            siblings = self.children[self._parent_key(obj)]
            siblings.append(obj)
            siblings.sort(key=_unit_order)
        elif isinstance(obj, Post):
            self.posts[obj.id] = obj
            self.unit_posts[obj.unit_id].append(obj)
            self.unit_posts[obj.unit_id].sort(key=_post_order)
            if obj.is_head:
                self.head[obj.unit_id] = obj
        else:
            self.assignments.append(obj)
            if obj.post_id in self.posts and obj.user.is_active:
                self.own[obj.post_id].append(obj)
        self._holding.clear()
        self._effective = None

    # --- the tree ---------------------------------------------------------------------

    def roots(self) -> list[Unit]:
        return self.children[None]

    def ancestors(self, unit_id: int) -> list[Unit]:
        """From the unit's parent up to the root."""
        out, seen = [], {unit_id}
        parent = self.units[unit_id].parent_id
        while parent in self.units and parent not in seen:
            seen.add(parent)
            out.append(self.units[parent])
            parent = self.units[parent].parent_id
        return out

    def subtree(self, unit_id: int) -> list[int]:
        """The unit and every unit below it."""
        out, stack = [], [unit_id]
        while stack:
            uid = stack.pop()
            out.append(uid)
            stack.extend(u.id for u in self.children[uid])
        return out

    def path(self, unit_id: int) -> list[Unit]:
        return [*reversed(self.ancestors(unit_id)), self.units[unit_id]]

    # --- posts and people -------------------------------------------------------------

    def superior_post(self, post: Post) -> Post | None:
        """The head post this post answers to: its unit's head, or for a head post the
        nearest head above its unit."""
        units = self.ancestors(post.unit_id)
        if not post.is_head:
            units = [self.units[post.unit_id], *units]
        for unit in units:
            head = self.head.get(unit.id)
            if head is not None and head.id != post.id:
                return head
        return None

    def holding(self, post: Post) -> Holding:
        """Holders of a post; a vacant post is held from above by the nearest holder."""
        if post.id in self._holding:
            return self._holding[post.id]
        own = tuple(a.user for a in self.own[post.id])
        if own:
            result = Holding(post, own)
        else:
            above, seen = self.superior_post(post), {post.id}
            while above is not None and not self.own[above.id] and above.id not in seen:
                seen.add(above.id)
                above = self.superior_post(above)
            users = tuple(a.user for a in self.own[above.id]) if above is not None else ()
            result = Holding(post, users, above)
        self._holding[post.id] = result
        return result

    def effective_posts(self, user_id: int) -> list[Post]:
        """Posts a person holds, their own and the vacant ones they hold from above."""
        if self._effective is None:
            eff: dict[int, list[Post]] = defaultdict(list)
            for post in self.posts.values():
                for user in self.holding(post).users:
                    eff[user.id].append(post)
            self._effective = eff
        return self._effective.get(user_id, [])

    def own_posts(self, user_id: int) -> list[Post]:
        return [self.posts[a.post_id] for a in self.assignments
                if a.user_id == user_id and a.post_id in self.posts]

    def posts_below(self, post: Post) -> list[Post]:
        """Every post answering to this one, directly or further down."""
        if not post.is_head:
            return []
        return [p for uid in self.subtree(post.unit_id) for p in self.unit_posts[uid]
                if p.id != post.id]

    def direct_reports(self, post: Post) -> list[Post]:
        """Posts whose superior is this post."""
        return [p for p in self.posts_below(post) if self.superior_post(p) is post]

    def held_from_above(self, user_id: int) -> list[Post]:
        """Vacant posts a person does because they hold a post above them."""
        return [p for p in self.effective_posts(user_id) if self.holding(p).from_post is not None]

    def superiors_of(self, user_id: int) -> list[User]:
        """Everyone above a person, nearest first."""
        out: dict[int, User] = {}
        for post in self.own_posts(user_id):
            above = self.superior_post(post)
            while above is not None:
                for user in self.holding(above).users:
                    if user.id != user_id:
                        out.setdefault(user.id, user)
                above = self.superior_post(above)
        return list(out.values())

    def subordinates_of(self, user_id: int) -> list[User]:
        out: dict[int, User] = {}
        for post in self.effective_posts(user_id):
            for below in self.posts_below(post):
                for a in self.own[below.id]:
                    if a.user_id != user_id:
                        out.setdefault(a.user_id, a.user)
        return sorted(out.values(), key=lambda u: u.name)

    def scope(self, user_id: int) -> set[int]:
        """Units at and below the posts a person holds."""
        units: set[int] = set()
        for post in self.effective_posts(user_id):
            units.update(self.subtree(post.unit_id) if post.is_head else [post.unit_id])
        return units

    def people(self) -> dict[int, User]:
        return {a.user_id: a.user for lst in self.own.values() for a in lst}


def _unit_order(unit: Unit):
    return (unit.position, unit.name, unit.id)


def _post_order(post: Post):
    return (not post.is_head, post.position, post.title)


def added(obj: Unit | Post | Assignment) -> None:
    """A service created a row: keep the request's snapshot current if there is one."""
    chart = g.get("_cache_org_chart") if has_app_context() else None
    if chart is not None:
        chart.add(obj)


def load() -> Chart:
    cached = g.get("_cache_org_chart") if has_app_context() else None
    if cached is not None:
        return cached
    units = {u.id: u for u in db.session.scalars(select(Unit).where(Unit.archived_at.is_(None)))}
    posts = {p.id: p for p in db.session.scalars(select(Post).where(Post.archived_at.is_(None)))
             if p.unit_id in units}
    assignments = list(db.session.scalars(
        select(Assignment).options(joinedload(Assignment.user))
        .where(Assignment.ended_at.is_(None)).order_by(Assignment.started_at, Assignment.id)))
    chart = Chart(units, posts, assignments)
    if has_app_context():
        g._cache_org_chart = chart
    return chart


def forget() -> None:
    """Drop the request's snapshot after a change."""
    if has_app_context():
        g.pop("_cache_org_chart", None)
