"""Full-text search over the mail a person may see.

A person may see exactly the messages they have a mailbox row for, so every search starts
from the actor's own rows and the filters only narrow it. The searched document is
Message.search_text (sender, recipients, subject, body, corrections, attachment names).

PostgreSQL: `to_tsvector('russian', search_text) @@ <tsquery>`, the expression of the GIN
index ix_mail_message_search, so the index answers it. The russian configuration stems
Russian words and, through the English stemmer, Latin ones, and folds ё: "счета" finds
"счёт" and "счетов", "invoice" finds "invoices". The query is read by
websearch_to_tsquery ("quoted phrases", or, -excluded); a plain query also matches the
word being typed as a prefix (to_tsquery with :*, built from letters and digits only).

SQLite: every word of the query must begin a word of the document (LIKE over the
lower-cased document with punctuation turned into spaces; % and _ in the query are
literal).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import (
    Integer,
    Text,
    and_,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    select,
    values,
)
from sqlalchemy.orm import aliased, contains_eager

from app.core import markup
from app.core.models import Attachment, User
from app.core.schemas import row_id
from app.core.services import load
from app.extensions import db
from app.messaging.models import FOLDERS, KINDS, SEARCH_CONFIG, Mailbox, Message

QUERY_MAX = 200
# PostgreSQL, for the transaction that searches: enough memory for the bitmap of a common
# word to stay exact (a lossy bitmap makes every row of its pages recompute to_tsvector:
# 27 s instead of 1 s for a word in a quarter of 1,000,000 messages), and no JIT
# compilation (a few hundred ms that a query of this size never wins back).
PG_SETTINGS = {"work_mem": "64MB", "jit": "off"}
PREFIX_MIN = 3  # a shorter word being typed is matched whole: a 1-2 letter prefix is costly
OWNER = "mail_message"  # attachments of messages (app.messaging.services.OWNER)
HEADLINE_SOURCE_MAX = 20_000  # characters of a document the snippet is looked for in
_START, _STOP = "\x02", "\x03"  # highlight markers, turned into <mark> after escaping
_LT = "\x04"  # stands for "<" in text given to ts_headline, which would drop <tags>

# SQLite: characters after which a word begins besides spaces (at most ~20: each is a
# nested replace() and SQLite's parser stack is shallow). % and _ are not among them.
_SEPARATORS = "\t\r\n.,:;([{\"'«„“-/@№"
_QUERY_WORD = re.compile(r"[\w%]+")  # SQLite: a query word; % and _ are literal characters
_WORD = re.compile(r"[^\W_]+")  # PostgreSQL: letters and digits, what a prefix term is made of


class SearchIn(Schema):
    """What a search may ask; anything else is refused."""

    class Meta:
        unknown = EXCLUDE

    q = fields.String(required=True, validate=validate.Length(  # error: translated when raised
        min=1, max=QUERY_MAX, error=_l("Search for 1 to %(n)d characters.", n=QUERY_MAX)))
    folder = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(FOLDERS))
    person_id = row_id(load_default=None, allow_none=True, strict=False)
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(KINDS))
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)
    has_attachments = fields.Boolean(load_default=None, allow_none=True)

    @validates_schema
    def _check(self, data, **_kw):
        if not (data.get("q") or "").strip():
            raise ValidationError(str(_l("Type something to search for.")), "q")
        if "\x00" in data.get("q", ""):
            raise ValidationError(str(_l("The search contains a character that is not allowed.")),
                                  "q")
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError(str(_l("The start date is after the end date.")), "date_to")


def validate_search(data: dict) -> dict:
    """Search input checked and cleaned (q stripped); bad input raises ValidationError."""
    values = load(SearchIn(), data)
    values["q"] = " ".join(values["q"].split())
    return values


# --- the query ------------------------------------------------------------------------------

def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _config():
    # A constant, not a bound parameter: the expression must be the index's own.
    return literal_column(f"'{SEARCH_CONFIG}'")


def document():
    """to_tsvector('russian', search_text): the indexed expression."""
    return func.to_tsvector(_config(), Message.search_text)


def _is_plain(q: str) -> bool:
    """No websearch syntax: no quotes, no `or`, no -excluded word."""
    tokens = q.split()
    return '"' not in q and not any(t.lower() == "or" or t.startswith("-") for t in tokens)


def tsquery(q: str):
    """websearch_to_tsquery of the query; a plain query ending in a word also matches with
    that word as a prefix (the word being typed): whole || (the words before && last:*)."""
    whole = func.websearch_to_tsquery(_config(), q)
    words = list(_WORD.finditer(q))
    last = words[-1] if words else None
    if last is None or last.end() != len(q) or len(last.group()) < PREFIX_MIN or not _is_plain(q):
        return whole
    typed = func.websearch_to_tsquery(_config(), q[:last.start()]).op("&&")(
        func.to_tsquery(_config(), f"{last.group()}:*"))
    return whole.op("||")(typed)


def _fold(text: str) -> str:
    return text.lower().replace("ё", "е")


def query_words(q: str) -> list[str]:
    """SQLite: the words every one of which must begin a word of the message."""
    return list(dict.fromkeys(_QUERY_WORD.findall(_fold(q))))


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sqlite_document():
    """' ' || the lower-cased document with ё as е and punctuation as spaces."""
    doc = func.replace(func.lower(Message.search_text), "ё", "е")
    for ch in _SEPARATORS:
        doc = func.replace(doc, ch, " ")
    return literal(" ") + doc


def _matches(q: str):
    if _dialect() == "postgresql":
        return document().op("@@")(tsquery(q))
    words = query_words(q)
    if not words:
        return false()
    doc = _sqlite_document()
    return and_(*(doc.like(f"% {_escape_like(w)}%", escape="\\") for w in words))


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def message_time():
    """When a message happened for the reader: sent, else planned, else last saved."""
    return func.coalesce(Message.sent_at, Message.send_at, Message.updated_at)


def search_query(actor: User, q: str, *, folder: str | None = None, person_id: int | None = None,
                 kind: str | None = None, date_from: date | None = None,
                 date_to: date | None = None, has_attachments: bool | None = None):
    """The actor's mailbox rows whose message matches, newest first, message and sender
    loaded; a select() the caller pages. Bad input raises ValidationError. On PostgreSQL
    the current transaction gets PG_SETTINGS (SET LOCAL) for the queries that follow."""
    values = validate_search({"q": q, "folder": folder, "person_id": person_id, "kind": kind,
                              "date_from": date_from, "date_to": date_to,
                              "has_attachments": has_attachments})
    stmt = (select(Mailbox).join(Message, Message.id == Mailbox.message_id)
            .options(contains_eager(Mailbox.message).joinedload(Message.sender))
            .where(Mailbox.user_id == actor.id, _matches(values["q"])))
    if values["folder"]:
        stmt = stmt.where(Mailbox.folder == values["folder"])
    if values["kind"]:
        stmt = stmt.where(Message.kind == values["kind"])
    if values["person_id"] and values["person_id"] != actor.id:
        other = aliased(Mailbox)
        stmt = stmt.where(exists().where(other.message_id == Mailbox.message_id,
                                         other.user_id == values["person_id"]))
    zone = ZoneInfo(actor.timezone or "UTC")
    if values["date_from"]:
        stmt = stmt.where(message_time() >= _day_start(values["date_from"], zone))
    if values["date_to"]:
        stmt = stmt.where(message_time() < _day_start(values["date_to"] + timedelta(days=1), zone))
    if values["has_attachments"] is not None:
        files = exists().where(Attachment.owner_type == OWNER, Attachment.owner_id == Message.id)
        stmt = stmt.where(files if values["has_attachments"] else ~files)
    if _dialect() == "postgresql":
        tune_transaction()
    return stmt.order_by(message_time().desc(), Message.id.desc())


def tune_transaction() -> None:
    """SET LOCAL the PG_SETTINGS, in one round trip (they end with the transaction)."""
    db.session.execute(select(*(func.set_config(name, value, True)
                                for name, value in PG_SETTINGS.items())))


# --- snippets -------------------------------------------------------------------------------

def _marked(text: str) -> Markup:
    """Escape everything, then turn the highlight markers (balanced) into <mark>."""
    out, inside = [], False
    for part in re.split(f"([{_START}{_STOP}])", text):
        if part == _START:
            if not inside:
                out.append(Markup("<mark>"))
                inside = True
        elif part == _STOP:
            if inside:
                out.append(Markup("</mark>"))
                inside = False
        else:
            out.append(escape(part.replace(_LT, "<")))
    if inside:
        out.append(Markup("</mark>"))
    return Markup("").join(out)


def _highlight_words(text: str, words: list[str]) -> str:
    """Markers around each word of `text` that begins with one of `words` (folded)."""
    out, pos = [], 0
    for m in _QUERY_WORD.finditer(text):
        if any(_fold(m.group()).startswith(w) for w in words):
            out += [text[pos:m.start()], _START, m.group(), _STOP]
            pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _window(text: str, width: int = 220) -> str:
    """A stretch of `text` around its first marked word, cut on word boundaries."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    start = max(0, text.find(_START) - width // 3)
    piece = text[start:start + width]
    if start > 0:
        piece = "… " + piece.split(" ", 1)[-1]
    if start + width < len(text):
        piece = piece.rsplit(" ", 1)[0] + " …"
    return piece


def _snippet_source(subject: str, body: str, document: str) -> str:
    """The text's fragment if the words are in the text or the subject, else the document's."""
    return body if _START in body or _START in subject else document


def highlights(q: str, messages: Iterable[Message]) -> dict[int, tuple[Markup, Markup]]:
    """{message id: (subject, snippet)} with the matched words in <mark>, all else escaped.

    The snippet comes from the message's text; when the words matched neither the text nor
    the subject (but a name, a file, a correction) it comes from the searched document."""
    messages = list(messages)
    if not messages:
        return {}
    q = " ".join(q.split())
    bodies = {m.id: markup.plain(m.body_html)[:HEADLINE_SOURCE_MAX] for m in messages}
    if _dialect() == "postgresql":
        query = tsquery(q)
        opts = (f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12, "
                'MaxFragments=2, FragmentDelimiter=" … "')
        texts = values(column("id", Integer), column("body", Text), name="bodies").data(
            [(mid, body.replace("<", _LT)) for mid, body in bodies.items()])
        rows = db.session.execute(
            select(Message.id,
                   func.ts_headline(_config(), func.replace(Message.subject, "<", _LT), query,
                                    f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"),
                   func.ts_headline(_config(), texts.c.body, query, opts),
                   func.ts_headline(_config(), func.replace(
                       func.left(Message.search_text, HEADLINE_SOURCE_MAX), "<", _LT), query, opts))
            .join(texts, texts.c.id == Message.id)).all()
        found = {mid: (subject, _snippet_source(subject, body, document))
                 for mid, subject, body, document in rows}
    else:
        words = query_words(q)
        found = {}
        for m in messages:
            subject = _highlight_words(m.subject, words)
            body = _highlight_words(bodies[m.id], words)
            if _START not in body and _START not in subject:
                body = _highlight_words(m.search_text[:HEADLINE_SOURCE_MAX], words)
            found[m.id] = (subject, _window(body))
    return {mid: (_marked(subject), _marked(" ".join(snippet.split())))
            for mid, (subject, snippet) in found.items()}


def with_attachments(message_ids: list[int]) -> set[int]:
    """Which of the messages have files (one query)."""
    if not message_ids:
        return set()
    return set(db.session.scalars(select(Attachment.owner_id).distinct().where(
        Attachment.owner_type == OWNER, Attachment.owner_id.in_(message_ids))))


def people_choices(selected: int | None = None) -> list[tuple[int, str]]:
    """Colleagues to filter by (active people, and the chosen one even if no longer active)."""
    stmt = select(User.id, User.name).where(User.active.is_(True))
    if selected:
        stmt = select(User.id, User.name).where((User.active.is_(True)) | (User.id == selected))
    return [(uid, name) for uid, name in db.session.execute(stmt.order_by(User.name, User.id))]

