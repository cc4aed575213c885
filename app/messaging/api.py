"""JSON API of the mail under /api/v1: messages, folders, threads, receipts, lists, labels,
preferences, and the caller's feed of changes.

Every call acts as the bearer of a personal token, or as the signed-in person of a browser
session (then changing calls carry the page's CSRF token in `X-CSRFToken`). The services
decide everything; these endpoints only shape what goes in and what comes out. A message
comes out with the caller's own mailbox row (folder, read, starred, labels, confirmation):
never anyone else's.
"""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.core import feed, markup
from app.core.api_base import page_envelope, paginated, session_api_blueprint
from app.core.errors import NotFound, PermissionDenied
from app.core.models import Attachment
from app.core.schemas import AttachmentSchema
from app.extensions import db
from app.messaging import services
from app.messaging.models import Mailbox, MailingList, Message, Revision
from app.messaging.schemas import (
    ComposeIn,
    CorrectionIn,
    EditIn,
    FolderArgs,
    LabelIn,
    LabelsSetIn,
    ListIn,
    MoveIn,
    PreferenceIn,
    ReadIn,
    SnoozeIn,
    StarIn,
)

ALL: list = []  # flask-smorest blueprints, registered by app.messaging.register


def _blueprint(name: str, url_prefix: str, description: str):
    return session_api_blueprint(name, __name__, url_prefix, description)


def _me():
    return g.api_user


messages_api = _blueprint("mail_messages_api", "/messages",
                          "Mail: folders, sending, drafts, threads, receipts, read state, labels")
feed_api = _blueprint("mail_feed_api", "/feed", "The caller's feed of changes, in commit order")
lists_api = _blueprint("mail_lists_api", "/mailing-lists", "Saved mailing lists")
labels_api = _blueprint("mail_labels_api", "/mail-labels", "The caller's mail labels")
prefs_api = _blueprint("mail_prefs_api", "/mail-preferences", "The caller's e-mail notice setting")


# --- what comes out -----------------------------------------------------------------------

class MailPerson(Schema):
    id = fields.Integer()
    name = fields.String()


class MailAddress(Schema):
    kind = fields.String(metadata={"description": "user, post, unit, list or all"})
    target_id = fields.Integer(allow_none=True)
    label = fields.String(metadata={"description": "the name when the message was written"})


class MailLabel(Schema):
    id = fields.Integer()
    name = fields.String()
    color = fields.String()


class MailBoxState(Schema):
    """The caller's own copy of a message."""

    role = fields.String(metadata={"description": "sender or recipient"})
    folder = fields.String(metadata={"description": "inbox, sent, drafts, scheduled or archive"})
    read = fields.Boolean()
    read_at = fields.DateTime(allow_none=True)
    starred = fields.Boolean()
    labels = fields.List(fields.Nested(MailLabel))
    confirmed = fields.Boolean()
    confirmed_at = fields.DateTime(allow_none=True)
    snoozed_until = fields.DateTime(allow_none=True)
    via_post_id = fields.Integer(allow_none=True,
                                 metadata={"description": "the post it reached the caller through"})
    reply_due_at = fields.DateTime(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)


class MailMessage(Schema):
    id = fields.Integer()
    thread_id = fields.Integer(allow_none=True)
    parent_id = fields.Integer(allow_none=True)
    forwarded_id = fields.Integer(allow_none=True)
    kind = fields.String()
    importance = fields.String()
    state = fields.String(metadata={"description": "draft, scheduled, sent or recalled"})
    subject = fields.String(metadata={"description": "plain text; escape it when showing it"})
    snippet = fields.String()
    sender = fields.Nested(MailPerson)
    to = fields.List(fields.Nested(MailAddress))
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    send_at = fields.DateTime(allow_none=True)
    reply_due_at = fields.DateTime(allow_none=True)
    edited_at = fields.DateTime(allow_none=True)
    attachment_count = fields.Integer()
    box = fields.Nested(MailBoxState)


class MailRevision(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "edit (the earlier version) or correction"})
    subject = fields.String()
    body = fields.String()
    body_html = fields.String()
    created_at = fields.DateTime()


class MailMessageDetail(MailMessage):
    body = fields.String(metadata={"description": "Markdown as written"})
    body_html = fields.String(metadata={"description": "rendered and sanitised"})
    attachments = fields.List(fields.Nested(AttachmentSchema))
    history = fields.List(fields.Nested(MailRevision))
    editable = fields.Boolean(metadata={"description": "the caller sent it and nobody has read it"})
    external_to = fields.String(allow_none=True, metadata={"description": "shown to the sender"})
    local_id = fields.String(allow_none=True, metadata={"description": "shown to the sender"})


class MailChanged(Schema):
    changed = fields.Integer()


class MailCounts(Schema):
    unread = fields.Integer()
    drafts = fields.Integer()
    deferred = fields.Integer()


class MailReadResult(MailChanged):
    counts = fields.Nested(MailCounts)


class MailDeleted(Schema):
    id = fields.Integer()
    state = fields.String(metadata={"description": "deleted (a draft) or recalled (a sent message)"})


class MailReceipt(Schema):
    user = fields.Nested(MailPerson)
    via_post_id = fields.Integer(allow_none=True)
    read_at = fields.DateTime(allow_none=True)
    confirmed_at = fields.DateTime(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)


class MailReceipts(Schema):
    total = fields.Integer()
    read = fields.Integer()
    confirmed = fields.Integer()
    recipients = fields.List(fields.Nested(MailReceipt))


class FeedEventOut(Schema):
    seq = fields.Integer()
    kind = fields.String()
    payload = fields.Dict()


class FeedOut(Schema):
    events = fields.List(fields.Nested(FeedEventOut))
    more = fields.Boolean(metadata={"description": "ask again after the last event given"})
    reset = fields.Boolean(metadata={"description": "events were pruned: reload everything"})
    last = fields.Integer()


class MailListMember(Schema):
    kind = fields.String()
    target_id = fields.Integer()
    label = fields.String()


class MailingListOut(Schema):
    id = fields.Integer()
    name = fields.String()
    shared = fields.Boolean()
    mine = fields.Boolean()
    owner = fields.Nested(MailPerson)
    members = fields.List(fields.Nested(MailListMember))
    created_at = fields.DateTime()


class MailPreference(Schema):
    email_mode = fields.String()


# --- what goes in (beyond app.messaging.schemas) ------------------------------------------

class MailFolderArgs(FolderArgs):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


class MailingListPatch(ListIn):
    """Only the fields given change."""


class FeedArgs(Schema):
    after = fields.Integer(required=True, validate=validate.Range(min=0),
                           metadata={"description": "the number of the last event the client has"})


MailMessagePage = page_envelope(MailMessage)


# --- shaping ------------------------------------------------------------------------------

def _box(box: Mailbox) -> dict:
    return {"role": box.role, "folder": box.folder, "read": box.read_at is not None,
            "read_at": box.read_at, "starred": box.starred, "labels": list(box.labels),
            "confirmed": box.confirmed_at is not None, "confirmed_at": box.confirmed_at,
            "snoozed_until": box.snoozed_until, "via_post_id": box.via_post_id,
            "reply_due_at": box.reply_due_at, "answered_at": box.answered_at}


def _attachments_of(ids: list[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = {i: [] for i in ids}
    if ids:
        for att in db.session.scalars(select(Attachment).where(
                Attachment.owner_type == services.OWNER, Attachment.owner_id.in_(ids))
                .order_by(Attachment.id)):
            found[att.owner_id].append(att)
    return found


def _attachment_counts(ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    return dict(db.session.execute(
        select(Attachment.owner_id, func.count()).where(
            Attachment.owner_type == services.OWNER, Attachment.owner_id.in_(ids))
        .group_by(Attachment.owner_id)).all())


def _history_of(ids: list[int]) -> dict[int, list[Revision]]:
    found: dict[int, list[Revision]] = {i: [] for i in ids}
    if ids:
        for rev in db.session.scalars(select(Revision).where(Revision.message_id.in_(ids))
                                      .order_by(Revision.created_at, Revision.id)):
            found[rev.message_id].append(rev)
    return found


def _summary(box: Mailbox, attachment_count: int) -> dict:
    msg = box.message
    return {"id": msg.id, "thread_id": msg.thread_id, "parent_id": msg.parent_id,
            "forwarded_id": msg.forwarded_id, "kind": msg.kind, "importance": msg.importance,
            "state": msg.state, "subject": msg.subject,
            "snippet": markup.plain(msg.body_html)[:160], "sender": msg.sender,
            "to": list(msg.addresses), "created_at": msg.created_at, "sent_at": msg.sent_at,
            "send_at": msg.send_at, "reply_due_at": msg.reply_due_at, "edited_at": msg.edited_at,
            "attachment_count": attachment_count, "box": _box(box)}


def _summaries(boxes: list[Mailbox]) -> list[dict]:
    counts = _attachment_counts([b.message_id for b in boxes])
    return [_summary(b, counts.get(b.message_id, 0)) for b in boxes]


def _details(boxes: list[Mailbox]) -> list[dict]:
    """Messages with body, files and history: three queries for any number of messages."""
    ids = [b.message_id for b in boxes]
    files, history = _attachments_of(ids), _history_of(ids)
    out = []
    for b in boxes:
        msg, mine = b.message, b.role == "sender"
        out.append({
            **_summary(b, len(files[b.message_id])),
            "body": msg.body, "body_html": msg.body_html, "attachments": files[b.message_id],
            "history": history[b.message_id],
            "editable": mine and msg.state == "sent" and msg.first_read_at is None,
            "external_to": msg.external_to if mine else None,
            "local_id": msg.local_id if mine else None})
    return out


def _detail(message_id: int) -> dict:
    return _details([services.box_of(_me(), message_id)])[0]


def _sent_before(local_id: str | None) -> bool:
    """Whether the caller already sent (or scheduled) a message with this local id."""
    if not local_id:
        return False
    return db.session.scalar(select(Message.id).where(
        Message.sender_id == _me().id, Message.local_id == local_id,
        Message.state != "draft")) is not None


def _draft_exists(values: dict) -> bool:
    if values.get("draft_id") is not None:
        return True
    if not values.get("local_id"):
        return False
    return db.session.scalar(select(Message.id).where(
        Message.sender_id == _me().id, Message.local_id == values["local_id"])) is not None


def _check_label(label_id: int | None) -> None:
    if label_id is not None and label_id not in {lb.id for lb in services.labels_of(_me())}:
        raise NotFound(_("No such label."))


# --- messages -----------------------------------------------------------------------------

@messages_api.route("")
class Messages(MethodView):
    @messages_api.arguments(MailFolderArgs, location="query")
    @messages_api.response(200, MailMessagePage)
    def get(self, args):
        """A folder of the caller's mail, newest first.

        `folder`: inbox, sent, drafts, deferred (scheduled or snoozed), archive, starred
        (also scheduled); `label_id`: only messages with one of the caller's labels."""
        _check_label(args["label_id"])
        page = paginated(services.folder_query(_me(), args["folder"], args["label_id"]),
                         args["page"], args["per_page"])
        page["items"] = _summaries(page["items"])
        return page

    @messages_api.arguments(ComposeIn)
    @messages_api.response(201, MailMessageDetail)
    @messages_api.alt_response(200, schema=MailMessageDetail,
                               description="A message with this local_id was already sent by the "
                                           "caller: it is returned and nothing new is delivered.")
    def post(self, data):
        """Send a message now, or at `send_at` (it then waits in the deferred folder).

        `to` takes "user:<id>", "post:<id>", "unit:<id>", "list:<id>" and, for broadcasts,
        "all". Give `draft_id` to send a saved draft. Give a `local_id` of your choosing:
        sending the same local id again answers 200 with the first message and delivers
        nothing new (a safe retry after a lost answer)."""
        replay = _sent_before(data.get("local_id"))
        msg = services.send(_me(), data)
        db.session.flush()
        return _detail(msg.id), 200 if replay else 201


@messages_api.route("/drafts", methods=["POST"])
@messages_api.arguments(ComposeIn)
@messages_api.response(201, MailMessageDetail)
@messages_api.alt_response(200, schema=MailMessageDetail, description="An existing draft was saved.")
def save_draft(data):
    """Save a draft (autosave): 201 for a new one; 200 when `draft_id` (or a `local_id` used
    before) names an existing draft. Only the recipients are checked; the rest may be
    unfinished."""
    existed = _draft_exists(data)
    msg = services.save_draft(_me(), data)
    db.session.flush()
    return _detail(msg.id), 200 if existed else 201


@messages_api.route("/<int:message_id>")
class MessageItem(MethodView):
    @messages_api.response(200, MailMessageDetail)
    def get(self, message_id):
        """A message the caller sent or received, with its files, history and the caller's
        own state. Reading it here does not mark it read (POST /messages/read does)."""
        return _detail(message_id)

    @messages_api.arguments(EditIn)
    @messages_api.response(200, MailMessageDetail)
    def patch(self, data, message_id):
        """Change the subject or body of a sent message nobody has read yet (409 after
        that: add a correction instead). The earlier version stays in the history."""
        services.edit(_me(), message_id, data)
        return _detail(message_id)

    @messages_api.response(200, MailDeleted)
    def delete(self, message_id):
        """Delete a draft or scheduled message, or recall a sent one nobody has read yet
        (409 after that). Recipients move mail to the archive instead."""
        box = services.box_of(_me(), message_id)
        if box.role != "sender":
            raise PermissionDenied(_("Only the sender may delete or recall a message; "
                                     "move it to the archive instead."))
        if box.message.state in ("draft", "scheduled"):
            services.delete_draft(_me(), message_id)
            return {"id": message_id, "state": "deleted"}
        msg = services.recall(_me(), message_id)
        return {"id": msg.id, "state": msg.state}


@messages_api.route("/<int:message_id>/thread")
@messages_api.response(200, MailMessageDetail(many=True))
def message_thread(message_id):
    """The whole conversation the caller may see, oldest first."""
    return _details(services.thread(_me(), message_id))


@messages_api.route("/<int:message_id>/corrections", methods=["POST"])
@messages_api.arguments(CorrectionIn)
@messages_api.response(201, MailRevision)
def add_correction(data, message_id):
    """Add a correction to a message the caller sent (allowed after it was read)."""
    return services.correct(_me(), message_id, data)


@messages_api.route("/<int:message_id>/confirm", methods=["POST"])
@messages_api.response(200, MailMessageDetail)
def confirm(message_id):
    """Confirm a received directive: read, and will be followed. The sender sees it."""
    services.confirm(_me(), message_id)
    return _detail(message_id)


@messages_api.route("/<int:message_id>/receipts")
@messages_api.response(200, MailReceipts)
def receipts(message_id):
    """Who received the caller's message, who has read it and who has confirmed it
    (the sender only)."""
    boxes = services.receipts(_me(), message_id)
    return {"total": len(boxes), "read": sum(b.read_at is not None for b in boxes),
            "confirmed": sum(b.confirmed_at is not None for b in boxes),
            "recipients": [{"user": b.user, "via_post_id": b.via_post_id, "read_at": b.read_at,
                            "confirmed_at": b.confirmed_at, "answered_at": b.answered_at}
                           for b in boxes]}


@messages_api.route("/<int:message_id>/snooze", methods=["POST"])
@messages_api.arguments(SnoozeIn)
@messages_api.response(200, MailMessageDetail)
def snooze(data, message_id):
    """Hide a received message until `until`; it then comes back to the inbox unread."""
    services.snooze(_me(), message_id, data)
    return _detail(message_id)


@messages_api.route("/<int:message_id>/labels", methods=["PUT"])
@messages_api.arguments(LabelsSetIn)
@messages_api.response(200, MailMessageDetail)
def set_labels(data, message_id):
    """Replace the caller's labels on a message (label ids of the caller's own labels)."""
    services.set_labels(_me(), message_id, data)
    return _detail(message_id)


@messages_api.route("/read", methods=["POST"])
@messages_api.arguments(ReadIn)
@messages_api.response(200, MailReadResult)
def mark_read(data):
    """Mark received messages read (`read`: true, the default) or unread; senders get a
    receipt. Ids of messages the caller did not receive change nothing."""
    changed = services.mark_read(_me(), data)
    return {"changed": changed, "counts": services.counts(_me())}


@messages_api.route("/move", methods=["POST"])
@messages_api.arguments(MoveIn)
@messages_api.response(200, MailChanged)
def move(data):
    """Move messages to the archive, or back to the inbox (received) or sent (own)."""
    return {"changed": services.move(_me(), data)}


@messages_api.route("/star", methods=["POST"])
@messages_api.arguments(StarIn)
@messages_api.response(200, MailChanged)
def star(data):
    """Star or unstar messages."""
    return {"changed": services.star(_me(), data)}


@messages_api.route("/counts")
@messages_api.response(200, MailCounts)
def counts():
    """The folder badges: unread in the inbox, drafts, deferred."""
    return services.counts(_me())


# --- the feed -----------------------------------------------------------------------------

@feed_api.route("")
@feed_api.arguments(FeedArgs, location="query")
@feed_api.response(200, FeedOut)
def feed_since(args):
    """The caller's events after number `after`, oldest first, at most 500 at a time
    (`more` says there are others). The same events come live over Socket.IO as "feed"."""
    return feed.since(_me().id, args["after"])


# --- mailing lists ------------------------------------------------------------------------

def _list_out(ml: MailingList) -> dict:
    return {"id": ml.id, "name": ml.name, "shared": ml.shared, "mine": ml.owner_id == _me().id,
            "owner": ml.owner, "members": list(ml.members), "created_at": ml.created_at}


@lists_api.route("")
class MailingLists(MethodView):
    @lists_api.response(200, MailingListOut(many=True))
    def get(self):
        """The caller's lists and the lists others share."""
        return [_list_out(ml) for ml in services.lists_for(_me())]

    @lists_api.arguments(ListIn)
    @lists_api.response(201, MailingListOut)
    def post(self, data):
        """A new list; `members` are "user:<id>", "post:<id>" or "unit:<id>", resolved to
        people each time a message is sent to the list."""
        return _list_out(services.create_list(_me(), data))


@lists_api.route("/<int:list_id>")
class MailingListItem(MethodView):
    @lists_api.arguments(MailingListPatch(partial=True))
    @lists_api.response(200, MailingListOut)
    def patch(self, data, list_id):
        """Rename, share or unshare, or replace the members of the caller's own list; fields
        left out keep their value."""
        ml = db.session.get(MailingList, list_id)
        current = {} if ml is None else {
            "name": ml.name, "shared": ml.shared,
            "members": [f"{m.kind}:{m.target_id}" for m in ml.members]}
        return _list_out(services.update_list(_me(), list_id, {**current, **data}))

    @lists_api.response(204)
    def delete(self, list_id):
        """Archive the caller's own list (messages sent to it keep their recipients)."""
        services.archive_list(_me(), list_id)


# --- labels -------------------------------------------------------------------------------

@labels_api.route("")
class Labels(MethodView):
    @labels_api.response(200, MailLabel(many=True))
    def get(self):
        """The caller's labels, by name."""
        return services.labels_of(_me())

    @labels_api.arguments(LabelIn)
    @labels_api.response(201, MailLabel)
    def post(self, data):
        """A new label (409 when the caller has one with this name)."""
        return services.create_label(_me(), data)


@labels_api.route("/<int:label_id>", methods=["DELETE"])
@labels_api.response(204)
def delete_label(label_id):
    """Delete one of the caller's labels; it leaves every message it was on."""
    services.delete_label(_me(), label_id)


# --- preferences --------------------------------------------------------------------------

@prefs_api.route("")
class Preferences(MethodView):
    @prefs_api.response(200, MailPreference)
    def get(self):
        """How the caller hears of mail while offline: off, immediate or digest."""
        return services.preference(_me().id)

    @prefs_api.arguments(PreferenceIn)
    @prefs_api.response(200, MailPreference)
    def put(self, data):
        return services.set_preference(_me(), data)


ALL.extend([messages_api, feed_api, lists_api, labels_api, prefs_api])
