"""The demo company's client base: a few hundred companies with a holding of four, contacts,
eight weeks of history, leads in every state, two pipelines with deals won and lost, dates
and greetings; the sales people keep it; loading again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.clients import reports
from app.clients import services as clients
from app.clients.models import (
    Company,
    Contact,
    ContactLink,
    Deal,
    GreetingTemplate,
    Interaction,
    Lead,
    Pipeline,
    Share,
    SignificantDate,
    StageChange,
)
from app.core import clock, jobs
from app.core.demo import load_all
from app.core.models import AuditEvent, Notification, User
from app.extensions import db
from app.orgchart import chart as charts

T = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
SALES_POSTS = ("Sales manager", "Head of Sales", "Marketer", "Client acquisition manager",
               "Head of the Dissemination division")
MODELS = (Company, Contact, ContactLink, Deal, StageChange, Interaction, Lead, SignificantDate,
          GreetingTemplate, Share, Pipeline, Notification, AuditEvent)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_demo_client_base(monkeypatch):
    clock.freeze(T)
    monkeypatch.setattr(clock, "release", lambda: clock.freeze(T))
    load_all()
    head = db.session.scalar(select(User).where(User.email == "sales@demo.crm"))

    # companies: a few hundred, in Russian and English, of every role, segmented
    assert count(Company) >= 280
    names = db.session.scalars(select(Company.legal_name)).all()
    assert sum(any("а" <= ch <= "я" for ch in n.lower()) for n in names) >= 150
    assert sum(n.isascii() for n in names) >= 50
    for role in ("is_client", "is_supplier", "is_partner"):
        assert count(Company, getattr(Company, role).is_(True)) >= 10
    statuses = dict(db.session.execute(select(Company.status, func.count())
                                       .group_by(Company.status)).all())
    assert set(statuses) == {"prospect", "active", "former"}
    assert count(Company, Company.tags != "") >= 50 and count(Company, Company.industry != "") >= 250
    assert db.session.scalar(select(func.count(func.distinct(Company.industry)))) >= 8
    assert count(Company, Company.categories.any()) >= 100
    assert count(Share) >= 3

    # the holding: a parent, two subsidiaries, one company under a subsidiary
    parent = db.session.scalar(select(Company).where(Company.short_name == "Гранит Групп"))
    family = clients.holding_ids(parent.id)
    assert len(family) == 4
    rows = db.session.execute(select(Company.id, Company.parent_id).where(
        Company.id.in_(family))).all()
    assert sum(1 for _id, p in rows if p == parent.id) == 2
    nested = [cid for cid, p in rows if p not in (None, parent.id)]
    assert len(nested) == 1
    assert count(Company, Company.parent_id.is_not(None)) == 3  # the only holding
    rollup = clients.rollup(head, parent.id)
    assert sum(d["count"] for d in rollup["deals"]) >= 4

    # the sales people keep the clients
    chart = charts.load()
    posts = {p.title: p for p in chart.posts.values()}
    sales = {u.id for t in SALES_POSTS for u in chart.holding(posts[t]).users}
    responsible = set(db.session.scalars(select(Company.responsible_id).distinct()))
    assert responsible <= sales and len(responsible) >= 4
    assert set(db.session.scalars(select(Deal.responsible_id).distinct())) <= sales

    # contacts: some at two companies, birthdays, consent both ways
    assert count(Contact) >= 350
    two = select(ContactLink.contact_id).group_by(ContactLink.contact_id).having(
        func.count() >= 2).subquery()
    assert db.session.scalar(select(func.count()).select_from(two)) >= 8
    assert count(Contact, Contact.birthday.is_not(None)) >= 100
    assert count(Contact, Contact.consent.is_(True)) >= 100
    assert count(Contact, Contact.consent.is_(False)) >= 50

    # eight weeks of history, every kind; complaints and refusals with reasons
    since = T - timedelta(weeks=8)
    kinds = dict(db.session.execute(select(Interaction.kind, func.count())
                                    .where(Interaction.occurred_at >= since)
                                    .group_by(Interaction.kind)).all())
    assert set(kinds) == {"call", "meeting", "email", "note", "complaint", "refusal"}
    assert sum(kinds.values()) >= 400
    assert count(Interaction, Interaction.occurred_at < since) == 0
    assert count(Interaction, Interaction.occurred_at > T) == 0
    assert count(Interaction, Interaction.kind == "complaint",
                 Interaction.reason_id.is_not(None)) >= 10
    assert count(Interaction, Interaction.kind == "refusal", Interaction.reason_id.is_(None)) == 0
    outcomes = set(db.session.scalars(select(Interaction.outcome).distinct()))
    assert {"advance", "postpone", "refuse"} <= outcomes

    # next steps: some ahead, some overdue, some missing; on companies and on deals
    for stmt in (clients.without_next_step(head, T), clients.without_next_step(head, T, True),
                 clients.deals_without_next_step(head, T),
                 clients.deals_without_next_step(head, T, True)):
        assert db.session.scalar(select(func.count()).select_from(
            stmt.order_by(None).subquery())) >= 5
    assert count(Company, Company.next_step_at > T) >= 50

    # two pipelines with their stages; deals across both, won with amounts, lost with reasons
    pipelines = clients.pipelines()
    assert len(pipelines) == 2
    for pipeline in pipelines:
        assert [s.kind for s in pipeline.stages].count("open") >= 3
        by_status = dict(db.session.execute(select(Deal.status, func.count()).where(
            Deal.pipeline_id == pipeline.id).group_by(Deal.status)).all())
        assert set(by_status) == {"open", "won", "lost"}, pipeline.name
    assert count(Deal) >= 150
    assert count(Deal, Deal.status == "won", Deal.amount_minor <= 0) == 0
    assert count(Deal, Deal.status == "won", Deal.closed_at.is_(None)) == 0
    assert count(Deal, Deal.status == "lost", Deal.lost_reason_id.is_(None)) == 0
    assert set(db.session.scalars(select(Deal.currency).distinct())) >= {"RUB", "EUR"}
    assert count(StageChange) > count(Deal) * 2
    assert count(StageChange, StageChange.entered_at > T) == 0

    # leads from every source, the web form among them, in every state
    by_status = dict(db.session.execute(select(Lead.status, func.count())
                                        .group_by(Lead.status)).all())
    assert set(by_status) == {"new", "contacted", "converted", "rejected"}
    assert set(db.session.scalars(select(Lead.source).distinct())) == {"form", "call",
                                                                     "referral", "web"}
    assert count(Lead, Lead.source == "web", Lead.form_id.is_(None)) == 0
    assert count(Lead, Lead.status == "converted", Lead.deal_id.is_(None)) == 0
    overdue = db.session.scalars(clients.overdue_leads(head, T)).all()
    assert len(overdue) >= 3 and all(lead.escalated_at is not None for lead in overdue)
    fresh = count(Lead, Lead.status == "new", Lead.contact_due_at > T)
    assert fresh >= 1
    assert count(Notification, Notification.user_id == head.id,
                 Notification.kind == "lead_overdue") == len(overdue)
    settings = clients.settings()
    assert settings["lead_minutes"] == 15
    assert chart.posts[settings["lead_post_id"]].title == "Sales manager"

    # significant dates, some soon; greeting templates
    kinds = set(db.session.scalars(select(SignificantDate.kind).distinct()))
    assert kinds == {"birthday", "founding", "contract_end"}
    assert count(SignificantDate, SignificantDate.yearly.is_(False)) >= 5
    assert len(clients.greeting_templates()) >= 2

    # every change went through the services: the audit log has them
    actions = set(db.session.scalars(select(AuditEvent.action).distinct()))
    assert {"company.create", "contact.create", "clients.import_companies",
            "clients.import_contacts", "deal.create", "deal.move", "interaction.create",
            "lead.create", "lead.convert", "lead.reject", "lead.escalate",
            "pipeline.save"} <= actions

    # the reports have something to show
    for pipeline in pipelines:
        funnel = reports.build(head, "funnel", {"pipeline_id": pipeline.id})
        assert funnel.tables[0].rows[0]["reached"] > 0
    sales_report = reports.build(head, "sales", {"group": "manager"})
    assert sum(r["deals"] for r in sales_report.tables[0].rows) >= 10

    # loading again changes nothing
    before = {m.__name__: count(m) for m in MODELS}
    load_all()
    assert {m.__name__: count(m) for m in MODELS} == before

    # the reminders find the birthdays of the coming days
    result = jobs.run_due(T, only="clients_significant_dates")
    assert result["clients_significant_dates"] != "reminded 0"
