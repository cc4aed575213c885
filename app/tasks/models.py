"""Tasks and programmes.

A task is work given to a person (or to a post, meaning its holder) with ordered steps,
watchers, comments and reminders. A programme is a versioned template of stages, each given
to a post; running it creates one task per stage, and a stage opens only when the stages it
follows are done. Stages are tasks, so "my day", the team board, escalation, reminders and
the workload treat them alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.clock import utcnow
from app.core.models import User, UTCDateTime
from app.extensions import db

# requested: waits for the head of another unit to accept; waiting: a stage whose earlier
# stages are not done; declined: the head said no (with a reason).
STATUSES = ("requested", "waiting", "open", "in_progress", "done", "cancelled", "declined")
ACTIVE = ("open", "in_progress")  # work someone is expected to do now
CLOSED = ("done", "cancelled", "declined")
PRIORITIES = ("low", "normal", "high", "urgent")
RUN_STATES = ("running", "done", "cancelled")


class Project(db.Model):
    """Internal work a programme can run for when it is not about a client or a deal."""

    __tablename__ = "task_project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User] = relationship()


class Programme(db.Model):
    __tablename__ = "task_programme"

    id: Mapped[int] = mapped_column(primary_key=True)
    theme: Mapped[str] = mapped_column(String(80), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Started by itself for a deal when the deal is won (in this pipeline, or in any).
    start_on_deal_won: Mapped[bool] = mapped_column(default=False, server_default=false())
    won_pipeline_id: Mapped[int | None] = mapped_column()

    versions: Mapped[list[ProgrammeVersion]] = relationship(
        back_populates="programme", order_by="ProgrammeVersion.number")

    @property
    def current(self) -> ProgrammeVersion:
        return self.versions[-1]


class ProgrammeVersion(db.Model):
    """The stages as they were at one edit; runs keep the version they started from."""

    __tablename__ = "task_programme_version"
    __table_args__ = (UniqueConstraint("programme_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("task_programme.id"))
    number: Mapped[int] = mapped_column()
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    programme: Mapped[Programme] = relationship(back_populates="versions")
    stages: Mapped[list[StageTemplate]] = relationship(
        cascade="all, delete-orphan", order_by="StageTemplate.position")


class StageTemplate(db.Model):
    __tablename__ = "task_stage_template"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("task_programme_version.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()
    key: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    post_id: Mapped[int] = mapped_column(ForeignKey("org_post.id"))
    instructions: Mapped[str] = mapped_column(Text, default="")
    duration_hours: Mapped[int] = mapped_column(default=24)
    checklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs_attachment: Mapped[bool] = mapped_column(default=False)
    # Keys of the stages this one waits for; by default the one before it.
    after: Mapped[list[str]] = mapped_column(JSON, default=list)


class Run(db.Model):
    """A programme running for a client, a deal or a project."""

    __tablename__ = "task_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("task_programme_version.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    link_kind: Mapped[str | None] = mapped_column(String(16))
    link_id: Mapped[int | None] = mapped_column()
    started_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="running")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    version: Mapped[ProgrammeVersion] = relationship()
    started_by: Mapped[User] = relationship()
    stages: Mapped[list[Task]] = relationship(back_populates="run",
                                              order_by="Task.stage_position")


class Task(db.Model):
    __tablename__ = "task"
    __table_args__ = (
        # "My day" and the board: a person's (or a scope's) work by state and due time.
        Index("ix_task_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_task_creator_status", "creator_id", "status"),
        Index("ix_task_link", "link_kind", "link_id"),
        Index("ix_task_post_status", "post_id", "status"),
        # The board of a large scope: a column in due order, read until it is full; and the
        # work done lately (counted and listed without visiting older done work).
        Index("ix_task_status_due", "status", "due_at", "id"),
        Index("ix_task_done", "assignee_id", "done_at", postgresql_where=text("status = 'done'"),
              sqlite_where=text("status = 'done'")),
        # The escalation job's question: active work past due, not yet escalated.
        Index("ix_task_overdue", "due_at",
              postgresql_where=text("escalated_at IS NULL AND status IN ('open', 'in_progress')"),
              sqlite_where=text("escalated_at IS NULL AND status IN ('open', 'in_progress')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")  # Markdown as written
    description_html: Mapped[str] = mapped_column(Text, default="")  # rendered and sanitised
    creator_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    # Who does it; a post's task goes to the post's holder (from above when vacant).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    post_id: Mapped[int | None] = mapped_column(ForeignKey("org_post.id"))
    status: Mapped[str] = mapped_column(String(12), default="open")
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    link_kind: Mapped[str | None] = mapped_column(String(16))
    link_id: Mapped[int | None] = mapped_column()
    # Asking another department: the head who accepts or declines, and why they declined.
    requested_of_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    # A programme's stage.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("task_run.id"), index=True)
    stage_key: Mapped[str | None] = mapped_column(String(40))
    stage_position: Mapped[int | None] = mapped_column()
    stage_after: Mapped[list[str] | None] = mapped_column(JSON)
    duration_hours: Mapped[int | None] = mapped_column()
    planned_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    planned_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    needs_attachment: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    creator: Mapped[User] = relationship(foreign_keys=[creator_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    requested_of: Mapped[User | None] = relationship(foreign_keys=[requested_of_id])
    run: Mapped[Run | None] = relationship(back_populates="stages")
    steps: Mapped[list[Step]] = relationship(back_populates="task", cascade="all, delete-orphan",
                                             order_by="Step.position")
    watchers: Mapped[list[Watcher]] = relationship(cascade="all, delete-orphan")

    @property
    def is_stage(self) -> bool:
        return self.run_id is not None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE


class Step(db.Model):
    """A step inside a task; done in order unless marked parallel."""

    __tablename__ = "task_step"
    __table_args__ = (Index("ix_task_step_assignee", "assignee_id", "done_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(300))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parallel: Mapped[bool] = mapped_column(default=False)
    required: Mapped[bool] = mapped_column(default=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    task: Mapped[Task] = relationship(back_populates="steps")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])


class Watcher(db.Model):
    __tablename__ = "task_watcher"

    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True, index=True)

    user: Mapped[User] = relationship()


class Comment(db.Model):
    __tablename__ = "task_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()


class Reminder(db.Model):
    __tablename__ = "task_reminder"
    __table_args__ = (
        Index("ix_task_reminder_due", "remind_at", postgresql_where=text("sent_at IS NULL"),
              sqlite_where=text("sent_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    remind_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    task: Mapped[Task] = relationship()


class Digest(db.Model):
    """When a person last got the daily digest of their overdue and due-today work."""

    __tablename__ = "task_digest"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
