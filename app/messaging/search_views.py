"""Search of the mail: the page /mail/search and GET /api/v1/messages/search."""

from __future__ import annotations

from flask import current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import pgettext
from flask_login import current_user
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import contains_eager

from app.core.api_base import api_blueprint, api_user, page_envelope
from app.core.errors import ValidationError
from app.extensions import db
from app.messaging import api as mail_api
from app.messaging import bp, search, views
from app.messaging.models import FOLDERS, KINDS, Mailbox, Message

FILTERS = ("q", "folder", "person_id", "kind", "date_from", "date_to", "has_attachments")
PAGE_MAX = 10_000  # further pages are refused: row offsets stay within the database's integers


def folder_names() -> dict[str, str]:
    """The mail's folder names, and the folder of messages waiting to be sent."""
    return {**views.folder_names(), "scheduled": pgettext("mail folder", "Scheduled")}


def _with_recipients(stmt):
    return stmt.options(contains_eager(Mailbox.message).selectinload(Message.addresses))


def _hits(q: str, boxes: list[Mailbox]) -> list[dict]:
    """What a result shows: the row, its highlighted subject and snippet, files or not."""
    messages = [b.message for b in boxes]
    marked = search.highlights(q, messages)
    files = search.with_attachments([m.id for m in messages])
    return [{"box": b, "message": b.message, "subject_html": marked[b.message_id][0],
             "snippet_html": marked[b.message_id][1], "has_attachments": b.message_id in files}
            for b in boxes]


# --- the page -------------------------------------------------------------------------------

@bp.route("/search", endpoint="search")
def search_page():
    """The search form; with a query, the matching messages a page at a time."""
    form = {key: request.args.get(key, "").strip() for key in FILTERS}
    given = {key: value for key, value in form.items() if value}
    page_no = request.args.get("page", 1, type=int)
    errors: dict = {}
    page = hits = None
    status = 200
    if form["q"]:
        try:
            stmt = search.search_query(current_user, **given)
            if not 1 <= page_no <= PAGE_MAX:
                raise ValidationError(_("No such page."), {"page": [_("No such page.")]})
        except ValidationError as exc:
            errors, status = exc.fields or {"q": [exc.message]}, 422
        else:
            page = db.paginate(_with_recipients(stmt), page=page_no,
                               per_page=current_app.config["PER_PAGE"], error_out=False)
            hits = _hits(form["q"], list(page.items))
    person = int(form["person_id"]) if form["person_id"].isdigit() else None
    names = folder_names()
    return render_template(
        "messaging/search.html", form=form, errors=errors, page=page, hits=hits,
        folders=[(f, names[f]) for f in FOLDERS], kinds=[(k, views.KIND_NAMES[k]) for k in KINDS],
        people=search.people_choices(person), folder_names=names, kind_names=views.KIND_NAMES,
        query_max=search.QUERY_MAX), status


# --- the API --------------------------------------------------------------------------------

search_api = api_blueprint("mail_search_api", __name__, "/messages/search",
                           "Full-text search over the caller's mail")


class SearchArgs(search.SearchIn):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=PAGE_MAX))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class PersonOut(Schema):
    id = fields.Integer()
    name = fields.String()


class SearchHit(Schema):
    id = fields.Integer(metadata={"description": "The message"})
    thread_id = fields.Integer(allow_none=True)
    subject = fields.String()
    subject_html = fields.String(metadata={
        "description": "The subject, HTML-escaped, matched words in <mark>"})
    snippet = fields.String(metadata={"description": "Where the message matched, plain text"})
    snippet_html = fields.String(metadata={
        "description": "The snippet, HTML-escaped, matched words in <mark>"})
    kind = fields.String()
    importance = fields.String()
    state = fields.String()
    sender = fields.Nested(PersonOut)
    to = fields.List(fields.String(), metadata={"description": "Recipients as written"})
    sent_at = fields.DateTime(allow_none=True)
    folder = fields.String(metadata={"description": "The caller's folder of the message"})
    role = fields.String(metadata={"description": "sender or recipient"})
    read_at = fields.DateTime(allow_none=True)
    starred = fields.Boolean()
    has_attachments = fields.Boolean()


SearchPage = page_envelope(SearchHit)


def _hit_out(hit: dict) -> dict:
    msg, box = hit["message"], hit["box"]
    return {"id": msg.id, "thread_id": msg.thread_id, "subject": msg.subject,
            "subject_html": str(hit["subject_html"]), "snippet": hit["snippet_html"].striptags(),
            "snippet_html": str(hit["snippet_html"]), "kind": msg.kind,
            "importance": msg.importance, "state": msg.state, "sender": msg.sender,
            "to": [a.label for a in msg.addresses], "sent_at": msg.sent_at, "folder": box.folder,
            "role": box.role, "read_at": box.read_at, "starred": box.starred,
            "has_attachments": hit["has_attachments"]}


@search_api.route("")
@search_api.arguments(SearchArgs, location="query")
@search_api.response(200, SearchPage)
def search_messages(args):
    """Messages the caller may see that match `q`, newest first.

    Matches sender, recipients, subject, body and attachment names. On PostgreSQL word
    forms match (Russian and English), `"quoted phrases"`, `or` and `-excluded` words work
    and the last word also matches as a prefix; on SQLite every word must begin a word.
    Filters narrow the result: folder, person (sent by or to them), kind, dates (the
    caller's time zone, both ends included) and attachments."""
    page_no, per_page = args.pop("page"), args.pop("per_page")
    q = args.pop("q")
    stmt = search.search_query(api_user(), q, **args)
    result = db.paginate(_with_recipients(stmt), page=page_no, per_page=per_page, error_out=False)
    hits = _hits(" ".join(q.split()), list(result.items))
    return {"items": [_hit_out(h) for h in hits],
            "meta": {"page": result.page, "per_page": result.per_page, "total": result.total,
                     "pages": result.pages}}


mail_api.ALL.append(search_api)
