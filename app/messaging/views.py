"""Pages of the mail: folders, a thread, compose, the recipient picker, mailing lists,
labels and settings. Every change goes through app.messaging.services."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import (
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date, format_time, ngettext, pgettext, to_user_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.core import attachments, feed, markup
from app.core import services as core_services
from app.core.clock import utcnow
from app.core.errors import DomainError, NotFound
from app.core.forms import MAX_ID, local_input, utc_from_local
from app.core.models import Attachment, User
from app.extensions import db
from app.messaging import bp, services
from app.messaging.jobs import DIGEST_EVERY
from app.messaging.models import Mailbox, Message, Revision
from app.orgchart import chart as charts
from app.orgchart import services as org

FOLDER_ICONS = {"inbox": "inbox", "starred": "star", "sent": "send", "drafts": "pencil-square",
                "deferred": "clock", "archive": "archive"}  # the left column, in order


def folder_names() -> dict[str, str]:
    """Folder names are nouns ("Archive" the folder, not the button): given a context."""
    return {"inbox": pgettext("mail folder", "Inbox"), "starred": pgettext("mail folder", "Starred"),
            "sent": pgettext("mail folder", "Sent"), "drafts": pgettext("mail folder", "Drafts"),
            "deferred": pgettext("mail folder", "Deferred"),
            "archive": pgettext("mail folder", "Archive")}


KIND_NAMES = {"ordinary": _l("Ordinary"), "request": _l("Request"), "report": _l("Report"),
              "directive": _l("Directive"), "broadcast": _l("Broadcast")}
IMPORTANCE_NAMES = {"low": _l("Low"), "normal": _l("Normal"), "high": _l("High")}
LABEL_COLORS = ["secondary", "primary", "success", "danger", "warning", "info", "dark"]
PICK_LIMIT = 8


@bp.url_value_preprocessor
def _ids_in_range(endpoint, values):
    """An id no row can have is simply not found (PostgreSQL refuses to compare it)."""
    if any(isinstance(v, int) and not 0 < v <= MAX_ID for v in (values or {}).values()):
        abort(404)


def _arg_id(name: str) -> int | None:
    value = request.args.get(name, type=int)
    if value is not None and not 0 < value <= MAX_ID:
        abort(404)
    return value


# --- shared by the templates ----------------------------------------------------------

@bp.app_context_processor
def mail_shell():
    """The navbar's mail badge and the feed cursor; both are functions, so a page pays for
    them only when it renders the shell (fragments do not)."""
    if not has_request_context():
        return {}

    def mail_badge() -> dict:
        return {"url": url_for("messaging.inbox"), "count": _counts()["unread"]}

    def feed_seq() -> int:
        return feed.last_seq(current_user.id)

    # Pages extending messaging/layout.html get the left column without asking for it.
    return {"mail_badge": mail_badge, "feed_seq": feed_seq, "mail_sidebar": _sidebar}


@bp.app_template_filter("mailtime")
def mailtime(value: datetime | None) -> str:
    """Short time for lists, in the user's zone: the hour today, the day this year."""
    if value is None:
        return ""
    local, today = to_user_timezone(value), to_user_timezone(utcnow()).date()
    if local.date() == today:
        return format_time(value, "short")
    if local.year == today.year:
        return format_date(value, "d MMM")
    return format_date(value, "short")


@bp.app_template_filter("snippet")
def snippet(html: str, n: int = 140) -> str:
    text = markup.plain(html)
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + "…"




def _int(value: str | None):
    """A form's id field: empty is none; anything but an id in range is passed on as typed,
    so the schema refuses it."""
    value = (value or "").strip()
    if not value:
        return None
    return int(value) if value.isdigit() and 0 < int(value) <= MAX_ID else value


def _back(default: str) -> str:
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


def _run(action: Callable, ok: str | None, back: str, then: Callable | str | None = None):
    """Run a service from a form: flash the outcome and go on; on a domain error undo it,
    flash the reason and go back."""
    try:
        result = action()
    except DomainError as exc:
        db.session.rollback()
        details = " ".join(" ".join(str(m) for m in v) for v in exc.fields.values())
        flash(f"{exc.message} {details}".strip(), "danger")
        return redirect(_back(back))
    if ok:
        flash(ok, "success")
    return redirect(then(result) if callable(then) else (then or _back(back)))


def _links() -> dict:
    """The left column's links to pages other parts of the mail provide."""
    views = current_app.view_functions
    return {key: url_for(endpoint) for key, endpoint in (
        ("overdue", "messaging.overdue"), ("search", "messaging.search"),
        ("analytics", "messaging.analytics")) if endpoint in views}


def _counts() -> dict[str, int]:
    """The folder badges, counted once per page (after the page's own changes)."""
    if "_cache_mail_counts" not in g:
        g._cache_mail_counts = services.counts(current_user)
    return g._cache_mail_counts


def _sidebar(folder: str | None = None, label_id: int | None = None) -> dict:
    names = folder_names()
    return {"folders": [(key, names[key], icon) for key, icon in FOLDER_ICONS.items()],
            "counts": _counts(),
            "labels": services.labels_of(current_user), "links": _links(),
            "folder": folder, "label_id": label_id}


# --- folders ------------------------------------------------------------------------------

def _folder_args() -> tuple[str, int | None]:
    folder = request.args.get("folder", "inbox")
    if folder not in FOLDER_ICONS:
        abort(404)
    label_id = _arg_id("label")
    if label_id is not None and label_id not in {lb.id for lb in services.labels_of(current_user)}:
        abort(404)
    return folder, label_id


def _files_count(message_ids: list[int]) -> dict[int, int]:
    if not message_ids:
        return {}
    return dict(db.session.execute(
        select(Attachment.owner_id, func.count()).where(
            Attachment.owner_type == services.OWNER, Attachment.owner_id.in_(message_ids))
        .group_by(Attachment.owner_id)).all())


def _list_context(folder: str, label_id: int | None) -> dict:
    stmt = services.folder_query(current_user, None if label_id else folder, label_id)
    number = min(max(request.args.get("page", 1, type=int), 1), 100_000)
    page = db.paginate(stmt, page=number, per_page=current_app.config["PER_PAGE"], error_out=False)
    ids = [b.message_id for b in page.items]
    return {"page": page, "folder": folder, "label_id": label_id, "files": _files_count(ids),
            "now": utcnow(), "kind_names": KIND_NAMES,
            "title": _label_name(label_id) if label_id else folder_names()[folder]}


def _label_name(label_id: int) -> str:
    return next((lb.name for lb in services.labels_of(current_user) if lb.id == label_id), "")


@bp.route("/")
def inbox():
    """A folder (?folder=inbox|starred|sent|drafts|deferred|archive, &label=) paginated;
    htmx asks for the list alone (live refresh, bulk actions)."""
    folder, label_id = _folder_args()
    ctx = _list_context(folder, label_id)
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "mail-list":
        return render_template("messaging/_list.html", oob_sidebar=True, **ctx)
    return render_template("messaging/folder.html", sb=_sidebar(folder, label_id), **ctx)


BULK = {"read", "unread", "archive", "restore", "star", "unstar"}


@bp.route("/bulk", methods=["POST"])
def bulk():
    """Several messages at once: read/unread, archive/back, star/unstar."""
    action = request.form.get("action", "")
    ids = request.form.getlist("ids", type=int)
    folder = request.form.get("folder", "inbox")
    folder = folder if folder in FOLDER_ICONS else "inbox"
    label_id = request.form.get("label", type=int)
    label_id = label_id if label_id is not None and 0 < label_id <= MAX_ID else None
    back = url_for("messaging.inbox", folder=folder, label=label_id)
    if action not in BULK or not ids:
        flash(_("Choose messages and an action."), "warning")
        return _after_bulk(back, folder, label_id)
    if not all(0 < i <= MAX_ID for i in ids):
        flash(_("No such message."), "danger")
        return _after_bulk(back, folder, label_id)
    try:
        _bulk(action, ids)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    return _after_bulk(back, folder, label_id)


def _bulk(action: str, ids: list[int]) -> None:
    if action in ("read", "unread"):
        services.mark_read(current_user, {"ids": ids, "read": action == "read"})
    elif action in ("star", "unstar"):
        services.star(current_user, {"ids": ids, "starred": action == "star"})
    else:
        roles = dict(db.session.execute(select(Mailbox.message_id, Mailbox.role).where(
            Mailbox.user_id == current_user.id, Mailbox.message_id.in_(ids),
            Mailbox.folder.not_in(("drafts", "scheduled")))).all())
        if len(roles) != len(set(ids)):
            raise NotFound(_("Drafts and messages waiting to be sent cannot be moved."))
        if action == "archive":
            services.move(current_user, {"ids": ids, "folder": "archive"})
            return
        for role, home in (("recipient", "inbox"), ("sender", "sent")):
            chosen = [i for i, r in roles.items() if r == role]
            if chosen:
                services.move(current_user, {"ids": chosen, "folder": home})


def _after_bulk(back: str, folder: str, label_id: int | None):
    if request.headers.get("HX-Request"):
        return render_template("messaging/_list.html", oob_sidebar=True, flashes=True,
                               **_list_context(folder, label_id))
    return redirect(back)


@bp.route("/<int:message_id>/star", methods=["POST"])
def star(message_id: int):
    starred = request.form.get("starred") == "1"
    services.star(current_user, {"ids": [message_id], "starred": starred})
    if request.headers.get("HX-Request"):
        return render_template("messaging/_star.html", message_id=message_id, starred=starred)
    return redirect(_back(url_for("messaging.thread", message_id=message_id)))


# --- a thread -----------------------------------------------------------------------------

def _thread_context(message_id: int) -> dict:
    boxes = services.thread(current_user, message_id)
    ids = [b.message_id for b in boxes]
    unread = [b.message_id for b in boxes if b.role == "recipient" and b.read_at is None]
    if unread:  # opening a conversation reads it
        services.mark_read(current_user, {"ids": unread})
    revisions: dict[int, list[Revision]] = defaultdict(list)
    for rev in db.session.scalars(select(Revision).where(Revision.message_id.in_(ids))
                                  .order_by(Revision.created_at, Revision.id)):
        revisions[rev.message_id].append(rev)
    files: dict[int, list[Attachment]] = defaultdict(list)
    for att in db.session.scalars(select(Attachment).where(
            Attachment.owner_type == services.OWNER, Attachment.owner_id.in_(ids))
            .order_by(Attachment.id)):
        files[att.owner_id].append(att)
    own = [b.message_id for b in boxes if b.role == "sender"]
    receipts: dict[int, list[Mailbox]] = defaultdict(list)
    if own:
        for r in db.session.scalars(
                select(Mailbox).options(joinedload(Mailbox.user)).join(User, User.id == Mailbox.user_id)
                .where(Mailbox.message_id.in_(own), Mailbox.role == "recipient")
                .order_by(User.name)):
            receipts[r.message_id].append(r)
    current = next(b for b in boxes if b.message_id == message_id)
    root = boxes[0].message
    return {"boxes": boxes, "current": current, "root": root, "revisions": revisions,
            "files": files, "receipts": receipts, "now": utcnow(), "kind_names": KIND_NAMES,
            "importance_names": IMPORTANCE_NAMES, "labels": services.labels_of(current_user),
            "ids": ids, "local_input": local_input,
            "archived": current.folder == "archive",
            "snooze_presets": _snooze_presets()}


@bp.route("/<int:message_id>")
def thread(message_id: int):
    box = services.box_of(current_user, message_id)
    if box.message.state == "draft":
        return redirect(url_for("messaging.compose", draft=message_id))
    ctx = _thread_context(message_id)
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "thread":
        return render_template("messaging/_thread.html", **ctx)
    return render_template("messaging/thread.html", sb=_sidebar(box.folder), **ctx)


def _to_thread(message_id: int) -> str:
    return url_for("messaging.thread", message_id=message_id) + f"#m-{message_id}"


@bp.route("/<int:message_id>/confirm", methods=["POST"])
def confirm(message_id: int):
    return _run(lambda: services.confirm(current_user, message_id),
                _("Confirmed: the sender sees that you will follow it."), _to_thread(message_id))


@bp.route("/<int:message_id>/edit", methods=["POST"])
def edit(message_id: int):
    data = {"subject": request.form.get("subject", ""), "body": request.form.get("body", "")}
    return _run(lambda: services.edit(current_user, message_id, data),
                _("The message is changed; recipients see the earlier version too."),
                _to_thread(message_id))


@bp.route("/<int:message_id>/recall", methods=["POST"])
def recall(message_id: int):
    return _run(lambda: services.recall(current_user, message_id),
                _("The message is recalled: nobody had read it, and it is gone from their mail."),
                _to_thread(message_id))


@bp.route("/<int:message_id>/correct", methods=["POST"])
def correct(message_id: int):
    data = {"body": request.form.get("body", "")}
    return _run(lambda: services.correct(current_user, message_id, data),
                _("The correction is added."), _to_thread(message_id))


def _snooze_presets() -> list[tuple[str, str]]:
    return [("evening", _("This evening, 18:00")), ("tomorrow", _("Tomorrow, 9:00")),
            ("monday", _("Next Monday, 9:00"))]


def _preset_time(preset: str) -> str | None:
    tz = ZoneInfo(current_user.timezone or "UTC")
    now = utcnow().astimezone(tz)
    if preset == "evening":
        day = now.date() if now.hour < 17 else now.date() + timedelta(days=1)
        moment = datetime.combine(day, time(18), tzinfo=tz)
    elif preset == "tomorrow":
        moment = datetime.combine(now.date() + timedelta(days=1), time(9), tzinfo=tz)
    elif preset == "monday":
        moment = datetime.combine(now.date() + timedelta(days=7 - now.weekday()), time(9), tzinfo=tz)
    else:
        return None
    return moment.astimezone(UTC).isoformat()


@bp.route("/<int:message_id>/snooze", methods=["POST"])
def snooze(message_id: int):
    until = _preset_time(request.form.get("preset", "")) or utc_from_local(request.form.get("until"))
    return _run(lambda: services.snooze(current_user, message_id, {"until": until}),
                _("Deferred: it comes back to your inbox at the time you chose."),
                _to_thread(message_id), then=url_for("messaging.inbox"))


@bp.route("/<int:message_id>/labels", methods=["POST"])
def set_labels(message_id: int):
    ids = [_int(v) for v in request.form.getlist("label_ids")]
    return _run(lambda: services.set_labels(current_user, message_id, {"label_ids": ids}),
                _("Labels saved."), _to_thread(message_id))


@bp.route("/<int:message_id>/archive", methods=["POST"])
def archive(message_id: int):
    """The conversation leaves the inbox (or comes back, with restore=1)."""
    restore = request.form.get("restore") == "1"
    boxes = services.thread(current_user, message_id)

    def move():
        if restore:
            chosen = [b for b in boxes if b.folder == "archive"]
            for role, home in (("recipient", "inbox"), ("sender", "sent")):
                ids = [b.message_id for b in chosen if b.role == role]
                if ids:
                    services.move(current_user, {"ids": ids, "folder": home})
            return
        ids = [b.message_id for b in boxes if b.folder == "inbox"] or [message_id]
        services.move(current_user, {"ids": ids, "folder": "archive"})

    if restore:
        return _run(move, _("Back in the inbox."), _to_thread(message_id))
    return _run(move, _("Archived."), _to_thread(message_id), then=url_for("messaging.inbox"))


@bp.route("/<int:message_id>/unread", methods=["POST"])
def mark_unread(message_id: int):
    return _run(lambda: services.mark_read(current_user, {"ids": [message_id], "read": False}),
                None, _to_thread(message_id), then=url_for("messaging.inbox"))


@bp.route("/<int:message_id>/unschedule", methods=["POST"])
def unschedule(message_id: int):
    return _run(lambda: services.unschedule(current_user, message_id),
                _("It will not be sent; it is back in your drafts."), _to_thread(message_id),
                then=url_for("messaging.compose", draft=message_id))


# --- compose ------------------------------------------------------------------------------

def _chips(tokens: list[str], known: dict[str, str] | None = None) -> list[dict]:
    """Recipient tokens as chips with their names; tokens no longer valid are dropped."""
    known = dict(known or {})
    tokens = [t for t in dict.fromkeys(tokens) if t]
    unknown = [t for t in tokens if t not in known]
    try:  # all at once; one by one only when some are no longer valid
        parsed = services.parse_addresses(current_user, unknown, allow_all=True)
        known.update({_token(a): a.label for a in parsed})
    except DomainError:
        for token in unknown:
            try:
                known[token] = services.parse_addresses(current_user, [token], allow_all=True)[0].label
            except DomainError:
                continue
    return [{"token": t, "label": known[t]} for t in tokens if t in known]


def _token(address) -> str:
    return "all" if address.kind == "all" else f"{address.kind}:{address.target_id}"


def _compose_data(form) -> dict:
    kind = form.get("kind") or "ordinary"
    return {
        "to": form.getlist("to"),
        "subject": form.get("subject", ""),
        "body": form.get("body", ""),
        "kind": kind,
        "importance": form.get("importance") or "normal",
        "reply_due_at": utc_from_local(form.get("reply_due_at")) if kind == "request" else None,
        "send_at": utc_from_local(form.get("send_at")),
        "external_to": (form.get("external_to") or "").strip() or None,
        "parent_id": _int(form.get("parent_id")),
        "forward_of": _int(form.get("forward_of")),
        "draft_id": _int(form.get("draft_id")),
        "local_id": form.get("local_id") or None,
    }


def _own_unsent(message_id: int) -> Message:
    msg = db.session.scalar(select(Message).where(
        Message.id == message_id, Message.sender_id == current_user.id,
        Message.state.in_(("draft", "scheduled"))))
    if msg is None:
        abort(404)
    return msg


def _compose_page(form: dict, chips: list[dict], errors: dict | None = None, status: int = 200,
                  original: Message | None = None, draft: Message | None = None):
    draft_id = form.get("draft_id") or (draft.id if draft else None)
    files = attachments.list_for(current_user, services.OWNER, int(draft_id)) \
        if str(draft_id or "").isdigit() else []
    forwarded = attachments.list_for(current_user, services.OWNER, int(form["forward_of"])) \
        if str(form.get("forward_of") or "").isdigit() else []
    kinds = [(k, v) for k, v in KIND_NAMES.items()
             if k != "broadcast" or org.capability(current_user, "broadcast") is not None
             or form.get("kind") == "broadcast"]
    return render_template(
        "messaging/compose.html", form=form, chips=chips, errors=errors or {}, kinds=kinds,
        importance_names=IMPORTANCE_NAMES, files=files, forwarded=forwarded,
        draft_id=draft_id, original=original, owner_type=services.OWNER,
        scheduled_at=draft.send_at if draft is not None and draft.state == "scheduled" else None,
        sb=_sidebar("drafts" if draft_id else None)), status


@bp.route("/compose")
def compose():
    """A new message; ?reply=<id>&mode=reply|all|forward starts from a message,
    ?draft=<id> goes on with a draft; ?to=<token> starts with a recipient."""
    form: dict = {"local_id": secrets.token_hex(16), "kind": "ordinary", "importance": "normal"}
    original = draft = None
    known: dict[str, str] = {}
    tokens = request.args.getlist("to")
    draft_id = _arg_id("draft")
    reply_id = _arg_id("reply")
    if draft_id is not None:
        draft = _own_unsent(draft_id)
        known = {_token(a): a.label for a in draft.addresses}
        tokens = list(known)
        form.update(subject=draft.subject, body=draft.body, kind=draft.kind,
                    importance=draft.importance, reply_due_at=local_input(draft.reply_due_at),
                    send_at=local_input(draft.send_at), external_to=draft.external_to or "",
                    parent_id=draft.parent_id or "", forward_of=draft.forwarded_id or "",
                    draft_id=draft.id)
        if draft.state == "draft" and draft.local_id:  # a scheduled one keeps a fresh id: sending
            form["local_id"] = draft.local_id          # it again is a change, not a resend
        original = db.session.get(Message, draft.parent_id or draft.forwarded_id) \
            if (draft.parent_id or draft.forwarded_id) else None
    elif reply_id is not None:
        mode = request.args.get("mode", "reply")
        template = services.reply_template(current_user, reply_id,
                                           mode if mode in ("reply", "all", "forward") else "reply")
        tokens = template["to"]
        form.update(subject=template["subject"], body=template["body"], kind=template["kind"],
                    parent_id=template.get("parent_id") or "",
                    forward_of=template.get("forward_of") or "")
        original = services.box_of(current_user, reply_id).message
    return _compose_page(form, _chips(tokens, known), original=original, draft=draft)


def _keep_schedule(data: dict) -> dict:
    """Saving a scheduled message keeps it scheduled: only Send changes when (or whether)
    it goes, so a cleared time field cannot leave it waiting for no time at all."""
    if isinstance(data["draft_id"], int) and not data["send_at"]:
        when = db.session.scalar(select(Message.send_at).where(
            Message.id == data["draft_id"], Message.sender_id == current_user.id,
            Message.state == "scheduled"))
        if when is not None:
            data = {**data, "send_at": when.isoformat()}
    return data


@bp.route("/compose", methods=["POST"])
def send():
    data = _compose_data(request.form)
    if request.form.get("action") == "save":
        try:
            msg = services.save_draft(current_user, _keep_schedule(data))
        except DomainError as exc:
            return _compose_again(exc)
        if msg.state == "scheduled":
            flash(_("Saved. It will be sent on %(when)s.", when=_when(msg.send_at)), "success")
            return redirect(url_for("messaging.inbox", folder="deferred"))
        flash(_("The draft is saved."), "success")
        return redirect(url_for("messaging.inbox", folder="drafts"))
    try:
        msg = services.send(current_user, data)
    except DomainError as exc:
        sent = _already_sent(data["draft_id"])
        if sent is not None:  # the same form sent twice: the first one went
            return redirect(_to_thread(sent.id))
        return _compose_again(exc)
    if msg.state == "scheduled":
        flash(_("It will be sent on %(when)s.", when=_when(msg.send_at)), "success")
        return redirect(url_for("messaging.inbox", folder="deferred"))
    flash(_("Your message is sent."), "success")
    if msg.parent_id is not None:
        return redirect(_to_thread(msg.id))
    return redirect(url_for("messaging.inbox"))


def _when(moment: datetime) -> str:
    return format_date(moment, "medium") + " " + format_time(moment, "short")


def _already_sent(draft_id) -> Message | None:
    if not isinstance(draft_id, int):
        return None
    db.session.rollback()
    return db.session.scalar(select(Message).where(
        Message.id == draft_id, Message.sender_id == current_user.id, Message.state == "sent"))


def _compose_again(exc: DomainError):
    """The form again, as typed, with what is wrong."""
    db.session.rollback()
    form = request.form.to_dict()
    errors = dict(exc.fields) or {"_": [exc.message]}
    if exc.fields:
        errors["_"] = [exc.message]
    original_id = _int(form.get("parent_id")) or _int(form.get("forward_of"))
    original = None
    if isinstance(original_id, int):
        try:
            original = services.box_of(current_user, original_id).message
        except NotFound:
            original = None
    return _compose_page(form, _chips(request.form.getlist("to")), errors, exc.status,
                         original=original)


@bp.route("/compose/autosave", methods=["POST"])
def autosave():
    """Save the draft being written (htmx, a few seconds after typing stops)."""
    data = _compose_data(request.form)
    first = data["draft_id"] is None
    try:
        msg = services.save_draft(current_user, _keep_schedule(data))
    except DomainError as exc:
        db.session.rollback()
        details = " ".join(" ".join(str(m) for m in v) for v in exc.fields.values())
        return render_template("messaging/_autosave.html", error=details or exc.message), 422
    files = attachments.list_for(current_user, services.OWNER, msg.id) if first else []
    return render_template("messaging/_autosave.html", msg=msg, first=first, files=files,
                           owner_type=services.OWNER, saved_at=format_time(utcnow(), "short"))


@bp.route("/compose/preview", methods=["POST"])
def preview():
    return render_template("messaging/_preview.html", html=markup.render(request.form.get("body", "")))


@bp.route("/drafts/<int:message_id>/delete", methods=["POST"])
def delete_draft(message_id: int):
    return _run(lambda: services.delete_draft(current_user, message_id), _("The draft is deleted."),
                url_for("messaging.inbox", folder="drafts"),
                then=url_for("messaging.inbox", folder="drafts"))


# --- the recipient picker -----------------------------------------------------------------

def _matches(text: str, q: str) -> bool:
    return q in text.casefold()


@bp.route("/recipients")
def recipients():
    """Tokens matching what is typed: people, posts (with who does them), units, lists."""
    q = " ".join(request.args.get("q", "").split())[:100]
    scope = request.args.get("scope", "compose")
    chosen = set(request.args.getlist("to") + request.args.getlist("members"))
    found = _picker(q, with_lists=scope == "compose", with_all=scope == "compose") if q else []
    return render_template("messaging/_picker_results.html", q=q,
                           results=[r for r in found if r["token"] not in chosen])


def _picker(q: str, *, with_lists: bool, with_all: bool) -> list[dict]:
    fold = q.casefold()
    chart = charts.load()
    out: list[dict] = []
    if with_all and org.capability(current_user, "broadcast") is not None \
            and (_matches(str(_("All staff")), fold) or _matches("all", fold)):
        out.append({"token": "all", "label": _("All staff"), "kind": "all",
                    "detail": _("Broadcast to everyone")})
    people = db.session.scalars(core_services.users_query(q, include_inactive=False)
                                .where(User.id != current_user.id).limit(PICK_LIMIT))
    for u in people:
        posts = ", ".join(p.title for p in chart.own_posts(u.id))
        out.append({"token": f"user:{u.id}", "label": u.name, "kind": "user", "user_id": u.id,
                    "detail": posts or u.email})
    posts = sorted((p for p in chart.posts.values() if _matches(p.title, fold)),
                   key=lambda p: (p.title.casefold(), p.id))[:PICK_LIMIT]
    for p in posts:
        h = chart.holding(p)
        names = ", ".join(u.name for u in h.users)
        if not h.vacant:
            detail = names
        elif h.users:
            detail = _("vacant, held from above by %(names)s", names=names)
        else:
            detail = _("vacant: nobody would receive it")
        unit = chart.units[p.unit_id].name
        out.append({"token": f"post:{p.id}", "label": p.title, "kind": "post",
                    "detail": f"{unit} · {detail}"})
    units = sorted((u for u in chart.units.values() if _matches(u.name, fold)),
                   key=lambda u: (u.name.casefold(), u.id))[:PICK_LIMIT]
    for u in units:
        path = " / ".join(x.name for x in chart.path(u.id)[:-1])
        out.append({"token": f"unit:{u.id}", "label": u.name, "kind": "unit",
                    "detail": path or _("the whole company")})
    if with_lists:
        for ml in services.lists_for(current_user):
            if _matches(ml.name, fold):
                out.append({"token": f"list:{ml.id}", "label": ml.name, "kind": "list",
                            "detail": _("%(n)d members", n=len(ml.members))})
    return out


# --- mailing lists ------------------------------------------------------------------------

def _list_form(form) -> dict:
    return {"name": form.get("name", ""), "shared": form.get("shared") == "1",
            "members": form.getlist("members")}


@bp.route("/lists")
def lists(errors: dict | None = None, form=None, editing: int | None = None, status: int = 200):
    mine, shared = [], []
    for ml in services.lists_for(current_user):
        (mine if ml.owner_id == current_user.id else shared).append(ml)
    chips = {ml.id: [{"token": f"{m.kind}:{m.target_id}", "label": m.label} for m in ml.members]
             for ml in mine}
    new_chips = _chips(form.getlist("members")) if form is not None and editing is None else []
    if form is not None and editing is not None:
        chips[editing] = _chips(form.getlist("members"))
    return render_template("messaging/lists.html", mine=mine, shared=shared, chips=chips,
                           new_chips=new_chips, errors=errors or {}, form=form, editing=editing,
                           sb=_sidebar()), status


def _list_again(exc: DomainError, editing: int | None):
    db.session.rollback()
    flash(exc.message, "danger")
    return lists(exc.fields or {"_": [exc.message]}, request.form, editing, exc.status)


@bp.route("/lists", methods=["POST"])
def list_create():
    try:
        ml = services.create_list(current_user, _list_form(request.form))
    except DomainError as exc:
        return _list_again(exc, None)
    flash(_("The list “%(name)s” is created.", name=ml.name), "success")
    return redirect(url_for("messaging.lists") + f"#list-{ml.id}")


@bp.route("/lists/<int:list_id>", methods=["POST"])
def list_update(list_id: int):
    try:
        ml = services.update_list(current_user, list_id, _list_form(request.form))
    except DomainError as exc:
        if exc.status in (403, 404):
            raise
        return _list_again(exc, list_id)
    flash(_("Saved."), "success")
    return redirect(url_for("messaging.lists") + f"#list-{ml.id}")


@bp.route("/lists/<int:list_id>/archive", methods=["POST"])
def list_archive(list_id: int):
    return _run(lambda: services.archive_list(current_user, list_id), _("The list is archived."),
                url_for("messaging.lists"), then=url_for("messaging.lists"))


# --- labels and settings ------------------------------------------------------------------

@bp.route("/labels")
def labels(errors: dict | None = None, status: int = 200):
    return render_template("messaging/labels.html", colors=LABEL_COLORS, errors=errors or {},
                           labels=services.labels_of(current_user),
                           form=request.form if errors else {}, sb=_sidebar()), status


@bp.route("/labels", methods=["POST"])
def label_create():
    data = {"name": request.form.get("name", ""), "color": request.form.get("color", "secondary")}
    try:
        label = services.create_label(current_user, data)
    except DomainError as exc:
        db.session.rollback()
        return labels(exc.fields or {"name": [exc.message]}, exc.status)
    flash(_("The label “%(name)s” is created.", name=label.name), "success")
    return redirect(url_for("messaging.labels"))


@bp.route("/labels/<int:label_id>/delete", methods=["POST"])
def label_delete(label_id: int):
    return _run(lambda: services.delete_label(current_user, label_id),
                _("The label is deleted; the messages keep their folders."),
                url_for("messaging.labels"), then=url_for("messaging.labels"))


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    if request.method == "POST":
        return _run(lambda: services.set_preference(
            current_user, {"email_mode": request.form.get("email_mode", "")}),
            _("Saved."), url_for("messaging.settings"), then=url_for("messaging.settings"))
    hours = max(1, round(DIGEST_EVERY.total_seconds() / 3600))
    modes = [("immediate", _("At once"), _("An e-mail for each message that arrives while you "
                                           "are not signed in.")),
             ("digest", _("Digest"), ngettext("At most one e-mail an hour, listing what arrived "
                                              "while you were away.",
                                              "At most one e-mail every %(num)d hours, listing what "
                                              "arrived while you were away.", hours)),
             ("off", _("Never"), _("No e-mail; read your mail here."))]
    return render_template("messaging/settings.html", modes=modes,
                           pref=services.preference(current_user.id), sb=_sidebar())
