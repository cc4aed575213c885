"""The demo company's mail has every kind and folder, and loading it again adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from app.core.demo import load_all
from app.core.models import User
from app.extensions import db
from app.messaging import services
from app.messaging.models import Label, Mailbox, MailingList, Message, Revision


def test_demo_mail_has_every_kind_and_folder():
    load_all()
    kinds = dict(db.session.execute(select(Message.kind, func.count()).where(
        Message.state == "sent").group_by(Message.kind)).all())
    assert set(kinds) == {"ordinary", "request", "report", "directive", "broadcast"}
    assert sum(kinds.values()) >= 300
    states = {s for (s,) in db.session.execute(select(Message.state).distinct())}
    assert {"draft", "scheduled", "sent"} <= states
    folders = {f for (f,) in db.session.execute(select(Mailbox.folder).distinct())}
    assert folders == {"inbox", "sent", "drafts", "scheduled", "archive"}
    assert db.session.scalar(select(func.count()).where(Message.parent_id.is_not(None))) >= 50
    boxes = select(func.count()).select_from(Mailbox)
    assert db.session.scalar(boxes.where(Mailbox.confirmed_at.is_not(None))) > 0
    assert db.session.scalar(boxes.where(Mailbox.answered_at.is_not(None))) > 0
    assert db.session.scalar(boxes.where(Mailbox.snoozed_until.is_not(None))) > 0
    assert db.session.scalar(boxes.where(Mailbox.starred.is_(True))) > 0
    assert db.session.scalar(boxes.where(Mailbox.read_at.is_(None))) > 0
    assert db.session.scalar(select(func.count()).select_from(MailingList)) == 2
    assert db.session.scalar(select(func.count()).select_from(Label)) > 0
    staff = db.session.scalar(select(User).where(User.email == "staff@demo.crm"))
    assert services.counts(staff)["unread"] > 0
    assert db.session.scalars(services.folder_query(staff, "deferred")).first() is not None
    assert {k for (k,) in db.session.execute(select(Revision.kind).distinct())} == {
        "edit", "correction"}
    total = db.session.scalar(select(func.count()).select_from(Message))
    load_all()
    assert db.session.scalar(select(func.count()).select_from(Message)) == total
