"""Full-text search of the mail: what it finds, what it never shows, filters, word forms on
PostgreSQL and prefixes on SQLite, the index in the plan, odd queries, the page and the API.

Tests that depend on the database check PostgreSQL's behaviour when TEST_DATABASE_URL
is set and SQLite's otherwise (each database runs its own assertions; nothing is skipped).
"""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text
from werkzeug.datastructures import FileStorage

from app.core import attachments, clock
from app.core.errors import ValidationError
from app.extensions import db
from app.messaging import search, services
from app.messaging.models import Mailbox, Message
from app.messaging.search import search_query

API = "/api/v1/messages/search"


# --- helpers --------------------------------------------------------------------------------

def send(actor, to, subject="", body="", *, files=(), **extra):
    """Send (through the services, as every path does) and commit; files are attached to
    the draft first, as the compose page does."""
    tokens = [f"user:{u.id}" for u in to]
    data = {"to": tokens, "subject": subject, "body": body, **extra}
    if files:
        draft = services.save_draft(actor, data)
        for name in files:
            attachments.store(actor, services.OWNER, draft.id,
                              FileStorage(io.BytesIO(b"quarterly figures\n"), filename=name))
        data["draft_id"] = draft.id
    msg = services.send(actor, data)
    db.session.commit()
    return msg


def found(actor, q, **filters) -> list[int]:
    """Ids of the messages the actor's search returns, in order."""
    return [b.message_id for b in db.session.scalars(search_query(actor, q, **filters)).unique()]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


# --- what is found --------------------------------------------------------------------------

def test_finds_by_subject_body_sender_recipient_and_file_name(office):
    o = office
    invoice = send(o.Helen, [o.Sam], "Quarterly reconciliation",
                   "Please check the **counterparty** balance before Friday.",
                   files=["price_list_2027.xlsx"])
    other = send(o.Fred, [o.Sam], "Lunch", "Canteen menu for tomorrow")

    assert found(o.Sam, "reconciliation") == [invoice.id]          # subject
    assert found(o.Sam, "counterparty balance") == [invoice.id]    # body (rendered, as text)
    assert found(o.Sam, "Helen") == [invoice.id]                   # sender's name
    assert found(o.Helen, "Sam") == [invoice.id]                   # recipient's name
    assert found(o.Sam, "price_list_2027.xlsx") == [invoice.id]    # attachment name
    assert found(o.Sam, "price") == [invoice.id]                   # ... as it is being typed
    assert found(o.Sam, "canteen") == [other.id]
    assert found(o.Sam, "nonexistentword") == []
    # Newest first.
    assert found(o.Sam, "Sam") == [other.id, invoice.id]


def test_rows_loaded_with_message_and_sender(office, count_queries):
    o = office
    send(o.Helen, [o.Sam], "Delivery schedule", "Trucks arrive on Monday")
    send(o.Fred, [o.Sam], "Delivery invoice", "Pay for the trucks")
    stmt = search_query(o.Sam, "delivery")
    with count_queries() as statements:
        rows = db.session.scalars(stmt).unique().all()
        names = sorted(b.message.sender.name for b in rows)
    assert names == ["Fred", "Helen"]
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, selects


def test_never_shows_a_message_the_actor_has_no_row_for(office):
    o = office
    secret = send(o.Helen, [o.Sam], "Bonus plan", "Confidential bonus figures")
    assert found(o.Sam, "bonus") == [secret.id]
    assert found(o.Helen, "bonus") == [secret.id]
    assert found(o.Sara, "bonus") == []
    assert found(o.Fred, "confidential") == []
    # A person filter narrows, it never widens: Sara filtering by Sam or Helen sees nothing.
    assert found(o.Sara, "bonus", person_id=o.Sam.id) == []
    assert found(o.Sara, "bonus", person_id=o.Helen.id) == []


def test_a_recalled_message_leaves_the_recipients_results(office):
    o = office
    msg = send(o.Helen, [o.Sam, o.Sara], "Wrong tariff", "Ignore the attached tariff")
    assert found(o.Sam, "tariff") == [msg.id]
    services.recall(o.Helen, msg.id)
    db.session.commit()
    assert found(o.Sam, "tariff") == []
    assert found(o.Sara, "tariff") == []
    assert found(o.Helen, "tariff") == [msg.id]  # the sender keeps it, marked recalled


# --- filters --------------------------------------------------------------------------------

def test_folder_kind_person_and_attachment_filters(office):
    o = office
    plain = send(o.Helen, [o.Sam], "Contract draft", "The contract for Acme")
    request = send(o.Fred, [o.Sam], "Contract payment", "When is the contract paid?",
                   kind="request", reply_due_at=(clock.utcnow() + timedelta(days=2)).isoformat())
    with_file = send(o.Helen, [o.Sam], "Signed contract", "Scan attached",
                     files=["contract-signed.pdf"])
    mine = send(o.Sam, [o.Helen], "Contract questions", "Two questions about the contract")
    services.move(o.Sam, {"ids": [plain.id], "folder": "archive"})
    db.session.commit()

    everything = found(o.Sam, "contract")
    assert everything == [mine.id, with_file.id, request.id, plain.id]
    assert found(o.Sam, "contract", folder="inbox") == [with_file.id, request.id]
    assert found(o.Sam, "contract", folder="archive") == [plain.id]
    assert found(o.Sam, "contract", folder="sent") == [mine.id]
    assert found(o.Sam, "contract", kind="request") == [request.id]
    assert found(o.Sam, "contract", kind="directive") == []
    assert found(o.Sam, "contract", person_id=o.Fred.id) == [request.id]
    assert found(o.Sam, "contract", person_id=o.Helen.id) == [mine.id, with_file.id, plain.id]
    assert found(o.Sam, "contract", person_id=o.Sam.id) == everything  # oneself: no filter
    assert found(o.Sam, "contract", has_attachments=True) == [with_file.id]
    assert found(o.Sam, "contract", has_attachments=False) == [mine.id, request.id, plain.id]
    assert found(o.Sam, "contract", folder="inbox", person_id=o.Helen.id,
                 has_attachments=True) == [with_file.id]


def test_date_range_in_the_actors_time_zone(office):
    o = office
    o.Sam.timezone = "Europe/Moscow"  # UTC+3
    db.session.commit()
    stamps = {}
    for label, at in (("early", datetime(2026, 3, 9, 21, 30, tzinfo=UTC)),   # 10 March, Moscow
                      ("middle", datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),
                      ("late", datetime(2026, 3, 10, 21, 30, tzinfo=UTC))):  # 11 March, Moscow
        clock.freeze(at)
        stamps[label] = send(o.Helen, [o.Sam], f"Report {label}", "Weekly figures").id
    clock.release()
    assert found(o.Sam, "figures", date_from=date(2026, 3, 10), date_to=date(2026, 3, 10)) == [
        stamps["middle"], stamps["early"]]
    assert found(o.Sam, "figures", date_from=date(2026, 3, 11)) == [stamps["late"]]
    assert found(o.Sam, "figures", date_to=date(2026, 3, 9)) == []
    assert found(o.Sam, "figures", date_from="2026-03-10", date_to="2026-03-11") == [
        stamps["late"], stamps["middle"], stamps["early"]]


# --- word forms (PostgreSQL) and prefixes (SQLite) ------------------------------------------

@pytest.mark.postgres
def test_word_forms_on_postgresql_prefixes_on_sqlite(office):
    o = office
    one = send(o.Helen, [o.Sam], "Счёт за поставку", "Выставлен счёт №17")
    many = send(o.Helen, [o.Sam], "Сверка", "Нет неоплаченных счетов за март")
    english = send(o.Fred, [o.Sam], "Overdue", "Two invoices are overdue")
    unrelated = send(o.Fred, [o.Sam], "Отчёт", "Счётчик воды заменён")
    if is_postgres():
        assert os.environ.get("TEST_DATABASE_URL")
        # Russian word forms, ё folded; English stems for Latin words.
        assert found(o.Sam, '"счета"') == [many.id, one.id]
        assert found(o.Sam, '"СЧЕТ"') == [many.id, one.id]
        assert found(o.Sam, "invoice") == [english.id]
        assert found(o.Sam, "неоплаченный счёт") == [many.id]
        # The last word is also taken as a prefix (the word being typed): счётчик too.
        assert found(o.Sam, "счета") == [unrelated.id, many.id, one.id]
        assert found(o.Sam, "overd") == [english.id]
        assert found(o.Sam, "счётчи") == [unrelated.id]
        # websearch syntax: a phrase, or, an excluded word.
        assert found(o.Sam, '"счёт за поставку"') == [one.id]
        assert found(o.Sam, "поставку or invoices") == [english.id, one.id]
        assert found(o.Sam, "счета -март") == [one.id]
    else:
        # Every word must begin a word; case and ё folded.
        assert found(o.Sam, "счет") == [unrelated.id, many.id, one.id]  # счёт, счетов, счётчик
        assert found(o.Sam, "СЧЁТ") == [unrelated.id, many.id, one.id]
        assert found(o.Sam, "счетов") == [many.id]
        assert found(o.Sam, "invoice") == [english.id]
        assert found(o.Sam, "неоплач март") == [many.id]
        assert found(o.Sam, "чёт") == []  # inside a word, not at its start
        assert found(o.Sam, "overd") == [english.id]


@pytest.mark.postgres
def test_the_search_plan_uses_the_full_text_index(office):
    """A mailbox of a few thousand messages and a rare word: PostgreSQL answers from the GIN
    index (the query's expression must be the index's own for this to be possible)."""
    o = office
    now = clock.utcnow()
    db.session.execute(insert(Message), [
        {"sender_id": o.Helen.id, "kind": "ordinary", "importance": "normal", "state": "sent",
         "subject": f"Note {n}", "body": "", "body_html": "", "created_at": now,
         "updated_at": now, "sent_at": now,
         "search_text": f"Helen\nSam\nNote {n}\nRoutine weekly message number {n}"}
        for n in range(3000)])
    ids = db.session.scalars(select(Message.id).where(Message.sender_id == o.Helen.id)).all()
    db.session.execute(insert(Mailbox), [
        {"message_id": mid, "user_id": o.Sam.id, "role": "recipient", "folder": "inbox",
         "starred": False, "created_at": now} for mid in ids])
    target = send(o.Helen, [o.Sam], "Счёт", "Счета за поставку оборудования")
    db.session.execute(text("ANALYZE mail_message"))
    db.session.execute(text("ANALYZE mail_box"))

    def plan(q: str) -> str:
        compiled = search_query(o.Sam, q).compile(dialect=db.engine.dialect)
        conn = db.session.connection()
        if is_postgres():
            rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
            return "\n".join(r[0] for r in rows)
        params = tuple(compiled.params[k] for k in compiled.positiontup)
        return "\n".join(str(r[-1]) for r in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", params))

    if is_postgres():
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        for q in ("счета оборудования", "счета оборуд", '"счета за поставку"'):
            assert "ix_mail_message_search" in plan(q), plan(q)
    else:  # no full-text index on SQLite: the search starts from the actor's own rows
        assert "ix_mail_box_user_folder" in plan("счета оборудования")
    assert found(o.Sam, "счета оборудования") == [target.id]
    assert len(found(o.Sam, "routine")) == 3000


# --- odd input ------------------------------------------------------------------------------

def test_like_wildcards_in_the_query_are_literal(office):
    o = office
    percent = send(o.Helen, [o.Sam], "Plan", "Done 100% of the plan")
    thousand = send(o.Helen, [o.Sam], "Plan", "Done 1000 of the plan")
    underscore = send(o.Helen, [o.Sam], "Codes", "Code a_c is valid")
    letters = send(o.Helen, [o.Sam], "Codes", "Code abc is valid")
    assert found(o.Sam, "100%") == [percent.id]
    assert thousand.id not in found(o.Sam, "100%")
    assert found(o.Sam, "a_c") == [underscore.id]
    assert letters.id not in found(o.Sam, "a_c")
    assert found(o.Sam, "%") == []
    assert found(o.Sam, "_") == []


@pytest.mark.parametrize("q", [
    "' OR 1=1 --", "a & | !", "'); DROP TABLE mail_message; --", "\\", "%%", "__", ":*",
    "foo:* | bar", "!!!", "(((", '"unclosed', "-", "or", "<->", "счёт & (", "\x00",
])
def test_injection_looking_queries_return_normally(office, q):
    o = office
    mine = send(o.Helen, [o.Sam], "Harmless", "Harmless text 1=1 or foo bar")
    send(o.Fred, [o.Sara], "Other people", "Harmless text 1=1 or foo bar")
    try:
        ids = found(o.Sam, q)
    except ValidationError:
        ids = None
        assert "\x00" in q  # only a NUL byte is refused (PostgreSQL cannot store it)
    assert ids is None or set(ids) <= {mine.id}
    assert db.session.scalar(select(func.count()).select_from(Message)) == 2


def test_bad_input_is_a_validation_error(office):
    o = office
    send(o.Helen, [o.Sam], "Anything", "Some text")
    bad = [
        ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 201}, "q"),
        ({"q": "text", "folder": "trash"}, "folder"), ({"q": "text", "kind": "memo"}, "kind"),
        ({"q": "text", "person_id": "someone"}, "person_id"),
        ({"q": "text", "person_id": 2**40}, "person_id"),
        ({"q": "text", "date_from": "yesterday"}, "date_from"),
        ({"q": "text", "date_from": date(2026, 5, 2), "date_to": date(2026, 5, 1)}, "date_to"),
        ({"q": "text", "has_attachments": "perhaps"}, "has_attachments"),
    ]
    for args, field in bad:
        q = args.pop("q")
        with pytest.raises(ValidationError) as err:
            search_query(o.Sam, q, **args)
        assert field in err.value.fields, (args, err.value.fields)
    assert len(found(o.Sam, "x" * 200)) == 0  # 200 characters are allowed
    assert db.session.scalar(select(func.count()).select_from(Mailbox)) == 2


# --- snippets -------------------------------------------------------------------------------

def test_snippets_mark_the_matched_words_and_escape_everything(office):
    o = office
    msg = send(o.Helen, [o.Sam], "<img src=x onerror=alert(1)> Invoice & co",
               "Text before. The invoice <b>is</b> overdue & <script>alert(2)</script> unpaid.")
    hits = search.highlights("invoice", [db.session.get(Message, msg.id)])
    subject, snippet = hits[msg.id]
    assert "<img" not in subject and "&lt;img src=x onerror=alert(1)&gt;" in subject
    assert "<mark>Invoice</mark>" in subject and "&amp; co" in subject
    assert "<mark>invoice</mark>" in snippet
    assert "<script" not in snippet and "<b>" not in snippet
    assert set(snippet.replace("<mark>", "").replace("</mark>", "")) >= set("Text")
    if is_postgres():  # word forms are marked too
        forms = send(o.Helen, [o.Sam], "Сверка", "Счёт и счетов")
        subject, snippet = search.highlights("счета", [db.session.get(Message, forms.id)])[forms.id]
        assert "<mark>Счёт</mark>" in snippet and "<mark>счетов</mark>" in snippet


# --- the page -------------------------------------------------------------------------------

def test_page_shows_the_form_then_results(office, client):
    o = office
    msg = send(o.Helen, [o.Sam], "Quarterly <b>invoice</b>", "Pay the invoice, please")
    send(o.Helen, [o.Sara], "Sara's invoice", "Not for Sam")
    assert client.sign_in(o.Sam.email).status_code == 302

    empty = client.get("/mail/search")
    assert empty.status_code == 200
    html = empty.get_data(as_text=True)
    assert 'name="q"' in html and "mail-search-results" not in html

    resp = client.get("/mail/search?q=invoice")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "mail-search-results" in html and f'data-message-id="{msg.id}"' in html
    assert "<mark>invoice</mark>" in html and "&lt;b&gt;" in html and "<b>invoice" not in html
    assert "Sara&#39;s invoice" not in html and "Not for Sam" not in html
    assert "1 in all" in html

    filtered = client.get(f"/mail/search?q=invoice&folder=sent&person_id={o.Helen.id}")
    assert "No messages match." in filtered.get_data(as_text=True)


def test_page_refuses_bad_filters_with_a_message(office, client):
    o = office
    assert client.sign_in(o.Sam.email).status_code == 302
    resp = client.get("/mail/search?q=invoice&kind=memo&date_from=soon")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "is-invalid" in html and "mail-search-results" not in html
    long = client.get("/mail/search?q=" + "x" * 201)
    assert long.status_code == 422 and "Search for 1 to 200 characters." in long.get_data(as_text=True)
    for page in (0, 2**40):
        far = client.get(f"/mail/search?q=invoice&page={page}")
        assert far.status_code == 422 and "No such page." in far.get_data(as_text=True)


def test_page_errors_speak_the_users_language(office, make_user, app):
    reader = make_user("Readerova", language="ru")
    client = app.test_client()
    assert client.sign_in(reader.email).status_code == 302
    html = client.get("/mail/search?q=" + "x" * 201).get_data(as_text=True)
    assert "Введите для поиска от 1 до 200 символов." in html
    assert "Search for 1 to 200 characters." not in html


def test_page_is_paginated(office, client):
    o = office
    ids = [send(o.Helen, [o.Sam], f"Shipment {n}", "Shipment notice").id for n in range(27)]
    assert client.sign_in(o.Sam.email).status_code == 302
    first = client.get("/mail/search?q=shipment").get_data(as_text=True)
    second = client.get("/mail/search?q=shipment&page=2").get_data(as_text=True)
    assert first.count("data-message-id=") == 25 and second.count("data-message-id=") == 2
    assert f'data-message-id="{ids[-1]}"' in first and f'data-message-id="{ids[0]}"' in second
    assert "27 in all" in first and "page=2" in first


def test_page_needs_sign_in(client):
    resp = client.get("/mail/search?q=x")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


# --- the API --------------------------------------------------------------------------------

def test_api_search_is_paginated_in_the_core_envelope(office, client, token_for):
    o = office
    older = send(o.Helen, [o.Sam], "Invoice one", "First invoice", files=["invoice_01.pdf"])
    newer = send(o.Fred, [o.Sam], "Invoice two", "Second invoice")
    send(o.Fred, [o.Sara], "Invoice three", "Not Sam's")
    headers = bearer(token_for(o.Sam))

    resp = client.get(f"{API}?q=invoice&per_page=1", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["meta"] == {"page": 1, "per_page": 1, "total": 2, "pages": 2}
    (hit,) = body["items"]
    assert hit["id"] == newer.id and hit["sender"] == {"id": o.Fred.id, "name": "Fred"}
    assert hit["folder"] == "inbox" and hit["role"] == "recipient" and hit["to"] == ["Sam"]
    assert "<mark>" in hit["subject_html"] and "<mark>" in hit["snippet_html"]
    assert "<mark>" not in hit["snippet"] and "invoice" in hit["snippet"].lower()
    assert hit["has_attachments"] is False

    page2 = client.get(f"{API}?q=invoice&per_page=1&page=2", headers=headers).get_json()
    assert [h["id"] for h in page2["items"]] == [older.id]
    assert page2["items"][0]["has_attachments"] is True

    filtered = client.get(f"{API}?q=invoice&folder=inbox&has_attachments=true"
                          f"&person_id={o.Helen.id}", headers=headers).get_json()
    assert [h["id"] for h in filtered["items"]] == [older.id]


def test_api_refuses_bad_input(office, client, token_for):
    o = office
    headers = bearer(token_for(o.Sam))
    for query, field in ((f"q={'x' * 201}", "q"), ("", "q"), ("q=%20%20", "q"),
                         ("q=a&folder=trash", "folder"), ("q=a&kind=memo", "kind"),
                         ("q=a&date_from=2026-13-01", "date_from"),
                         ("q=a&date_from=2026-05-02&date_to=2026-05-01", "date_to"),
                         ("q=a&per_page=1000", "per_page"), ("q=a&person_id=x", "person_id"),
                         (f"q=a&person_id={2**40}", "person_id"), ("q=a&page=0", "page"),
                         (f"q=a&page={2**40}", "page")):
        resp = client.get(f"{API}?{query}", headers=headers)
        assert resp.status_code == 422, (query, resp.status_code)
        error = resp.get_json()["error"]
        assert error["code"] == "validation_error" and field in error["fields"], (query, error)
    assert client.get(f"{API}?q=a").status_code == 401


def test_api_is_in_the_openapi_document(client, user, token_for):
    doc = client.get("/api/v1/openapi.json", headers=bearer(token_for(user))).get_json()
    operation = doc["paths"][API]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"q", "folder", "person_id", "kind", "date_from", "date_to", "has_attachments",
            "page", "per_page"} <= names
    assert "422" in operation["responses"] and "200" in operation["responses"]
