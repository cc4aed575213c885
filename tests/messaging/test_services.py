"""Rules of the mail, at the service level: addressing, a post's mail following the post,
edit and recall, directives, requests, replies, folders, drafts, scheduled sending, counts,
and bad input (a clear error and nothing changed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.models import Attachment, AuditEvent, FeedEvent, User
from app.extensions import db
from app.messaging import services
from app.messaging.models import (
    Address,
    BoxLabel,
    Label,
    ListMember,
    Mailbox,
    MailingList,
    Message,
    Preference,
    Revision,
)
from app.messaging.schemas import BODY_MAX
from app.orgchart import services as org
from app.orgchart.models import Assignment

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(NOW)
    yield
    clock.release()


def send(actor, to, **kw):
    data = {"to": list(to), "subject": "Hello", "body": "Some text", **kw}
    return services.send(actor, data)


def recipients(msg) -> dict[int, int | None]:
    """{user id: post reached through} of a message's recipient rows."""
    return dict(db.session.execute(select(Mailbox.user_id, Mailbox.via_post_id).where(
        Mailbox.message_id == msg.id, Mailbox.role == "recipient")).all())


def folder(user, name="inbox") -> list[int]:
    return [b.message_id for b in db.session.scalars(services.folder_query(user, name)).unique()]


def box(user, msg) -> Mailbox:
    return db.session.scalar(select(Mailbox).where(Mailbox.user_id == user.id,
                                                   Mailbox.message_id == msg.id))


MODELS = (Message, Address, Mailbox, Revision, Label, BoxLabel, MailingList, ListMember,
          Preference, FeedEvent, AuditEvent, Attachment)


def row_counts() -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def refused(error, call, *args, **kwargs):
    """`call` raises `error`; after the rollback every request does on an error, and a commit,
    no row anywhere has changed (no message, mailbox, feed event or audit row)."""
    db.session.commit()
    before = row_counts()
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    db.session.rollback()
    db.session.commit()
    assert row_counts() == before
    assert info.value.message
    return info.value


def ids(*users) -> set[int]:
    return {u.id for u in users}


# --- addressing ---------------------------------------------------------------------------

def test_a_post_reaches_its_holders(office):
    o = office
    msg = send(o.Dora, [f"post:{o.seller.id}"])
    assert msg.state == "sent" and msg.sent_at == NOW
    assert recipients(msg) == {o.Sam.id: o.seller.id, o.Sara.id: o.seller.id}
    assert [(a.kind, a.target_id, a.label) for a in msg.addresses] == [("post", o.seller.id, "Seller")]
    sender_box = box(o.Dora, msg)
    assert (sender_box.role, sender_box.folder) == ("sender", "sent")
    assert msg.id in folder(o.Sam) and msg.id in folder(o.Sara) and msg.id in folder(o.Dora, "sent")
    assert msg.id not in folder(o.Helen) and box(o.Helen, msg) is None
    assert box(o.Sam, msg).read_at is None


def test_a_vacant_post_reaches_the_holder_from_above(office):
    o = office
    msg = send(o.Sam, [f"post:{o.cashier.id}"])
    assert recipients(msg) == {o.Fred.id: o.cashier.id}


def test_a_unit_reaches_everyone_in_its_subtree(office):
    o = office
    to_sales = send(o.Dora, [f"unit:{o.sales.id}"])
    assert set(recipients(to_sales)) == ids(o.Helen, o.Sam, o.Sara)
    to_all = send(o.Fred, [f"unit:{o.company.id}"])
    assert set(recipients(to_all)) == ids(o.Dora, o.Helen, o.Sam, o.Sara)


def test_the_sender_never_receives_their_own_copy(office):
    o = office
    msg = send(o.Sam, [f"post:{o.seller.id}", f"unit:{o.sales.id}", f"user:{o.Sam.id}"])
    assert set(recipients(msg)) == ids(o.Helen, o.Sara)
    assert db.session.scalars(select(Mailbox.role).where(
        Mailbox.message_id == msg.id, Mailbox.user_id == o.Sam.id)).all() == ["sender"]
    assert msg.id not in folder(o.Sam)
    # to oneself alone: nobody would receive it
    err = refused(ValidationError, send, o.Sam, [f"user:{o.Sam.id}"])
    assert "to" in err.fields


def test_a_list_is_resolved_when_the_message_is_sent(office, admin):
    o = office
    ml = services.create_list(o.Helen, {"name": "Desk", "members": [
        f"user:{o.Fred.id}", f"post:{o.seller.id}"]})
    assert [(m.kind, m.target_id) for m in ml.members] == [("user", o.Fred.id),
                                                          ("post", o.seller.id)]
    # Sam leaves the post before the message goes: the list reaches who holds it now
    sam_on_seller = db.session.scalar(select(Assignment).where(
        Assignment.post_id == o.seller.id, Assignment.user_id == o.Sam.id))
    org.end_assignment(admin, sam_on_seller.id)
    first = send(o.Helen, [f"list:{ml.id}"])
    assert recipients(first) == {o.Fred.id: None, o.Sara.id: o.seller.id}
    assert [(a.kind, a.target_id, a.label) for a in first.addresses] == [("list", ml.id, "Desk")]

    # renamed, one member kept and one added
    services.update_list(o.Helen, ml.id, {"name": "Front desk", "members": [
        f"post:{o.seller.id}", f"user:{o.Dora.id}"]})
    db.session.flush()
    assert [(m.kind, m.target_id) for m in ml.members] == [("post", o.seller.id),
                                                          ("user", o.Dora.id)]
    services.update_list(o.Helen, ml.id, {"name": "Desk", "members": [f"user:{o.Dora.id}"]})
    second = send(o.Helen, [f"list:{ml.id}"])
    assert set(recipients(second)) == ids(o.Dora)
    # the message sent before keeps the people it reached
    assert set(recipients(first)) == ids(o.Fred, o.Sara)
    assert first.id in folder(o.Fred) and first.id not in folder(o.Dora)


def test_broadcasts_need_the_capability_and_go_to_all_or_units(office, admin):
    o = office
    err = refused(PermissionDenied, send, o.Dora, ["all"], kind="broadcast")
    assert "broadcast" in err.message
    # "all" is only an address of a broadcast
    refused(ValidationError, send, o.Dora, ["all"])
    org.set_capability(admin, o.director.id, {"name": "broadcast"})
    everyone = send(o.Dora, ["all"], kind="broadcast", subject="Holiday")
    active = set(db.session.scalars(select(User.id).where(User.active.is_(True))))
    assert set(recipients(everyone)) == active - ids(o.Dora)
    assert ids(o.Helen, o.Sam, o.Sara, o.Fred, admin) <= set(recipients(everyone))
    to_unit = send(o.Dora, [f"unit:{o.finance.id}"], kind="broadcast")
    assert set(recipients(to_unit)) == ids(o.Fred)
    err = refused(ValidationError, send, o.Dora, [f"user:{o.Sam.id}"], kind="broadcast")
    assert "to" in err.fields
    refused(ValidationError, send, o.Dora, ["all", f"post:{o.seller.id}"], kind="broadcast")
    # the capability belongs to the post: Helen, on another post, still may not
    refused(PermissionDenied, send, o.Helen, [f"unit:{o.sales.id}"], kind="broadcast")


def test_a_posts_mail_follows_the_post(office, admin, make_user):
    o = office
    before = send(o.Dora, [f"post:{o.seller.id}"], subject="Targets")
    request = send(o.Helen, [f"post:{o.seller.id}"], kind="request", subject="Report please",
                   reply_due_at=NOW + timedelta(days=1))
    services.mark_read(o.Sam, {"ids": [before.id]})
    sam_on_seller = db.session.scalar(select(Assignment).where(
        Assignment.post_id == o.seller.id, Assignment.user_id == o.Sam.id))
    org.end_assignment(admin, sam_on_seller.id)
    nina = make_user("Nina")
    org.assign(admin, {"post_id": o.seller.id, "user_id": nina.id})

    # the new holder sees the post's earlier mail; the open request waits for an answer
    assert set(folder(nina)) == {before.id, request.id}
    assert box(nina, before).read_at is not None and box(nina, before).via_post_id == o.seller.id
    assert box(nina, request).read_at is None
    assert box(nina, request).reply_due_at == NOW + timedelta(days=1)
    assert services.unanswered_by_user([nina.id]) == {nina.id: 1}

    after = send(o.Dora, [f"post:{o.seller.id}"], subject="New targets")
    assert set(recipients(after)) == ids(o.Sara, nina)
    assert after.id not in folder(o.Sam)
    # the former holder keeps what they received while on the post
    assert {before.id, request.id} <= set(folder(o.Sam))


# --- edit, recall, correction -------------------------------------------------------------

def test_edit_and_recall_until_someone_reads_then_only_a_correction(office):
    o = office
    msg = send(o.Helen, [f"post:{o.seller.id}"], subject="Plan", body="Call **ten** clients")
    services.edit(o.Helen, msg.id, {"subject": "Plan v2", "body": "Call *twelve* clients"})
    assert (msg.subject, msg.body, msg.edited_at) == ("Plan v2", "Call *twelve* clients", NOW)
    assert "<em>twelve</em>" in msg.body_html
    [rev] = services.history(o.Sam, msg.id)
    assert (rev.kind, rev.subject, rev.body) == ("edit", "Plan", "Call **ten** clients")
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "mail.edit",
                                                      AuditEvent.entity_id == str(msg.id)))

    assert services.mark_read(o.Sara, {"ids": [msg.id]}) == 1
    err = refused(Conflict, services.edit, o.Helen, msg.id, {"subject": "Plan v3"})
    assert "correction" in err.message
    refused(Conflict, services.recall, o.Helen, msg.id)
    assert msg.subject == "Plan v2" and msg.state == "sent"
    assert set(recipients(msg)) == ids(o.Sam, o.Sara)

    fix = services.correct(o.Helen, msg.id, {"body": "Twelve *new* clients"})
    assert fix.kind == "correction" and "<em>new</em>" in fix.body_html
    assert [r.kind for r in services.history(o.Sam, msg.id)] == ["edit", "correction"]
    assert "Twelve new clients" in msg.search_text
    # only the sender edits or corrects; a recipient gets "no such message"
    refused(NotFound, services.correct, o.Sam, msg.id, {"body": "Mine"})
    refused(ValidationError, services.correct, o.Helen, msg.id, {"body": ""})


def test_recall_takes_an_unread_message_back_from_everyone(office):
    o = office
    msg = send(o.Helen, [f"post:{o.seller.id}"])
    assert msg.id in folder(o.Sam)
    services.recall(o.Helen, msg.id)
    assert msg.state == "recalled" and msg.recalled_at == NOW
    assert recipients(msg) == {} and msg.id not in folder(o.Sam)
    refused(NotFound, services.box_of, o.Sam, msg.id)
    # the sender keeps their copy and cannot change it any more
    assert box(o.Helen, msg).folder == "sent"
    refused(Conflict, services.edit, o.Helen, msg.id, {"subject": "Again"})
    refused(Conflict, services.recall, o.Helen, msg.id)
    refused(Conflict, services.correct, o.Helen, msg.id, {"body": "Again"})


def test_edit_may_not_empty_a_message(office):
    o = office
    msg = send(o.Helen, [f"user:{o.Sam.id}"], subject="", body="Only body")
    refused(ValidationError, services.edit, o.Helen, msg.id, {"body": "   "})
    assert msg.body == "Only body"


# --- directives, requests, replies --------------------------------------------------------

def test_directive_confirmations_are_visible_to_the_sender(office):
    o = office
    msg = send(o.Helen, [f"post:{o.seller.id}"], kind="directive", subject="Dress code")
    rows = services.receipts(o.Helen, msg.id)
    assert [(r.user.name, r.read_at, r.confirmed_at) for r in rows] == [
        ("Sam", None, None), ("Sara", None, None)]

    services.confirm(o.Sam, msg.id)
    services.confirm(o.Sam, msg.id)  # twice is once
    rows = {r.user_id: r for r in services.receipts(o.Helen, msg.id)}
    assert rows[o.Sam.id].confirmed_at == NOW and rows[o.Sam.id].read_at == NOW
    assert rows[o.Sara.id].confirmed_at is None and rows[o.Sara.id].read_at is None
    db.session.refresh(msg)
    assert msg.first_read_at == NOW
    # receipts are the sender's
    refused(NotFound, services.receipts, o.Sam, msg.id)
    # only a received directive is confirmed
    refused(ValidationError, services.confirm, o.Helen, msg.id)
    plain = send(o.Helen, [f"user:{o.Sam.id}"])
    refused(ValidationError, services.confirm, o.Sam, plain.id)
    refused(NotFound, services.confirm, o.Fred, msg.id)


def test_a_reply_answers_the_request(office):
    o = office
    due = NOW + timedelta(hours=4)
    req = send(o.Helen, [f"user:{o.Sam.id}", f"user:{o.Sara.id}"], kind="request",
               subject="Numbers?", reply_due_at=due)
    assert box(o.Sam, req).reply_due_at == due and box(o.Sam, req).answered_at is None
    assert services.unanswered_by_user([o.Sam.id, o.Sara.id]) == {o.Sam.id: 1, o.Sara.id: 1}

    template = services.reply_template(o.Sam, req.id)
    assert template["kind"] == "report" and template["parent_id"] == req.id
    clock.advance(timedelta(hours=1))
    reply = services.send(o.Sam, {**template, "body": "Twelve."})
    assert reply.thread_id == req.id and reply.parent_id == req.id
    assert set(recipients(reply)) == ids(o.Helen)
    assert box(o.Sam, req).answered_at == NOW + timedelta(hours=1)
    assert box(o.Sara, req).answered_at is None
    assert services.unanswered_by_user([o.Sam.id, o.Sara.id]) == {o.Sara.id: 1}
    assert [b.message_id for b in services.thread(o.Helen, reply.id)] == [req.id, reply.id]
    # Sara sees only what reached her
    assert [b.message_id for b in services.thread(o.Sara, req.id)] == [req.id]


def test_reply_reply_all_and_forward_start_with_the_right_recipients(office):
    o = office
    msg = send(o.Helen, [f"user:{o.Sam.id}", f"post:{o.cashier.id}", f"user:{o.Sara.id}"],
               subject="Budget", body="Line one\nLine two")
    reply = services.reply_template(o.Sam, msg.id, "reply")
    assert (reply["to"], reply["subject"], reply["parent_id"]) == (
        [f"user:{o.Helen.id}"], "Re: Budget", msg.id)
    everyone = services.reply_template(o.Sam, msg.id, "all")
    assert everyone["to"] == [f"user:{o.Helen.id}", f"post:{o.cashier.id}", f"user:{o.Sara.id}"]
    forward = services.reply_template(o.Sam, msg.id, "forward")
    assert (forward["to"], forward["subject"], forward["forward_of"]) == ([], "Fwd: Budget", msg.id)
    assert "> Line one\n> Line two" in forward["body"] and "Helen" in forward["body"]
    # the sender's own "reply" goes to the people they wrote to
    own = services.reply_template(o.Helen, msg.id, "reply")
    assert own["to"] == [f"user:{o.Sam.id}", f"post:{o.cashier.id}", f"user:{o.Sara.id}"]

    answer = services.send(o.Sam, {**everyone, "body": "Agreed"})
    assert set(recipients(answer)) == ids(o.Helen, o.Fred, o.Sara)
    again = services.reply_template(o.Helen, answer.id, "reply")
    assert again["subject"] == "Re: Budget"  # no "Re: Re:"
    refused(NotFound, services.reply_template, o.Dora, msg.id, "reply")


def test_a_forward_carries_the_files(office, app, tmp_path, stored_files):
    o = office
    from werkzeug.datastructures import FileStorage

    from app.core import attachments

    draft = services.save_draft(o.Helen, {"to": [f"user:{o.Sam.id}"], "subject": "Prices"})
    with open(tmp_path / "p.txt", "wb") as fh:
        fh.write(b"price list")
    with open(tmp_path / "p.txt", "rb") as fh:
        attachments.store(o.Helen, services.OWNER, draft.id, FileStorage(fh, filename="prices.txt"))
    msg = services.send(o.Helen, {"draft_id": draft.id, "to": [f"user:{o.Sam.id}"],
                                  "subject": "Prices", "body": "See file"})
    assert "prices.txt" in msg.search_text
    fwd = services.send(o.Sam, {**services.reply_template(o.Sam, msg.id, "forward"),
                                "to": [f"user:{o.Sara.id}"]})
    assert fwd.forwarded_id == msg.id
    assert db.session.scalars(select(Attachment.filename).where(
        Attachment.owner_type == services.OWNER, Attachment.owner_id == fwd.id)).all() == ["prices.txt"]


@pytest.fixture
def stored_files(app):
    """Files this test stores are removed after it (its rows are rolled back; the bytes would
    otherwise stay for the purge job of a later test to find)."""
    root = Path(app.config["UPLOAD_DIR"])
    before = set(root.rglob("*"))
    yield
    for path in set(root.rglob("*")) - before:
        if path.is_file():
            path.unlink()


# --- folders, stars, labels, snooze -------------------------------------------------------

def test_snooze_move_star_and_labels(office):
    o = office
    msg = send(o.Helen, [f"user:{o.Sam.id}"])
    other = send(o.Helen, [f"user:{o.Sam.id}"], subject="Second")
    services.mark_read(o.Sam, {"ids": [msg.id]})

    services.snooze(o.Sam, msg.id, {"until": (NOW + timedelta(hours=2)).isoformat()})
    assert msg.id not in folder(o.Sam) and folder(o.Sam, "deferred") == [msg.id]
    assert services.counts(o.Sam) == {"unread": 1, "drafts": 0, "deferred": 1}
    assert services.wake_snoozed(NOW + timedelta(hours=1)) == 0
    assert services.wake_snoozed(NOW + timedelta(hours=2)) == 1
    assert msg.id in folder(o.Sam) and box(o.Sam, msg).read_at is None  # back, unread
    assert services.counts(o.Sam)["unread"] == 2

    assert services.move(o.Sam, {"ids": [msg.id, other.id], "folder": "archive"}) == 2
    assert folder(o.Sam) == [] and set(folder(o.Sam, "archive")) == {msg.id, other.id}
    services.move(o.Sam, {"ids": [other.id], "folder": "inbox"})
    assert folder(o.Sam) == [other.id]
    services.move(o.Helen, {"ids": [msg.id], "folder": "archive"})
    assert folder(o.Helen, "archive") == [msg.id] and folder(o.Sam, "archive") == [msg.id]

    services.star(o.Sam, {"ids": [other.id], "starred": True})
    assert folder(o.Sam, "starred") == [other.id] and folder(o.Helen, "starred") == []

    urgent = services.create_label(o.Sam, {"name": "  Urgent  ", "color": "danger"})
    assert urgent.name == "Urgent"
    later = services.create_label(o.Sam, {"name": "Later"})
    services.set_labels(o.Sam, other.id, {"label_ids": [urgent.id, later.id]})
    assert [lb.name for lb in box(o.Sam, other).labels] == ["Later", "Urgent"]
    assert [b.message_id for b in db.session.scalars(
        services.folder_query(o.Sam, "inbox", urgent.id)).unique()] == [other.id]
    services.set_labels(o.Sam, other.id, {"label_ids": [later.id]})
    assert [lb.name for lb in box(o.Sam, other).labels] == ["Later"]
    services.delete_label(o.Sam, later.id)
    db.session.flush()
    db.session.expire_all()
    assert box(o.Sam, other).labels == [] and [lb.name for lb in services.labels_of(o.Sam)] == ["Urgent"]

    # bad input
    refused(Conflict, services.create_label, o.Sam, {"name": "Urgent"})
    refused(ValidationError, services.create_label, o.Sam, {"name": ""})
    refused(ValidationError, services.create_label, o.Sam, {"name": "X", "color": "pink"})
    refused(ValidationError, services.snooze, o.Sam, other.id, {"until": NOW.isoformat()})
    refused(ValidationError, services.snooze, o.Sam, other.id, {"until": "tomorrow"})
    refused(ValidationError, services.snooze, o.Helen, other.id,
            {"until": (NOW + timedelta(hours=1)).isoformat()})  # the sender's own copy
    refused(ValidationError, services.move, o.Sam, {"ids": [other.id], "folder": "sent"})
    refused(ValidationError, services.move, o.Sam, {"ids": [other.id], "folder": "trash"})
    refused(ValidationError, services.star, o.Sam, {"ids": [], "starred": True})


def test_another_persons_label_is_not_found(office):
    o = office
    msg = send(o.Helen, [f"user:{o.Sam.id}", f"user:{o.Sara.id}"])
    saras = services.create_label(o.Sara, {"name": "Mine"})
    refused(NotFound, services.set_labels, o.Sam, msg.id, {"label_ids": [saras.id]})
    refused(NotFound, services.delete_label, o.Sam, saras.id)
    refused(NotFound, services.set_labels, o.Sam, msg.id, {"label_ids": [10_000_000]})
    assert box(o.Sam, msg).labels == []


def test_another_persons_message_is_not_found(office):
    o = office
    msg = send(o.Helen, [f"user:{o.Sam.id}"], kind="directive")
    fred_label = services.create_label(o.Fred, {"name": "Work"})
    later = (NOW + timedelta(hours=1)).isoformat()
    for call, args in (
            (services.box_of, (o.Fred, msg.id)),
            (services.history, (o.Fred, msg.id)),
            (services.thread, (o.Fred, msg.id)),
            (services.edit, (o.Fred, msg.id, {"subject": "Mine now"})),
            (services.recall, (o.Fred, msg.id)),
            (services.correct, (o.Fred, msg.id, {"body": "Mine"})),
            (services.confirm, (o.Fred, msg.id)),
            (services.receipts, (o.Fred, msg.id)),
            (services.snooze, (o.Fred, msg.id, {"until": later})),
            (services.set_labels, (o.Fred, msg.id, {"label_ids": [fred_label.id]})),
            (services.move, (o.Fred, {"ids": [msg.id], "folder": "archive"})),
            (services.star, (o.Fred, {"ids": [msg.id], "starred": True})),
            (services.delete_draft, (o.Fred, msg.id)),
            (services.box_of, (o.Fred, 10_000_000)),
    ):
        refused(NotFound, call, *args)
    # marking another's message read changes nothing and tells no one
    assert services.mark_read(o.Fred, {"ids": [msg.id]}) == 0
    assert msg.first_read_at is None and box(o.Sam, msg).read_at is None
    # a reply or forward of a message one never had
    refused(NotFound, send, o.Fred, [f"user:{o.Helen.id}"], parent_id=msg.id)
    refused(NotFound, send, o.Fred, [f"user:{o.Helen.id}"], forward_of=msg.id)


# --- drafts and scheduled sending ---------------------------------------------------------

def test_drafts_autosave_and_are_sent_once(office):
    o = office
    draft = services.save_draft(o.Sam, {"to": [], "subject": "Half", "local_id": "tab-1"})
    assert draft.state == "draft" and box(o.Sam, draft).folder == "drafts"
    again = services.save_draft(o.Sam, {"to": [f"user:{o.Helen.id}"], "subject": "Half done",
                                        "body": "Nearly", "local_id": "tab-1"})
    assert again.id == draft.id
    third = services.save_draft(o.Sam, {"draft_id": draft.id, "to": [f"user:{o.Helen.id}"],
                                        "subject": "Done", "body": "All of it"})
    assert third.id == draft.id and (draft.subject, draft.body) == ("Done", "All of it")
    assert db.session.scalar(select(func.count()).select_from(Message).where(
        Message.sender_id == o.Sam.id)) == 1
    assert folder(o.Sam, "drafts") == [draft.id] and services.counts(o.Sam)["drafts"] == 1
    assert recipients(draft) == {} and folder(o.Helen) == []  # nobody sees a draft

    # a draft with an unknown recipient is refused like a message
    refused(ValidationError, services.save_draft, o.Sam, {"draft_id": draft.id, "to": ["user:10000000"]})
    assert [a.target_id for a in draft.addresses] == [o.Helen.id]

    sent = services.send(o.Sam, {"draft_id": draft.id, "to": [f"user:{o.Helen.id}"],
                                 "subject": "Done", "body": "All of it", "local_id": "tab-1"})
    assert sent.id == draft.id and sent.state == "sent" and folder(o.Helen) == [draft.id]
    assert services.counts(o.Sam)["drafts"] == 0 and folder(o.Sam, "sent") == [draft.id]
    refused(Conflict, services.save_draft, o.Sam, {"draft_id": draft.id, "subject": "Later"})
    refused(Conflict, services.save_draft, o.Sam, {"local_id": "tab-1", "subject": "Later"})
    refused(Conflict, services.delete_draft, o.Sam, draft.id)

    gone = services.save_draft(o.Sam, {"subject": "Scrap"})
    services.delete_draft(o.Sam, gone.id)
    db.session.flush()
    assert db.session.get(Message, gone.id) is None


def test_the_same_local_id_sends_once(office):
    o = office
    first = send(o.Sam, [f"user:{o.Helen.id}"], local_id="m-1")
    second = send(o.Sam, [f"user:{o.Helen.id}"], subject="Changed", local_id="m-1")
    assert second.id == first.id and first.subject == "Hello"
    assert folder(o.Helen) == [first.id]
    # local ids are per sender
    other = send(o.Sara, [f"user:{o.Helen.id}"], local_id="m-1")
    assert other.id != first.id


def test_sending_takes_the_same_statements_for_three_people_or_thirty(make_user, count_queries):
    """Rows for every recipient go in bulk and feed numbers are taken in one statement: no
    query per recipient, in the send or in its commit."""
    sender = make_user("Bulk Sender")
    people = [make_user() for _ in range(30)]
    few = services.create_list(sender, {"name": "Few", "members": [f"user:{u.id}" for u in people[:3]]})
    many = services.create_list(sender, {"name": "Many", "members": [f"user:{u.id}" for u in people]})
    db.session.commit()
    sender_id, lists = sender.id, {3: few.id, 30: many.id}
    counted = []
    for n, size in enumerate((3, 30, 3, 30)):
        db.session.expunge_all()  # as in a new request
        actor = db.session.get(User, sender_id)
        with count_queries() as statements:
            msg = send(actor, [f"list:{lists[size]}"], local_id=f"bulk-{n}")
            db.session.commit()
        counted.append(len(statements))
        assert len(recipients(msg)) == size
    assert counted[0] == counted[1] == counted[2] == counted[3], counted
    assert counted[0] <= 16, counted


def test_scheduled_messages_go_when_due(office):
    o = office
    later = NOW + timedelta(hours=3)
    msg = send(o.Helen, [f"post:{o.seller.id}"], send_at=later.isoformat())
    assert msg.state == "scheduled" and msg.sent_at is None
    assert recipients(msg) == {} and folder(o.Sam) == []
    assert folder(o.Helen, "deferred") == [msg.id] and services.counts(o.Helen)["deferred"] == 1
    assert services.send_due(NOW + timedelta(hours=2)) == 0

    clock.advance(timedelta(hours=3))
    assert services.send_due(clock.utcnow()) == 1
    assert msg.state == "sent" and msg.sent_at == later
    assert set(recipients(msg)) == ids(o.Sam, o.Sara) and folder(o.Sam) == [msg.id]
    assert folder(o.Helen, "sent") == [msg.id] and services.counts(o.Helen)["deferred"] == 0
    assert services.send_due(clock.utcnow()) == 0  # once

    # a scheduled message can go back to the drafts, or be deleted
    again = send(o.Helen, [f"user:{o.Sam.id}"], send_at=(later + timedelta(days=1)).isoformat())
    services.unschedule(o.Helen, again.id)
    assert again.state == "draft" and again.send_at is None and folder(o.Helen, "drafts") == [again.id]


def test_counts_are_the_folder_badges(office):
    o = office
    a = send(o.Helen, [f"user:{o.Sam.id}"])
    send(o.Helen, [f"user:{o.Sam.id}"])
    send(o.Sam, [f"user:{o.Helen.id}"])  # Sam's own message is not unread for him
    services.save_draft(o.Sam, {"subject": "Draft"})
    assert services.counts(o.Sam) == {"unread": 2, "drafts": 1, "deferred": 0}
    assert services.mark_read(o.Sam, {"ids": [a.id]}) == 1
    assert services.mark_read(o.Sam, {"ids": [a.id]}) == 0
    assert services.counts(o.Sam)["unread"] == 1
    assert services.unread_counts([o.Sam.id, o.Helen.id, o.Fred.id]) == {
        o.Sam.id: 1, o.Helen.id: 1, o.Fred.id: 0}
    services.mark_read(o.Sam, {"ids": [a.id], "read": False})
    assert services.counts(o.Sam)["unread"] == 2
    services.move(o.Sam, {"ids": [a.id], "folder": "archive"})
    assert services.counts(o.Sam)["unread"] == 1  # the badge counts the inbox


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "user:10000000", "post:10000000", "unit:10000000", "list:10000000", "user:abc", "group:1",
    "all", "user:", "",
])
def test_unknown_recipients_are_refused(office, token):
    o = office
    to = [token, f"user:{o.Sam.id}"] if token else []
    err = refused(ValidationError, send, o.Helen, to)
    assert "to" in err.fields
    if token:
        assert token in err.message


def test_archived_deactivated_and_private_addresses_are_refused(office, admin):
    o = office
    archived = services.create_list(o.Helen, {"name": "Old", "members": [f"user:{o.Sam.id}"]})
    services.archive_list(o.Helen, archived.id)
    private = services.create_list(o.Fred, {"name": "Fred's", "members": [f"user:{o.Sam.id}"]})
    shared = services.create_list(o.Fred, {"name": "Finance", "shared": True,
                                           "members": [f"user:{o.Sam.id}"]})
    org.archive_post(admin, o.cashier.id)
    o.Sara.active = False
    db.session.flush()
    for token in (f"list:{archived.id}", f"list:{private.id}", f"post:{o.cashier.id}",
                  f"user:{o.Sara.id}"):
        err = refused(ValidationError, send, o.Helen, [token])
        assert token in err.message
    # a list someone shares may be used, not changed
    assert set(recipients(send(o.Helen, [f"list:{shared.id}"]))) == ids(o.Sam)
    refused(PermissionDenied, services.update_list, o.Helen, shared.id, {"name": "Mine"})
    refused(NotFound, services.update_list, o.Helen, private.id, {"name": "Mine"})
    refused(NotFound, services.archive_list, o.Helen, archived.id)
    # a list holds people, posts and units, not other lists or everyone
    refused(ValidationError, services.create_list, o.Helen, {"name": "Nested",
                                                             "members": [f"list:{shared.id}"]})
    refused(ValidationError, services.create_list, o.Helen, {"name": "All", "members": ["all"]})
    refused(ValidationError, services.create_list, o.Helen, {"name": "", "members": []})


def test_bad_messages_are_refused_with_the_field_named(office):
    o = office
    sam = [f"user:{o.Sam.id}"]
    cases = [
        ({"to": sam, "subject": "", "body": ""}, "body"),
        ({"to": sam, "subject": "  ", "body": "\n\n  "}, "body"),
        ({"to": sam, "body": "x" * (BODY_MAX + 1)}, "body"),
        ({"to": sam, "subject": "s" * 301}, "subject"),
        ({"to": sam, "body": "Answer", "kind": "request"}, "reply_due_at"),
        ({"to": sam, "body": "Answer", "kind": "request",
          "reply_due_at": (NOW - timedelta(minutes=1)).isoformat()}, "reply_due_at"),
        ({"to": sam, "body": "Later", "send_at": (NOW - timedelta(minutes=1)).isoformat()},
         "send_at"),
        ({"to": sam, "body": "Later", "send_at": "next week"}, "send_at"),
        ({"to": sam, "body": "x", "kind": "memo"}, "kind"),
        ({"to": sam, "body": "x", "importance": "urgent"}, "importance"),
        ({"to": sam, "body": "x", "external_to": "not an address"}, "external_to"),
        ({"to": "user:1", "body": "x"}, "to"),
        ({"to": sam, "body": "x", "draft_id": "7"}, "draft_id"),
        ({"to": [], "body": "Nobody"}, "to"),
    ]
    for data, field in cases:
        err = refused(ValidationError, services.send, o.Helen, data)
        assert field in err.fields, (data, err.fields)
    # the body limit holds exactly at the limit
    assert send(o.Helen, sam, body="x" * BODY_MAX).state == "sent"


def test_script_and_html_are_inert(office):
    o = office
    subject = '<script>alert("s")</script><b>Bold</b>'
    body = ('<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n'
            '[link](javascript:alert(3)) and **fine**')
    msg = send(o.Helen, [f"user:{o.Sam.id}"], subject=subject, body=body)
    assert msg.subject == subject  # stored as text, escaped wherever it is shown
    assert msg.body == body
    html = msg.body_html.lower()
    assert "<script" not in html and "<img" not in html and "href" not in html
    assert "<strong>fine</strong>" in html
    # what was typed is shown, as text
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=" in html
    fix = services.correct(o.Helen, msg.id, {"body": "<script>alert(4)</script>"})
    assert "<script" not in fix.body_html.lower()
