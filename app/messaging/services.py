"""Rules of internal mail. Every path (page, API, socket, job) calls these.

A message is addressed to people, posts, units, lists or everyone; when it is sent the
addresses are resolved to people and each gets a mailbox row (the sender too), so "what a
person may see" is always "the messages they have a row for". Every change a person must
see is published to their feed (app.core.feed), numbered in commit order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app.core import attachments, audit, feed, markup, signals
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.mail import queue_email
from app.core.models import Attachment, User, UTCDateTime
from app.core.queries import among, on_postgres
from app.core.services import load
from app.extensions import db
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
from app.messaging.schemas import (
    ComposeIn,
    CorrectionIn,
    EditIn,
    LabelIn,
    LabelsSetIn,
    ListIn,
    MoveIn,
    PreferenceIn,
    ReadIn,
    SnoozeIn,
    StarIn,
)
from app.orgchart import chart as charts
from app.orgchart import services as org

OWNER = "mail_message"  # attachments hang on messages


# --- who may see what ---------------------------------------------------------------------

def box_of(actor: User, message_id: int) -> Mailbox:
    """The actor's row for a message; 404 for a message they may not see (nothing leaks)."""
    box = db.session.scalar(
        select(Mailbox).options(joinedload(Mailbox.message).joinedload(Message.sender))
        .where(Mailbox.message_id == message_id, Mailbox.user_id == actor.id))
    if box is None:
        raise NotFound(_("No such message."))
    return box


def _own_message(actor: User, message_id: int, *, lock: bool = False) -> Message:
    stmt = select(Message).where(Message.id == message_id, Message.sender_id == actor.id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    msg = db.session.scalar(stmt)
    if msg is None:
        raise NotFound(_("No such message."))
    return msg


def _can_see_message(user: User, message_id: int) -> bool:
    return db.session.scalar(select(Mailbox.id).where(
        Mailbox.message_id == message_id, Mailbox.user_id == user.id)) is not None


def _can_attach(user: User, message_id: int) -> bool:
    msg = db.session.get(Message, message_id)
    return msg is not None and msg.sender_id == user.id and msg.state in ("draft", "scheduled")


attachments.register_owner(OWNER, _can_see_message, _can_attach)


# --- addresses ----------------------------------------------------------------------------

def _bad_address(token: str) -> ValidationError:
    return ValidationError(_("Unknown recipient: %(token)s.", token=token),
                           {"to": [_("Unknown recipient: %(token)s.", token=token)]})


def _visible_list(actor: User, list_id: int, ml: MailingList | None = None) -> MailingList | None:
    ml = ml or db.session.get(MailingList, list_id)
    if ml is None or ml.archived_at is not None or not (ml.shared or ml.owner_id == actor.id):
        return None
    return ml


def _ids(tokens: list[str], kind: str) -> list[int]:
    prefix = f"{kind}:"
    return [int(t[len(prefix):]) for t in tokens if t.startswith(prefix) and t[len(prefix):].isdigit()]


def parse_addresses(actor: User, tokens: Iterable[str], *, allow_lists: bool = True,
                    allow_all: bool = False) -> list[Address]:
    """"user:5", "post:7", "unit:3", "list:2", "all" checked against live rows."""
    out: list[Address] = []
    seen: set[tuple[str, int | None]] = set()
    tokens = list(dict.fromkeys(t.strip() for t in tokens if t and t.strip()))
    # Each kind of row is read once, and only when an address needs it.
    chart = charts.load() if _ids(tokens, "post") or _ids(tokens, "unit") else None
    user_ids = _ids(tokens, "user")
    users = ({u.id: u for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))}
             if user_ids else {})
    list_ids = _ids(tokens, "list") if allow_lists else []
    lists = ({ml.id: ml for ml in db.session.scalars(select(MailingList).where(MailingList.id.in_(list_ids)))}
             if list_ids else {})
    for token in tokens:
        kind, _sep, raw = token.partition(":")
        if kind == "all" and not raw and allow_all:
            key, label = ("all", None), _("All staff")
        elif raw.isdigit() and kind == "user" and int(raw) in users and users[int(raw)].is_active:
            key, label = ("user", int(raw)), users[int(raw)].name
        elif raw.isdigit() and kind == "post" and int(raw) in chart.posts:
            key, label = ("post", int(raw)), chart.posts[int(raw)].title
        elif raw.isdigit() and kind == "unit" and int(raw) in chart.units:
            key, label = ("unit", int(raw)), chart.units[int(raw)].name
        elif (raw.isdigit() and kind == "list" and allow_lists
              and (ml := _visible_list(actor, int(raw), lists.get(int(raw)))) is not None):
            key, label = ("list", int(raw)), ml.name
        else:
            raise _bad_address(token)
        if key not in seen:
            seen.add(key)
            out.append(Address(kind=key[0], target_id=key[1], label=label[:300]))
    return out


def _resolve(actor: User, addresses: Iterable[Address]) -> tuple[dict[int, int | None], dict[int, str]]:
    """People the addresses reach now: {user id: the post they were reached through}, and
    their names."""
    pending = [(a.kind, a.target_id) for a in addresses]
    lists = [target for kind, target in pending if kind == "list"]
    if lists:
        pending += db.session.execute(select(ListMember.kind, ListMember.target_id)
                                      .where(ListMember.list_id.in_(lists))).all()
    chart = charts.load() if any(kind in ("post", "unit") for kind, _t in pending) else None
    out: dict[int, int | None] = {}

    def add_post(post_id: int) -> None:
        for user in chart.holding(chart.posts[post_id]).users:
            out.setdefault(user.id, post_id)

    def add_unit(unit_id: int) -> None:
        for uid in chart.subtree(unit_id):
            for post in chart.unit_posts[uid]:
                for a in chart.own[post.id]:
                    out.setdefault(a.user_id, None)

    for kind, target in pending:
        if kind == "user":
            out[target] = None
        elif kind == "post" and target in chart.posts:
            add_post(target)
        elif kind == "unit" and target in chart.units:
            add_unit(target)
        elif kind == "all":
            out.update({uid: None for uid in db.session.scalars(
                select(User.id).where(User.active.is_(True)))})
    out.pop(actor.id, None)
    if not out:
        return {}, {}
    # People deactivated since a list was saved receive nothing.
    names = dict(db.session.execute(select(User.id, User.name).where(
        among(User.id, list(out)), User.active.is_(True))).all())
    return {uid: via for uid, via in out.items() if uid in names}, names


# --- composing and sending ---------------------------------------------------------------

def _fill(actor: User, msg: Message, values: dict) -> None:
    """Copy what was written onto a draft (or a scheduled message)."""
    if values["kind"] == "broadcast" and org.capability(actor, "broadcast") is None:
        raise PermissionDenied(_("Only a post with the broadcast capability may send broadcasts."))
    msg.addresses = parse_addresses(actor, values["to"], allow_all=values["kind"] == "broadcast")
    if values["kind"] == "broadcast" and any(a.kind not in ("all", "unit") for a in msg.addresses):
        raise ValidationError(_("A broadcast goes to all staff or to units."),
                              {"to": [_("A broadcast goes to all staff or to units.")]})
    msg.subject = " ".join(values["subject"].split())
    msg.body = values["body"]
    msg.body_html = markup.render(values["body"])
    msg.kind, msg.importance = values["kind"], values["importance"]
    msg.reply_due_at, msg.send_at = values["reply_due_at"], values["send_at"]
    msg.external_to = values["external_to"]
    msg.updated_at = utcnow()
    if values["parent_id"] is not None:
        parent = box_of(actor, values["parent_id"]).message
        msg.parent_id, msg.thread_id = parent.id, parent.thread_id or parent.id
    if values["forward_of"] is not None:
        msg.forwarded_id = box_of(actor, values["forward_of"]).message_id


def _check_sendable(msg: Message, now: datetime) -> None:
    errors: dict[str, list[str]] = {}
    if not msg.addresses:
        errors["to"] = [_("Choose at least one recipient.")]
    if not msg.subject and not markup.plain(msg.body_html):
        errors["body"] = [_("Write a subject or a message.")]
    if msg.kind == "request" and (msg.reply_due_at is None or msg.reply_due_at <= now):
        errors["reply_due_at"] = [_("A request needs a reply time in the future.")]
    if msg.send_at is not None and msg.send_at <= now:
        errors["send_at"] = [_("Choose a time in the future to send later.")]
    if errors:
        raise ValidationError(_("The message cannot be sent yet."), errors)


def _by_local_id(actor: User, local_id: str | None) -> Message | None:
    if not local_id:
        return None
    return db.session.scalar(select(Message).where(Message.sender_id == actor.id,
                                                   Message.local_id == local_id))


def _draft(actor: User, draft_id: int) -> Message:
    msg = _own_message(actor, draft_id)
    if msg.state not in ("draft", "scheduled"):
        raise Conflict(_("This message has already been sent."))
    return msg


def _new(actor: User, local_id: str | None, folder: str = "drafts") -> Message:
    """A new draft with the sender's row in `folder` (where it goes when this transaction
    commits), or the actor's message with this local id when there is one already (sent
    before, or inserted by a concurrent send of the same local id, which then wins)."""
    make_insert = pg_insert if on_postgres() else sqlite_insert
    msg = db.session.scalars(
        make_insert(Message).values(sender_id=actor.id, local_id=local_id, state="draft")
        .on_conflict_do_nothing(index_elements=[Message.sender_id, Message.local_id])
        .returning(Message)).one_or_none()
    if msg is None:
        return _by_local_id(actor, local_id)
    set_committed_value(msg, "addresses", [])  # a new row has none: no query for them
    box = Mailbox(message_id=msg.id, user_id=actor.id, role="sender", folder=folder,
                  read_at=utcnow())
    db.session.add(box)
    msg._new_sender_box = box  # not a column: found again without a query (_sender_box)
    return msg


def save_draft(actor: User, data: Mapping) -> Message:
    """Autosave: create or update the actor's draft; recipients must exist, nothing else."""
    values = load(ComposeIn(), data)
    if values["draft_id"] is not None:
        msg = _draft(actor, values["draft_id"])
    else:
        msg = _new(actor, values["local_id"])
        if msg.state != "draft":
            raise Conflict(_("This message has already been sent."))
    _fill(actor, msg, values)
    db.session.flush()
    return msg


def send(actor: User, data: Mapping) -> Message:
    """Send now, or at `send_at`. Sending the same local id again returns the first message."""
    values = load(ComposeIn(), data)
    if values["draft_id"] is not None:
        earlier = _by_local_id(actor, values["local_id"])
        if earlier is not None and earlier.state != "draft":
            return earlier
        msg = _draft(actor, values["draft_id"])
    else:
        # Or the message sent before with this local id: a resend delivers nothing new.
        msg = _new(actor, values["local_id"], "sent" if values["send_at"] is None else "scheduled")
        if msg.state != "draft":
            return msg
    _fill(actor, msg, values)
    now = utcnow()
    _check_sendable(msg, now)
    if msg.send_at is not None:
        msg.state = "scheduled"
        _sender_box(msg).folder = "scheduled"
        _publish_sender(msg, "message.scheduled")
        db.session.flush()
        return msg
    dispatch(msg, now)
    return msg


def _sender_box(msg: Message) -> Mailbox:
    box = getattr(msg, "_new_sender_box", None)  # created with the message, in this session
    if box is not None and box in db.session:
        return box
    return db.session.scalar(select(Mailbox).where(Mailbox.message_id == msg.id,
                                                   Mailbox.user_id == msg.sender_id))


def dispatch(msg: Message, now: datetime) -> int:
    """Deliver a draft or a due scheduled message: a mailbox row for every person reached."""
    sender = msg.sender or db.session.get(User, msg.sender_id)
    recipients, names = _resolve(sender, msg.addresses)
    if not recipients:
        raise ValidationError(_("Nobody holds these posts or belongs to these units now."),
                              {"to": [_("Nobody would receive this message.")]})
    if msg.id is None:
        db.session.flush()
    msg.state, msg.sent_at = "sent", now
    msg.thread_id = msg.thread_id or msg.id
    if msg.forwarded_id is not None:
        _copy_attachments(sender, msg.forwarded_id, msg.id)
    msg.search_text = _search_text(msg, sender.name, names.values())
    box = _sender_box(msg)
    box.folder = "sent"
    due = msg.reply_due_at if msg.kind == "request" else None
    _insert_inboxes(msg.id, recipients, now, due)
    if msg.parent_id is not None:
        _mark_answered(sender.id, msg.thread_id, msg.id, now)
    if msg.external_to:
        queue_email(msg.external_to, msg.subject or _("Message from %(name)s", name=sender.name),
                    f"{sender.name}:\n\n{msg.body}")
        signals.message_sent_external.send(msg, address=msg.external_to)
    summary = summarize(msg, sender)
    feed.publish_many(recipients, "message.new", {**summary, "role": "recipient"})
    feed.publish(sender.id, "message.new", {**summary, "role": "sender"})
    return len(recipients)


# On PostgreSQL the recipients' rows go in as arrays: one short statement however many people
# (psycopg's executemany would run one INSERT per row).
_PG_INBOXES = text(
    "INSERT INTO mail_box (message_id, user_id, role, via_post_id, folder, starred, created_at,"
    " reply_due_at)"
    " SELECT CAST(:message_id AS integer), user_id, 'recipient', via_post_id, 'inbox', false,"
    " CAST(:created_at AS timestamptz), CAST(:reply_due_at AS timestamptz)"
    " FROM unnest(CAST(:users AS integer[]), CAST(:vias AS integer[])) AS t (user_id, via_post_id)",
).bindparams(bindparam("created_at", type_=UTCDateTime), bindparam("reply_due_at", type_=UTCDateTime))


def _insert_inboxes(message_id: int, recipients: dict[int, int | None], now: datetime,
                    due: datetime | None) -> None:
    if on_postgres():
        db.session.execute(_PG_INBOXES, {"message_id": message_id, "users": list(recipients),
                                         "vias": list(recipients.values()), "created_at": now,
                                         "reply_due_at": due})
        return
    db.session.execute(insert(Mailbox.__table__), [
        {"message_id": message_id, "user_id": uid, "role": "recipient", "via_post_id": via,
         "folder": "inbox", "starred": False, "created_at": now, "reply_due_at": due}
        for uid, via in recipients.items()])


def _search_text(msg: Message, sender_name: str, recipient_names: Iterable[str]) -> str:
    files = db.session.scalars(select(Attachment.filename).where(
        Attachment.owner_type == OWNER, Attachment.owner_id == msg.id))
    parts = [sender_name, *recipient_names, *(a.label for a in msg.addresses), msg.subject,
             markup.plain(msg.body_html), *files]
    return "\n".join(p for p in parts if p)


def _copy_attachments(actor: User, from_id: int, to_id: int) -> None:
    for att in db.session.scalars(select(Attachment).where(
            Attachment.owner_type == OWNER, Attachment.owner_id == from_id)):
        db.session.add(Attachment(owner_type=OWNER, owner_id=to_id, filename=att.filename,
                                  sha256=att.sha256, size=att.size, mime=att.mime,
                                  uploaded_by_id=actor.id))
    db.session.flush()


def _mark_answered(user_id: int, thread_id: int, reply_id: int, now: datetime) -> None:
    """A reply anywhere in the thread answers the requests the replier had there."""
    db.session.execute(
        update(Mailbox).where(
            Mailbox.user_id == user_id, Mailbox.role == "recipient",
            Mailbox.answered_at.is_(None), Mailbox.reply_due_at.is_not(None),
            Mailbox.message_id.in_(select(Message.id).where(Message.thread_id == thread_id,
                                                            Message.id != reply_id)))
        .values(answered_at=now).execution_options(synchronize_session=False))


def summarize(msg: Message, sender: User | None = None) -> dict:
    """What live clients get for a message (lists, toasts)."""
    sender = sender or msg.sender
    text = markup.plain(msg.body_html)
    return {"id": msg.id, "thread_id": msg.thread_id, "parent_id": msg.parent_id,
            "subject": msg.subject, "snippet": text[:160], "kind": msg.kind,
            "importance": msg.importance, "state": msg.state,
            "sender": {"id": sender.id, "name": sender.name},
            "to": [a.label for a in msg.addresses],
            "sent_at": msg.sent_at.isoformat() if msg.sent_at else None,
            "reply_due_at": msg.reply_due_at.isoformat() if msg.reply_due_at else None}


def _publish_sender(msg: Message, kind: str) -> None:
    feed.publish(msg.sender_id, kind, summarize(msg))


def delete_draft(actor: User, message_id: int) -> None:
    msg = _draft(actor, message_id)
    for att in db.session.scalars(select(Attachment).where(Attachment.owner_type == OWNER,
                                                           Attachment.owner_id == msg.id)):
        db.session.delete(att)
    db.session.delete(msg)
    feed.publish(actor.id, "message.deleted", {"id": message_id})


def unschedule(actor: User, message_id: int) -> Message:
    """A scheduled message goes back to the drafts."""
    msg = _draft(actor, message_id)
    msg.state, msg.send_at = "draft", None
    _sender_box(msg).folder = "drafts"
    _publish_sender(msg, "message.moved")
    return msg


def send_due(now: datetime, limit: int = 100) -> int:
    """Scheduled messages whose time has come (rows claimed, so two runners never both send)."""
    sent = 0
    for msg in db.session.scalars(
            select(Message).where(Message.state == "scheduled", Message.send_at <= now)
            .order_by(Message.send_at).limit(limit).with_for_update(skip_locked=True)):
        try:
            with db.session.begin_nested():
                dispatch(msg, now)
            sent += 1
        except ValidationError as exc:  # nobody left to receive it: back to drafts, say why
            msg.state = "draft"
            _sender_box(msg).folder = "drafts"
            from app.core import notifications

            notifications.notify(msg.sender_id, "mail.unsent",
                                 _("A scheduled message was not sent"), exc.message,
                                 url=f"/mail/compose?draft={msg.id}")
    return sent


# --- reading, confirming, receipts -------------------------------------------------------

def mark_read(actor: User, data: Mapping) -> int:
    """Mark the actor's copies read (or unread); senders learn who has read their message."""
    values = load(ReadIn(), data)
    now = utcnow()
    boxes = db.session.scalars(select(Mailbox).where(
        Mailbox.user_id == actor.id, Mailbox.message_id.in_(values["ids"]),
        Mailbox.role == "recipient")).all()
    changed = [b for b in boxes if (b.read_at is None) == values["read"]]
    if not changed:
        return 0
    ids = [b.message_id for b in changed]
    for b in changed:
        b.read_at = now if values["read"] else None
    if values["read"]:
        # Takes the message rows' locks: an edit waiting on them then sees it was read.
        db.session.execute(update(Message).where(Message.id.in_(ids), Message.first_read_at.is_(None))
                           .values(first_read_at=now).execution_options(synchronize_session=False))
        senders = dict(db.session.execute(select(Message.id, Message.sender_id)
                                          .where(Message.id.in_(ids))).all())
        for mid in ids:
            feed.publish(senders[mid], "message.receipt",
                         {"id": mid, "user_id": actor.id, "name": actor.name,
                          "read_at": now.isoformat()})
    feed.publish(actor.id, "message.read", {"ids": ids, "read": values["read"]})
    return len(changed)


def confirm(actor: User, message_id: int) -> Mailbox:
    """A directive's recipient confirms they have read it and will follow it."""
    box = box_of(actor, message_id)
    if box.role != "recipient" or box.message.kind != "directive":
        raise ValidationError(_("Only a directive you received can be confirmed."))
    if box.confirmed_at is None:
        now = utcnow()
        if box.read_at is None:
            mark_read(actor, {"ids": [message_id]})
        box.confirmed_at = now
        payload = {"id": message_id, "user_id": actor.id, "name": actor.name,
                   "confirmed_at": now.isoformat()}
        feed.publish(box.message.sender_id, "message.confirmed", payload)
        feed.publish(actor.id, "message.confirmed", payload)
    return box


def receipts(actor: User, message_id: int) -> list[Mailbox]:
    """Who received the actor's message, and who has read and confirmed it."""
    msg = _own_message(actor, message_id)
    return list(db.session.scalars(
        select(Mailbox).options(joinedload(Mailbox.user))
        .join(User, User.id == Mailbox.user_id)
        .where(Mailbox.message_id == msg.id, Mailbox.role == "recipient").order_by(User.name)))


# --- edit, recall, correct ---------------------------------------------------------------

def _editable(actor: User, message_id: int) -> Message:
    msg = _own_message(actor, message_id, lock=True)
    if msg.state != "sent":
        raise Conflict(_("Only a sent message can be changed."))
    if msg.first_read_at is not None:
        raise Conflict(_("Someone has read this message: add a correction instead."))
    return msg


def _box_users(message_id: int) -> list[int]:
    return list(db.session.scalars(select(Mailbox.user_id).where(Mailbox.message_id == message_id)))


def edit(actor: User, message_id: int, data: Mapping) -> Message:
    """Change a sent message nobody has read yet; the earlier version is kept."""
    values = load(EditIn(), data)
    msg = _editable(actor, message_id)
    db.session.add(Revision(message_id=msg.id, kind="edit", subject=msg.subject, body=msg.body,
                            body_html=msg.body_html))
    before = {"subject": msg.subject, "body": msg.body}
    if "subject" in values:
        msg.subject = " ".join(values["subject"].split())
    if "body" in values:
        msg.body, msg.body_html = values["body"], markup.render(values["body"])
    if not msg.subject and not markup.plain(msg.body_html):
        raise ValidationError(_("Write a subject or a message."))
    msg.edited_at = utcnow()
    _refresh_search(msg)
    audit.record(actor, "mail.edit", OWNER, msg.id, before=before,
                 after={"subject": msg.subject, "body": msg.body})
    feed.publish_many(_box_users(msg.id), "message.edited", summarize(msg))
    return msg


def recall(actor: User, message_id: int) -> Message:
    """Take back a message nobody has read: it leaves every recipient's mailbox."""
    msg = _editable(actor, message_id)
    users = _box_users(msg.id)
    msg.state, msg.recalled_at = "recalled", utcnow()
    db.session.execute(delete(Mailbox).where(Mailbox.message_id == msg.id,
                                             Mailbox.role == "recipient"))
    audit.record(actor, "mail.recall", OWNER, msg.id, before={"recipients": len(users) - 1})
    feed.publish_many(users, "message.recalled", {"id": msg.id, "thread_id": msg.thread_id})
    return msg


def correct(actor: User, message_id: int, data: Mapping) -> Revision:
    """Add a correction to a sent message (the only change once it has been read)."""
    values = load(CorrectionIn(), data)
    msg = _own_message(actor, message_id, lock=True)
    if msg.state != "sent":
        raise Conflict(_("Only a sent message can be corrected."))
    rev = Revision(message_id=msg.id, kind="correction", body=values["body"],
                   body_html=markup.render(values["body"]))
    db.session.add(rev)
    db.session.flush()
    _refresh_search(msg)
    audit.record(actor, "mail.correct", OWNER, msg.id, after={"body": values["body"]})
    feed.publish_many(_box_users(msg.id), "message.corrected",
                      {**summarize(msg), "correction": markup.plain(rev.body_html)[:160]})
    return rev


def _refresh_search(msg: Message) -> None:
    names = db.session.scalars(select(User.name).join(Mailbox, Mailbox.user_id == User.id)
                               .where(Mailbox.message_id == msg.id, Mailbox.role == "recipient"))
    extra = db.session.scalars(select(Revision.body_html).where(Revision.message_id == msg.id,
                                                                Revision.kind == "correction"))
    msg.search_text = "\n".join([_search_text(msg, msg.sender.name, names),
                                 *(markup.plain(h) for h in extra)])


def history(actor: User, message_id: int) -> list[Revision]:
    box_of(actor, message_id)
    return list(db.session.scalars(select(Revision).where(Revision.message_id == message_id)
                                   .order_by(Revision.created_at, Revision.id)))


# --- folders, stars, labels, snooze -------------------------------------------------------

def _boxes(actor: User, ids: list[int]) -> list[Mailbox]:
    boxes = db.session.scalars(select(Mailbox).where(Mailbox.user_id == actor.id,
                                                     Mailbox.message_id.in_(ids))).all()
    if len(boxes) != len(set(ids)):
        raise NotFound(_("No such message."))
    return list(boxes)


def _moved(actor: User, boxes: list[Mailbox]) -> None:
    for b in boxes:
        feed.publish(actor.id, "message.moved", {
            "id": b.message_id, "folder": b.folder, "starred": b.starred,
            "snoozed_until": b.snoozed_until.isoformat() if b.snoozed_until else None,
            "labels": [label.id for label in b.labels]})


def move(actor: User, data: Mapping) -> int:
    values = load(MoveIn(), data)
    boxes = _boxes(actor, values["ids"])
    target = values["folder"]
    for b in boxes:
        home = "sent" if b.role == "sender" else "inbox"
        if b.folder in ("drafts", "scheduled") or target not in (home, "archive"):
            raise ValidationError(_("This message cannot go to that folder."))
        b.folder = target
        if target != "archive":
            b.snoozed_until = None
    _moved(actor, boxes)
    return len(boxes)


def star(actor: User, data: Mapping) -> int:
    values = load(StarIn(), data)
    boxes = _boxes(actor, values["ids"])
    for b in boxes:
        b.starred = values["starred"]
    _moved(actor, boxes)
    return len(boxes)


def snooze(actor: User, message_id: int, data: Mapping) -> Mailbox:
    """Hide a received message until a time; it then comes back to the inbox."""
    values = load(SnoozeIn(), data)
    box = box_of(actor, message_id)
    if box.role != "recipient":
        raise ValidationError(_("Only received messages can be deferred."))
    if values["until"] <= utcnow():
        raise ValidationError(_("Choose a time in the future."),
                              {"until": [_("Choose a time in the future.")]})
    box.snoozed_until, box.folder = values["until"], "inbox"
    _moved(actor, [box])
    return box


def wake_snoozed(now: datetime) -> int:
    """Snoozed messages whose time has come are back in the inbox, unread, and say so."""
    boxes = db.session.scalars(select(Mailbox).where(Mailbox.snoozed_until <= now)
                               .with_for_update(skip_locked=True).limit(500)).all()
    for b in boxes:
        b.snoozed_until, b.read_at = None, None
        feed.publish(b.user_id, "message.moved", {"id": b.message_id, "folder": b.folder,
                                                  "starred": b.starred, "snoozed_until": None,
                                                  "labels": [label.id for label in b.labels]})
    return len(boxes)


def labels_of(actor: User) -> list[Label]:
    return list(db.session.scalars(select(Label).where(Label.user_id == actor.id)
                                   .order_by(Label.name)))


def create_label(actor: User, data: Mapping) -> Label:
    values = load(LabelIn(), data)
    name = " ".join(values["name"].split())
    if db.session.scalar(select(Label.id).where(Label.user_id == actor.id, Label.name == name)):
        raise Conflict(_("You already have a label with this name."))
    label = Label(user_id=actor.id, name=name, color=values["color"])
    db.session.add(label)
    db.session.flush()
    return label


def delete_label(actor: User, label_id: int) -> None:
    label = db.session.get(Label, label_id)
    if label is None or label.user_id != actor.id:
        raise NotFound(_("No such label."))
    db.session.delete(label)


def set_labels(actor: User, message_id: int, data: Mapping) -> Mailbox:
    values = load(LabelsSetIn(), data)
    box = box_of(actor, message_id)
    wanted = set(values["label_ids"])
    mine = {label.id: label for label in labels_of(actor)}
    if not wanted <= set(mine):
        raise NotFound(_("No such label."))
    box.labels = [mine[i] for i in sorted(wanted)]
    _moved(actor, [box])
    return box


# --- lists of messages, threads -----------------------------------------------------------

def folder_query(actor: User, folder: str | None = "inbox", label_id: int | None = None):
    """Mailbox rows of a folder (None: every folder but drafts, for a label's view), newest
    first, message and sender loaded (the caller pages)."""
    now = utcnow()
    stmt = (select(Mailbox).join(Message, Message.id == Mailbox.message_id)
            .options(joinedload(Mailbox.message).joinedload(Message.sender),
                     joinedload(Mailbox.message).selectinload(Message.addresses),
                     selectinload(Mailbox.labels))
            .where(Mailbox.user_id == actor.id))
    awake = or_(Mailbox.snoozed_until.is_(None), Mailbox.snoozed_until <= now)
    if folder == "inbox":
        stmt = stmt.where(Mailbox.folder == "inbox", awake)
    elif folder == "deferred":
        stmt = stmt.where(or_(Mailbox.folder == "scheduled", Mailbox.snoozed_until > now))
    elif folder == "starred":
        stmt = stmt.where(Mailbox.starred.is_(True))
    elif folder is None:
        stmt = stmt.where(Mailbox.folder != "drafts")
    else:
        stmt = stmt.where(Mailbox.folder == folder)
    if label_id is not None:
        stmt = stmt.where(Mailbox.id.in_(select(BoxLabel.box_id).where(BoxLabel.label_id == label_id)))
    order = func.coalesce(Message.sent_at, Message.send_at, Message.updated_at)
    return stmt.order_by(order.desc(), Message.id.desc())


def counts(actor: User) -> dict[str, int]:
    """Unread in the inbox, and how many drafts and deferred messages: the folder badges."""
    now = utcnow()
    row = db.session.execute(select(
        func.count().filter(Mailbox.folder == "inbox", Mailbox.role == "recipient",
                            Mailbox.read_at.is_(None),
                            or_(Mailbox.snoozed_until.is_(None), Mailbox.snoozed_until <= now)),
        func.count().filter(Mailbox.folder == "drafts"),
        func.count().filter(or_(Mailbox.folder == "scheduled", Mailbox.snoozed_until > now)),
    ).where(Mailbox.user_id == actor.id)).one()
    return {"unread": row[0], "drafts": row[1], "deferred": row[2]}


def unread_counts(user_ids: list[int]) -> dict[int, int]:
    """Unread inbox messages per person, in one query (the feed attaches it to events)."""
    now = utcnow()
    rows = db.session.execute(
        select(Mailbox.user_id, func.count()).where(
            among(Mailbox.user_id, user_ids), Mailbox.folder == "inbox",
            Mailbox.role == "recipient", Mailbox.read_at.is_(None),
            or_(Mailbox.snoozed_until.is_(None), Mailbox.snoozed_until <= now))
        .group_by(Mailbox.user_id)).all()
    found = dict(rows)
    return {uid: found.get(uid, 0) for uid in user_ids}


def thread(actor: User, message_id: int) -> list[Mailbox]:
    """The whole conversation the actor may see, oldest first."""
    box = box_of(actor, message_id)
    root = box.message.thread_id or box.message.id
    return list(db.session.scalars(
        select(Mailbox).join(Message, Message.id == Mailbox.message_id)
        .options(joinedload(Mailbox.message).joinedload(Message.sender),
                 joinedload(Mailbox.message).selectinload(Message.addresses),
                 selectinload(Mailbox.labels))
        .where(Mailbox.user_id == actor.id,
               or_(Message.thread_id == root, Message.id == root))
        .order_by(func.coalesce(Message.sent_at, Message.updated_at), Message.id)))


def reply_template(actor: User, message_id: int, mode: str = "reply") -> dict:
    """What a reply, reply-all or forward starts with."""
    box = box_of(actor, message_id)
    msg = box.message
    subject = msg.subject
    if mode == "forward":
        quoted = "\n".join(f"> {line}" for line in msg.body.splitlines())
        return {"to": [], "subject": _prefixed("Fwd: ", subject), "forward_of": msg.id,
                "body": f"\n\n---\n{msg.sender.name}:\n{quoted}", "kind": "ordinary"}
    to = [f"user:{msg.sender_id}"] if msg.sender_id != actor.id else []
    if mode == "all" or msg.sender_id == actor.id:
        to += [f"{a.kind}:{a.target_id}" for a in msg.addresses if a.kind != "all"]
    to = [t for t in dict.fromkeys(to) if t != f"user:{actor.id}"]
    return {"to": to, "subject": _prefixed("Re: ", subject), "parent_id": msg.id, "body": "",
            "kind": "report" if msg.kind == "request" else "ordinary"}


def _prefixed(prefix: str, subject: str) -> str:
    return subject if subject.lower().startswith(prefix.lower()) else f"{prefix}{subject}"[:300]


# --- a post's mail follows the post -------------------------------------------------------

def on_post_holder_added(assignment, actor=None, **_kw) -> None:
    """The new holder of a post gets the mail written to the post before them (as read,
    except requests nobody on the post has answered)."""
    post_id, user_id = assignment.post_id, assignment.user_id
    addressed = select(Address.message_id).where(Address.kind == "post", Address.target_id == post_id)
    have = select(Mailbox.message_id).where(Mailbox.user_id == user_id)
    messages = db.session.scalars(select(Message).where(
        Message.id.in_(addressed), Message.id.not_in(have), Message.state == "sent",
        Message.sender_id != user_id)).all()
    if not messages:
        return
    ids = [m.id for m in messages]
    answered = set(db.session.scalars(select(Mailbox.message_id).where(
        Mailbox.message_id.in_(ids), Mailbox.via_post_id == post_id,
        Mailbox.answered_at.is_not(None))))
    now = utcnow()
    db.session.execute(insert(Mailbox), [
        {"message_id": m.id, "user_id": user_id, "role": "recipient", "via_post_id": post_id,
         "folder": "inbox", "starred": False, "created_at": now,
         "read_at": now if m.kind != "request" or m.id in answered else None,
         "reply_due_at": m.reply_due_at if m.kind == "request" else None,
         "answered_at": now if m.id in answered else None} for m in messages])
    feed.publish(user_id, "mailbox.reload", {"post_id": post_id, "added": len(ids)})


# --- mailing lists ------------------------------------------------------------------------

def lists_for(actor: User) -> list[MailingList]:
    return list(db.session.scalars(
        select(MailingList).options(selectinload(MailingList.members), joinedload(MailingList.owner))
        .where(MailingList.archived_at.is_(None),
               or_(MailingList.owner_id == actor.id, MailingList.shared.is_(True)))
        .order_by(MailingList.name)))


def _list_members(actor: User, tokens: list[str]) -> list[ListMember]:
    members = parse_addresses(actor, tokens, allow_lists=False)
    return [ListMember(kind=a.kind, target_id=a.target_id, label=a.label) for a in members]


def create_list(actor: User, data: Mapping) -> MailingList:
    values = load(ListIn(), data)
    ml = MailingList(owner_id=actor.id, name=" ".join(values["name"].split()),
                     shared=values["shared"], members=_list_members(actor, values["members"]))
    db.session.add(ml)
    db.session.flush()
    audit.record(actor, "mail.list.create", "mail_list", ml.id,
                 after={"name": ml.name, "shared": ml.shared, "members": values["members"]})
    return ml


def _own_list(actor: User, list_id: int) -> MailingList:
    ml = db.session.get(MailingList, list_id)
    if ml is None or ml.archived_at is not None or not (ml.owner_id == actor.id or ml.shared):
        raise NotFound(_("No such mailing list."))
    if ml.owner_id != actor.id:
        raise PermissionDenied(_("Only the owner of a list may change it."))
    return ml


def update_list(actor: User, list_id: int, data: Mapping) -> MailingList:
    values = load(ListIn(), data)
    ml = _own_list(actor, list_id)
    before = {"name": ml.name, "shared": ml.shared}
    ml.name, ml.shared = " ".join(values["name"].split()), values["shared"]
    kept = {(m.kind, m.target_id): m for m in ml.members}  # unchanged members keep their rows
    ml.members = [kept.get((m.kind, m.target_id), m) for m in _list_members(actor, values["members"])]
    audit.record(actor, "mail.list.update", "mail_list", ml.id, before=before,
                 after={"name": ml.name, "shared": ml.shared, "members": values["members"]})
    return ml


def archive_list(actor: User, list_id: int) -> MailingList:
    ml = _own_list(actor, list_id)
    ml.archived_at = utcnow()
    audit.record(actor, "mail.list.archive", "mail_list", ml.id)
    return ml


# --- preferences --------------------------------------------------------------------------

def preference(user_id: int) -> Preference:
    return db.session.get(Preference, user_id) or Preference(user_id=user_id,
                                                             email_mode="immediate")


def set_preference(actor: User, data: Mapping) -> Preference:
    values = load(PreferenceIn(), data)
    pref = db.session.get(Preference, actor.id) or Preference(user_id=actor.id)
    pref.email_mode = values["email_mode"]
    db.session.add(pref)
    return pref


# --- requests waiting for a reply ---------------------------------------------------------

def overdue_query(actor: User, scope: str = "mine"):
    """Requests past their reply time and not answered: to me ("mine"), from me ("sent"),
    or to the people under me ("team")."""
    now = utcnow()
    stmt = (select(Mailbox).join(Message, Message.id == Mailbox.message_id)
            .options(joinedload(Mailbox.message).joinedload(Message.sender),
                     joinedload(Mailbox.user))
            .where(Mailbox.role == "recipient", Mailbox.answered_at.is_(None),
                   Mailbox.reply_due_at < now, Message.state == "sent"))
    if scope == "sent":
        stmt = stmt.where(Message.sender_id == actor.id)
    elif scope == "team":
        team = [u.id for u in charts.load().subordinates_of(actor.id)]
        stmt = stmt.where(Mailbox.user_id.in_(team))
    else:
        stmt = stmt.where(Mailbox.user_id == actor.id)
    return stmt.order_by(Mailbox.reply_due_at)


def unanswered_by_user(user_ids: list[int]) -> dict[int, int]:
    """Open requests per person (the chart's workload)."""
    rows = db.session.execute(
        select(Mailbox.user_id, func.count()).join(Message, Message.id == Mailbox.message_id)
        .where(Mailbox.user_id.in_(user_ids), Mailbox.role == "recipient",
               Mailbox.reply_due_at.is_not(None), Mailbox.answered_at.is_(None),
               Message.state == "sent")
        .group_by(Mailbox.user_id)).all()
    return dict(rows)


def unanswered_by_post(post_ids: list[int]) -> dict[int, int]:
    """Open requests addressed to each post."""
    rows = db.session.execute(
        select(Address.target_id, func.count(func.distinct(Address.message_id)))
        .join(Mailbox, and_(Mailbox.message_id == Address.message_id,
                            Mailbox.via_post_id == Address.target_id))
        .where(Address.kind == "post", Address.target_id.in_(post_ids),
               Mailbox.answered_at.is_(None), Mailbox.reply_due_at.is_not(None))
        .group_by(Address.target_id)).all()
    return dict(rows)
