"""The client base: companies (clients, suppliers, partners) grouped in holdings, contacts,
the history of the relationship, leads, deals in pipelines, and significant dates.

Every active company and deal has a next step with a date; each contact's outcome advances,
postpones or refuses it. A company belongs to its responsible manager's branch of the chart:
that manager, their superiors, posts with `see_all_clients` and named colleagues see it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.clock import utcnow
from app.core.models import User, UTCDateTime
from app.extensions import db

COMPANY_STATUSES = ("prospect", "active", "former")
INTERACTION_KINDS = ("call", "meeting", "email", "note", "complaint", "refusal")
OUTCOMES = ("advance", "postpone", "refuse")
REASON_KINDS = ("refusal", "lost", "complaint")
LEAD_SOURCES = ("form", "call", "referral", "web")
LEAD_STATUSES = ("new", "contacted", "converted", "rejected")
DEAL_STATUSES = ("open", "won", "lost")
STAGE_KINDS = ("open", "won", "lost")
DATE_KINDS = ("birthday", "contract_end", "founding", "other")


class Category(db.Model):
    __tablename__ = "client_category"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)


class CompanyCategory(db.Model):
    __tablename__ = "client_company_category"

    company_id: Mapped[int] = mapped_column(ForeignKey("client_company.id", ondelete="CASCADE"),
                                            primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("client_category.id", ondelete="CASCADE"),
                                             primary_key=True, index=True)


class Company(db.Model):
    __tablename__ = "client_company"
    __table_args__ = (
        Index("ix_client_company_responsible_status", "responsible_id", "status"),
        Index("ix_client_company_next_step", "next_step_at"),
        # Typo-tolerant search by name on PostgreSQL (pg_trgm); SQLite uses LIKE.
        Index("ix_client_company_search_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    legal_name: Mapped[str] = mapped_column(String(300))
    short_name: Mapped[str] = mapped_column(String(200), default="")
    tax_number: Mapped[str | None] = mapped_column(String(32), index=True)
    is_client: Mapped[bool] = mapped_column(default=True)
    is_supplier: Mapped[bool] = mapped_column(default=False)
    is_partner: Mapped[bool] = mapped_column(default=False)
    # ",vip,retail," so one tag is found with LIKE '%,vip,%' on every database
    tags: Mapped[str] = mapped_column(String(1000), default="")
    industry: Mapped[str] = mapped_column(String(120), default="")
    addresses: Mapped[list[dict]] = mapped_column(JSON, default=list)  # [{kind, text}]
    phones: Mapped[list[str]] = mapped_column(JSON, default=list)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    website: Mapped[str] = mapped_column(String(300), default="")
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    status: Mapped[str] = mapped_column(String(12), default="prospect")
    notes: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("client_company.id"), index=True)
    next_step: Mapped[str] = mapped_column(String(300), default="")
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Lower-case names, tax number, e-mails and phone digits: what search and duplicate
    # detection read.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    responsible: Mapped[User | None] = relationship()
    parent: Mapped[Company | None] = relationship(remote_side=[id])
    categories: Mapped[list[Category]] = relationship(secondary="client_company_category",
                                                      order_by="Category.name")

    @property
    def name(self) -> str:
        return self.short_name or self.legal_name

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split(",") if t]


class Share(db.Model):
    """A colleague a company is shared with by name, beyond the chart's reach."""

    __tablename__ = "client_share"

    company_id: Mapped[int] = mapped_column(ForeignKey("client_company.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True, index=True)


class Contact(db.Model):
    __tablename__ = "client_contact"
    __table_args__ = (
        Index("ix_client_contact_search_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phones: Mapped[list[str]] = mapped_column(JSON, default=list)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    messengers: Mapped[list[dict]] = mapped_column(JSON, default=list)  # [{kind, handle}]
    birthday: Mapped[date | None] = mapped_column(Date)
    consent: Mapped[bool] = mapped_column(default=False)
    notes: Mapped[str] = mapped_column(Text, default="")
    search_text: Mapped[str] = mapped_column(Text, default="")
    # Who keeps a contact that is at no company (a private person, a referral).
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    links: Mapped[list[ContactLink]] = relationship(back_populates="contact",
                                                    cascade="all, delete-orphan")


class ContactLink(db.Model):
    """A contact at a company, with the position they hold there."""

    __tablename__ = "client_contact_company"

    contact_id: Mapped[int] = mapped_column(ForeignKey("client_contact.id", ondelete="CASCADE"),
                                            primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("client_company.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    position: Mapped[str] = mapped_column(String(200), default="")

    contact: Mapped[Contact] = relationship(back_populates="links")
    company: Mapped[Company] = relationship()


class Reason(db.Model):
    """Reasons to choose from: refusals, lost deals, complaints."""

    __tablename__ = "client_reason"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Pipeline(db.Model):
    __tablename__ = "client_pipeline"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    stages: Mapped[list[Stage]] = relationship(back_populates="pipeline",
                                               order_by="Stage.position")


class Stage(db.Model):
    __tablename__ = "client_stage"

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("client_pipeline.id"), index=True)
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(8), default="open")  # open | won | lost
    probability: Mapped[int] = mapped_column(default=0)  # percent
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    pipeline: Mapped[Pipeline] = relationship(back_populates="stages")


class Deal(db.Model):
    __tablename__ = "client_deal"
    __table_args__ = (
        Index("ix_client_deal_pipeline_stage", "pipeline_id", "stage_id"),
        Index("ix_client_deal_responsible_status", "responsible_id", "status"),
        Index("ix_client_deal_next_step", "next_step_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    company_id: Mapped[int] = mapped_column(ForeignKey("client_company.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("client_contact.id"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("client_pipeline.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("client_stage.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    probability: Mapped[int] = mapped_column(default=0)
    expected_close: Mapped[date | None] = mapped_column(Date)
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    status: Mapped[str] = mapped_column(String(8), default="open")
    lost_reason_id: Mapped[int | None] = mapped_column(ForeignKey("client_reason.id"))
    lost_note: Mapped[str] = mapped_column(Text, default="")
    next_step: Mapped[str] = mapped_column(String(300), default="")
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    company: Mapped[Company] = relationship()
    contact: Mapped[Contact | None] = relationship()
    pipeline: Mapped[Pipeline] = relationship()
    stage: Mapped[Stage] = relationship()
    responsible: Mapped[User | None] = relationship()
    lost_reason: Mapped[Reason | None] = relationship()
    history: Mapped[list[StageChange]] = relationship(order_by="StageChange.id",
                                                      cascade="all, delete-orphan")


class StageChange(db.Model):
    """A deal entering a stage: the funnel and its conversion are read from these."""

    __tablename__ = "client_stage_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("client_deal.id", ondelete="CASCADE"),
                                         index=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("client_stage.id"), index=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    stage: Mapped[Stage] = relationship()


class Interaction(db.Model):
    """One contact with a client: a call, meeting, e-mail, note, complaint or refusal,
    with its outcome for the next step."""

    __tablename__ = "client_interaction"
    __table_args__ = (Index("ix_client_interaction_company_at", "company_id", "occurred_at"),
                      Index("ix_client_interaction_author_at", "author_id", "occurred_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("client_company.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("client_contact.id"))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("client_deal.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str | None] = mapped_column(String(10))
    reason_id: Mapped[int | None] = mapped_column(ForeignKey("client_reason.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # A mail message sent as a copy to the client lands here.
    message_id: Mapped[int | None] = mapped_column()

    author: Mapped[User | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    reason: Mapped[Reason | None] = relationship()


class WebForm(db.Model):
    """A public form a site posts leads to, with its own key."""

    __tablename__ = "client_web_form"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(8))  # the key's last characters, to tell them apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Lead(db.Model):
    __tablename__ = "client_lead"
    __table_args__ = (
        Index("ix_client_lead_due", "contact_due_at",
              postgresql_where=text("contacted_at IS NULL AND status = 'new'"),
              sqlite_where=text("contacted_at IS NULL AND status = 'new'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(10))
    form_id: Mapped[int | None] = mapped_column(ForeignKey("client_web_form.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    company_name: Mapped[str] = mapped_column(String(300), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    tax_number: Mapped[str] = mapped_column(String(32), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="new")
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    contact_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    company_id: Mapped[int | None] = mapped_column(ForeignKey("client_company.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("client_contact.id"))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("client_deal.id"))

    responsible: Mapped[User | None] = relationship()


class SignificantDate(db.Model):
    """A date to remember each year (a birthday, a founding day) or once (a contract end)."""

    __tablename__ = "client_date"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("client_company.id",
                                                              ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("client_contact.id",
                                                              ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200), default="")
    on: Mapped[date] = mapped_column(Date)
    yearly: Mapped[bool] = mapped_column(default=True)
    remind_days: Mapped[int] = mapped_column(default=3)
    reminded_for: Mapped[date | None] = mapped_column(Date)  # the occurrence last reminded of


class GreetingTemplate(db.Model):
    __tablename__ = "client_greeting"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)  # {name}, {company}, {sender} are filled in


class Setting(db.Model):
    """Client-base settings an administrator tunes (minutes to contact a new lead)."""

    __tablename__ = "client_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column()
