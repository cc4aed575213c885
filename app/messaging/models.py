"""Internal mail: messages, how they were addressed, a mailbox row per person who may see
one, edit history, labels, mailing lists and each person's e-mail preference."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.clock import utcnow
from app.core.models import User, UTCDateTime
from app.extensions import db

KINDS = ("ordinary", "request", "report", "directive", "broadcast")
IMPORTANCE = ("low", "normal", "high")
STATES = ("draft", "scheduled", "sent", "recalled")
ADDRESS_KINDS = ("user", "post", "unit", "list", "all")
FOLDERS = ("inbox", "sent", "drafts", "scheduled", "archive")
EMAIL_MODES = ("off", "immediate", "digest")
# The search document's index; the expression is repeated by every query that uses it.
SEARCH_CONFIG = "russian"  # Russian stems, and English stems for Latin words


class Message(db.Model):
    __tablename__ = "mail_message"
    __table_args__ = (
        UniqueConstraint("sender_id", "local_id"),
        Index("ix_mail_message_search", text("to_tsvector('russian', search_text)"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("mail_message.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("mail_message.id"), index=True)
    forwarded_id: Mapped[int | None] = mapped_column(ForeignKey("mail_message.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="ordinary")
    importance: Mapped[str] = mapped_column(String(8), default="normal")
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown as written
    body_html: Mapped[str] = mapped_column(Text, default="")  # rendered and sanitised
    state: Mapped[str] = mapped_column(String(16), default="draft")
    # Chosen by the sending client: a resend of the same id returns the first message.
    local_id: Mapped[str | None] = mapped_column(String(64))
    reply_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    external_to: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sender, recipients, subject, body and file names: what full-text search reads.
    search_text: Mapped[str] = mapped_column(Text, default="")

    sender: Mapped[User] = relationship(foreign_keys=[sender_id])
    addresses: Mapped[list[Address]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Address.id")

    @property
    def is_sent(self) -> bool:
        return self.state in ("sent", "recalled")


class Address(db.Model):
    """A recipient as the sender wrote it (a person, a post, a unit, a list, everyone)."""

    __tablename__ = "mail_address"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("mail_message.id", ondelete="CASCADE"),
                                            index=True)
    kind: Mapped[str] = mapped_column(String(8))
    target_id: Mapped[int | None] = mapped_column()
    label: Mapped[str] = mapped_column(String(300))  # the name when it was written

    message: Mapped[Message] = relationship(back_populates="addresses")


class Mailbox(db.Model):
    """One row for each person who may see a message: its folder, read and reply state."""

    __tablename__ = "mail_box"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id"),
        Index("ix_mail_box_user_folder", "user_id", "folder", "message_id"),
        Index("ix_mail_box_due", "reply_due_at", postgresql_where=text("answered_at IS NULL"),
              sqlite_where=text("answered_at IS NULL")),
        # The e-mail job's question: unread mail nobody has been told of yet.
        Index("ix_mail_box_unnotified", "created_at",
              postgresql_where=text("emailed_at IS NULL AND read_at IS NULL"),
              sqlite_where=text("emailed_at IS NULL AND read_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("mail_message.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    role: Mapped[str] = mapped_column(String(10))  # sender | recipient
    via_post_id: Mapped[int | None] = mapped_column(ForeignKey("org_post.id"), index=True)
    folder: Mapped[str] = mapped_column(String(10))
    starred: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Requests: when the reply is due, when it came, reminders and escalation.
    reply_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    message: Mapped[Message] = relationship()
    user: Mapped[User] = relationship()
    labels: Mapped[list[Label]] = relationship(secondary="mail_box_label", order_by="Label.name")


class Revision(db.Model):
    """An earlier version (edit) or an added correction; recipients see the history."""

    __tablename__ = "mail_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("mail_message.id", ondelete="CASCADE"),
                                            index=True)
    kind: Mapped[str] = mapped_column(String(12))  # edit | correction
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Label(db.Model):
    __tablename__ = "mail_label"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    name: Mapped[str] = mapped_column(String(60))
    color: Mapped[str] = mapped_column(String(16), default="secondary")


class BoxLabel(db.Model):
    __tablename__ = "mail_box_label"

    box_id: Mapped[int] = mapped_column(ForeignKey("mail_box.id", ondelete="CASCADE"),
                                        primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("mail_label.id", ondelete="CASCADE"),
                                          primary_key=True, index=True)


class MailingList(db.Model):
    __tablename__ = "mail_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    shared: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User] = relationship()
    members: Mapped[list[ListMember]] = relationship(cascade="all, delete-orphan",
                                                     order_by="ListMember.id")


class ListMember(db.Model):
    __tablename__ = "mail_list_member"
    __table_args__ = (UniqueConstraint("list_id", "kind", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("mail_list.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # user | post | unit
    target_id: Mapped[int] = mapped_column()
    label: Mapped[str] = mapped_column(String(300))


class Preference(db.Model):
    """How a person wants to hear of mail while offline."""

    __tablename__ = "mail_preference"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True)
    email_mode: Mapped[str] = mapped_column(String(10), default="immediate")
    last_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
