"""The organisation chart: units in a tree, posts in units, people on posts, capabilities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.clock import utcnow
from app.core.models import User, UTCDateTime
from app.extensions import db

UNIT_KINDS = ("company", "division", "department", "section")


class Unit(db.Model):
    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    # The method numbers divisions (7 Executive, 1 Communications ... 6 Public);
    # `position` orders siblings left to right.
    number: Mapped[str | None] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[Unit | None] = relationship(remote_side=[id])

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


class Post(db.Model):
    __tablename__ = "org_post"
    __table_args__ = (
        # One head per unit among live posts.
        Index("uq_org_post_head", "unit_id", unique=True,
              postgresql_where=text("is_head AND archived_at IS NULL"),
              sqlite_where=text("is_head AND archived_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    is_head: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    functions: Mapped[str] = mapped_column(Text, default="")
    duties: Mapped[str] = mapped_column(Text, default="")
    authority: Mapped[str] = mapped_column(Text, default="")
    product: Mapped[str] = mapped_column(Text, default="")
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    unit: Mapped[Unit] = relationship()

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


class Assignment(db.Model):
    """A person on a post from `started_at`; ended rows stay as the post's history."""

    __tablename__ = "org_assignment"
    __table_args__ = (
        Index("ix_org_assignment_live_post", "post_id", "ended_at"),
        Index("ix_org_assignment_live_user", "user_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("org_post.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    acting: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    post: Mapped[Post] = relationship()
    user: Mapped[User] = relationship()


class Capability(db.Model):
    """What a post (not a person) may do; an amount caps money capabilities."""

    __tablename__ = "org_capability"
    __table_args__ = (UniqueConstraint("post_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("org_post.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))

    post: Mapped[Post] = relationship()


class Setting(db.Model):
    """Chart-wide settings an administrator tunes (workload thresholds)."""

    __tablename__ = "org_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column()
