"""The mail's pages: folders, a thread, compose with autosave, the recipient picker, lists,
labels and settings, as a signed-in person sees them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.core.models import Attachment
from app.messaging import services
from app.messaging.models import Label, Mailbox, MailingList, Message, Preference, Revision

LOCAL = "b2f7c1d0a4e94c55"


@pytest.fixture
def signed_in(app):
    """A signed-in test client for one of the office's people."""
    clients = {}

    def make(person):
        if person.id not in clients:
            c = app.test_client()
            assert c.sign_in(person.email).status_code == 302
            clients[person.id] = c
        return clients[person.id]

    return make


def send(sender, to, subject="Hello", body="Text", **extra):
    msg = services.send(sender, {"to": to, "subject": subject, "body": body, **extra})
    from app.extensions import db

    db.session.commit()
    return msg


def box(user, msg) -> Mailbox:
    from app.extensions import db

    return db.session.scalar(select(Mailbox).where(Mailbox.user_id == user.id,
                                                   Mailbox.message_id == msg.id))


def test_every_page_renders(office, signed_in, db):
    helen, sam = office.Helen, office.Sam
    msg = send(helen, [f"user:{sam.id}"], "Weekly figures", "Please **send** them.",
               kind="request", reply_due_at=(clock.utcnow() + timedelta(days=1)).isoformat())
    services.create_label(sam, {"name": "Clients", "color": "success"})
    draft = services.save_draft(sam, {"to": [f"post:{office.head.id}"], "subject": "Half written",
                                      "local_id": "draft-1"})
    db.session.commit()
    label_id = services.labels_of(sam)[0].id
    c = signed_in(sam)
    pages = ["/mail/", "/mail/?folder=starred", "/mail/?folder=sent", "/mail/?folder=drafts",
             "/mail/?folder=deferred", "/mail/?folder=archive", f"/mail/?label={label_id}",
             f"/mail/{msg.id}", "/mail/compose", f"/mail/compose?reply={msg.id}&mode=reply",
             f"/mail/compose?reply={msg.id}&mode=all", f"/mail/compose?reply={msg.id}&mode=forward",
             f"/mail/compose?draft={draft.id}", "/mail/lists", "/mail/labels", "/mail/settings",
             "/mail/recipients?q=Hel"]
    for path in pages:
        response = c.get(path)
        assert response.status_code == 200, path
    inbox = c.get("/mail/").get_data(as_text=True)
    assert "Weekly figures" in inbox and "Reply by" in inbox
    assert f'data-presence-user="{helen.id}"' in inbox  # a presence dot beside the sender
    assert re.search(r'data-feed-seq="\d+"', inbox)
    drafts = c.get("/mail/?folder=drafts").get_data(as_text=True)
    assert "Half written" in drafts and f"/mail/compose?draft={draft.id}" in drafts
    # the links other pages of the mail provide appear only where those pages exist
    assert ("/mail/search" in inbox) == ("messaging.search" in c.application.view_functions)
    assert c.get("/mail/?folder=nonsense").status_code == 404
    assert c.get("/mail/?label=999999").status_code == 404


def test_navbar_badge_counts_unread_and_opening_a_thread_reads_it(office, signed_in, db):
    helen, sam = office.Helen, office.Sam
    first = send(helen, [f"user:{sam.id}"], "One")
    send(helen, [f"user:{sam.id}"], "Two")
    c = signed_in(sam)
    home = c.get("/").get_data(as_text=True)
    assert re.search(r'data-testid="mail-unread"[^>]*>2<', home)
    page = c.get(f"/mail/{first.id}").get_data(as_text=True)
    assert "One" in page
    assert box(sam, first).read_at is not None
    assert re.search(r'data-testid="mail-unread"[^>]*>1<', c.get("/").get_data(as_text=True))
    # the sender sees who has read it
    sender_view = signed_in(helen).get(f"/mail/{first.id}").get_data(as_text=True)
    assert "Read by 1 of 1" in sender_view and "Sam" in sender_view


def test_compose_sends_through_the_form_and_the_recipient_sees_it(office, signed_in, db):
    sam, helen = office.Sam, office.Helen
    c = signed_in(sam)
    form = {"to": [f"user:{helen.id}", f"post:{office.fhead.id}"], "subject": "Visit on Tuesday",
            "body": "The client *confirmed*.", "kind": "ordinary", "importance": "high",
            "local_id": LOCAL, "action": "send"}
    response = c.form("/mail/compose", form)
    assert response.status_code == 302
    sent = db.session.scalar(select(Message).where(Message.sender_id == sam.id))
    assert sent.state == "sent" and sent.importance == "high"
    # the same form sent again (a double click, a retry) sends nothing new
    assert c.form("/mail/compose", form).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Message)
                             .where(Message.sender_id == sam.id)) == 1
    for person in (helen, office.Fred):
        inbox = signed_in(person).get("/mail/").get_data(as_text=True)
        assert "Visit on Tuesday" in inbox and "Important" in inbox
    thread = signed_in(helen).get(f"/mail/{sent.id}").get_data(as_text=True)
    assert "<em>confirmed</em>" in thread


def test_a_refused_form_changes_nothing_and_keeps_what_was_typed(office, signed_in, db):
    sam = office.Sam
    c = signed_in(sam)
    base = {"subject": "Figures", "body": "Please", "local_id": LOCAL, "action": "send"}
    # no recipient
    page = c.form("/mail/compose", {**base, "to": []})
    assert page.status_code == 422
    assert "Choose at least one recipient." in page.get_data(as_text=True)
    # a recipient that does not exist
    page = c.form("/mail/compose", {**base, "to": ["user:999999"]})
    assert page.status_code == 422 and "Unknown recipient" in page.get_data(as_text=True)
    # a request without a reply time
    page = c.form("/mail/compose", {**base, "to": [f"user:{office.Helen.id}"], "kind": "request"})
    text = page.get_data(as_text=True)
    assert page.status_code == 422 and "A request needs a reply time in the future." in text
    assert 'value="Figures"' in text and f'data-token="user:{office.Helen.id}"' in text
    # a bad external address
    page = c.form("/mail/compose", {**base, "to": [f"user:{office.Helen.id}"],
                                    "external_to": "not an address"})
    assert page.status_code == 422 and "Not a valid email address." in page.get_data(as_text=True)
    # a broadcast from someone without the capability
    page = c.form("/mail/compose", {**base, "to": ["all"], "kind": "broadcast"})
    assert page.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_times_are_read_in_the_users_time_zone(office, signed_in, db, make_user):
    moscow = make_user("Maria Moscow", timezone="Europe/Moscow")
    c = signed_in(moscow)
    response = c.form("/mail/compose", {
        "to": [f"user:{office.Sam.id}"], "subject": "Report, please", "kind": "request",
        "reply_due_at": "2031-03-10T12:00", "send_at": "2031-03-09T09:30", "local_id": LOCAL,
        "action": "send"})
    assert response.status_code == 302
    msg = db.session.scalar(select(Message).where(Message.sender_id == moscow.id))
    assert msg.state == "scheduled"
    assert msg.reply_due_at == datetime(2031, 3, 10, 9, 0, tzinfo=UTC)
    assert msg.send_at == datetime(2031, 3, 9, 6, 30, tzinfo=UTC)
    deferred = c.get("/mail/?folder=deferred").get_data(as_text=True)
    assert "Report, please" in deferred
    again = c.get(f"/mail/compose?draft={msg.id}").get_data(as_text=True)
    assert 'value="2031-03-10T12:00"' in again and 'value="2031-03-09T09:30"' in again


def test_a_message_one_may_not_see_is_404(office, signed_in, db):
    msg = send(office.Helen, [f"user:{office.Sam.id}"], "Private")
    c = signed_in(office.Fred)
    for path in (f"/mail/{msg.id}", f"/mail/compose?reply={msg.id}", f"/mail/compose?draft={msg.id}"):
        assert c.get(path).status_code == 404, path
    assert c.form(f"/mail/{msg.id}/confirm").status_code == 302  # refused, with a message
    assert box(office.Fred, msg) is None
    assert "Private" not in c.get("/mail/").get_data(as_text=True)
    # ids no row can have are not found either (PostgreSQL would refuse to compare them)
    huge = "99999999999999999999"
    for path in (f"/mail/{huge}", f"/mail/compose?draft={huge}", f"/mail/compose?reply={huge}",
                 f"/mail/?label={huge}"):
        assert c.get(path).status_code == 404, path
    assert c.get(f"/mail/?page={huge}").status_code == 200
    assert c.form("/mail/bulk", {"ids": [huge], "action": "read"}).status_code == 302
    saved = c.form("/mail/compose/autosave", {"draft_id": huge, "local_id": LOCAL})
    assert saved.status_code == 422
    sent = c.form("/mail/compose", {"to": [f"user:{office.Sam.id}"], "parent_id": huge,
                                    "subject": "x", "local_id": LOCAL, "action": "send"})
    assert sent.status_code == 422


def test_autosave_creates_one_draft_and_updates_it(office, signed_in, db):
    sam = office.Sam
    c = signed_in(sam)
    data = {"to": [f"user:{office.Helen.id}"], "subject": "First words", "body": "", "local_id": LOCAL,
            "draft_id": ""}
    first = c.form("/mail/compose/autosave", data, headers={"HX-Request": "true"})
    assert first.status_code == 200
    text = first.get_data(as_text=True)
    assert "Saved" in text and 'id="compose-files"' in text  # files may now be attached
    draft = db.session.scalar(select(Message).where(Message.sender_id == sam.id))
    assert f'name="draft_id" value="{draft.id}"' in text
    # a second autosave before the page learnt the draft's id: still one draft
    c.form("/mail/compose/autosave", {**data, "subject": "First words, more"})
    # later ones carry the id
    c.form("/mail/compose/autosave", {**data, "subject": "Final words", "draft_id": str(draft.id)})
    drafts = db.session.scalars(select(Message).where(Message.sender_id == sam.id)).all()
    assert len(drafts) == 1 and drafts[0].state == "draft" and drafts[0].subject == "Final words"
    # a bad recipient is reported and saves nothing
    bad = c.form("/mail/compose/autosave", {**data, "to": ["post:999999"], "subject": "Lost",
                                            "draft_id": str(draft.id)})
    assert bad.status_code == 422 and "Not saved" in bad.get_data(as_text=True)
    db.session.refresh(drafts[0])
    assert drafts[0].subject == "Final words"
    # sending the draft through the form delivers it
    c.form("/mail/compose", {**data, "subject": "Final words", "draft_id": str(draft.id), "body": "x",
                             "action": "send"})
    assert box(office.Helen, draft) is not None


def test_a_form_without_csrf_is_refused(office, signed_in, db):
    c = signed_in(office.Sam)
    response = c.post("/mail/compose", data={"to": [f"user:{office.Helen.id}"], "subject": "No token",
                                             "local_id": LOCAL, "action": "send"})
    assert response.status_code == 400
    response = c.post("/mail/compose/autosave", data={"subject": "No token", "local_id": LOCAL})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_the_picker_finds_people_posts_units_and_lists(office, signed_in, db):
    c = signed_in(office.Helen)
    services.create_list(office.Helen, {"name": "Sellers and finance",
                                        "members": [f"post:{office.seller.id}"]})
    db.session.commit()
    seller = c.get("/mail/recipients?q=sell").get_data(as_text=True)
    assert f'data-token="post:{office.seller.id}"' in seller
    assert "Sam, Sara" in seller  # the post's holders
    assert 'data-token="list:' in seller  # the list named "Sellers and finance"
    cashier = c.get("/mail/recipients?q=cashier").get_data(as_text=True)
    assert f'data-token="post:{office.cashier.id}"' in cashier
    assert "held from above by Fred" in cashier
    finance = c.get("/mail/recipients?q=Finance").get_data(as_text=True)
    assert f'data-token="unit:{office.finance.id}"' in finance
    people = c.get("/mail/recipients?q=sa").get_data(as_text=True)
    assert f'data-token="user:{office.Sam.id}"' in people and f'data-token="user:{office.Sara.id}"' in people
    # what is already chosen is not offered again; a list's members are never lists
    chosen = c.get(f"/mail/recipients?q=sa&to=user:{office.Sam.id}").get_data(as_text=True)
    assert f'data-token="user:{office.Sam.id}"' not in chosen
    members = c.get("/mail/recipients?q=sell&scope=list").get_data(as_text=True)
    assert 'data-token="list:' not in members
    assert "Nothing found" in c.get("/mail/recipients?q=zzzz").get_data(as_text=True)


def test_html_in_a_subject_and_body_is_shown_inert(office, signed_in, db):
    evil = '<img src=x onerror=alert(1)><script>alert("x")</script>'
    msg = send(office.Helen, [f"user:{office.Sam.id}"], evil, f"Body {evil}")
    c = signed_in(office.Sam)
    for path in ("/mail/", f"/mail/{msg.id}"):
        page = c.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path


def test_edit_recall_and_correction(office, signed_in, db):
    helen, sam = office.Helen, office.Sam
    h = signed_in(helen)
    msg = send(helen, [f"user:{sam.id}"], "Meeting at 10", "In room 1")
    page = h.get(f"/mail/{msg.id}").get_data(as_text=True)
    assert "Recall" in page and "Add correction" not in page
    edited = h.form(f"/mail/{msg.id}/edit", {"subject": "Meeting at 11", "body": "In room 2"})
    assert edited.status_code == 302
    signed_in(sam).get(f"/mail/{msg.id}")  # Sam reads it
    page = h.get(f"/mail/{msg.id}").get_data(as_text=True)
    assert "Meeting at 11" in page and "Add correction" in page and "Recall" not in page
    # now it has been read: an edit is refused and changes nothing
    h.form(f"/mail/{msg.id}/edit", {"subject": "Meeting at 12", "body": "x"})
    db.session.refresh(msg)
    assert msg.subject == "Meeting at 11"
    assert "add a correction instead" in h.get(f"/mail/{msg.id}").get_data(as_text=True)
    h.form(f"/mail/{msg.id}/correct", {"body": "Bring the **figures**."})
    sam_view = signed_in(sam).get(f"/mail/{msg.id}").get_data(as_text=True)
    assert "<strong>figures</strong>" in sam_view and "Correction" in sam_view
    assert "Meeting at 10" in sam_view  # the earlier version, in the history
    # a second message recalled before anyone read it
    other = send(helen, [f"user:{sam.id}"], "Wrong one")
    h.form(f"/mail/{other.id}/recall")
    assert box(sam, other) is None
    assert "Wrong one" not in signed_in(sam).get("/mail/").get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Revision)) == 2


def test_directive_is_confirmed_and_the_sender_sees_it(office, signed_in, db):
    msg = send(office.Helen, [f"post:{office.seller.id}"], "New order", kind="directive")
    s = signed_in(office.Sam)
    assert "Confirm: I have read it" in s.get(f"/mail/{msg.id}").get_data(as_text=True)
    s.form(f"/mail/{msg.id}/confirm")
    assert box(office.Sam, msg).confirmed_at is not None
    page = signed_in(office.Helen).get(f"/mail/{msg.id}").get_data(as_text=True)
    assert "Confirmed by 1 of 2" in page and "not confirmed" in page


def test_reply_answers_the_request_and_lands_in_the_thread(office, signed_in, db):
    due = (clock.utcnow() + timedelta(hours=5)).isoformat()
    msg = send(office.Helen, [f"user:{office.Sam.id}"], "Figures?", kind="request", reply_due_at=due)
    s = signed_in(office.Sam)
    compose = s.get(f"/mail/compose?reply={msg.id}&mode=reply").get_data(as_text=True)
    assert 'value="Re: Figures?"' in compose and f'data-token="user:{office.Helen.id}"' in compose
    response = s.form("/mail/compose", {"to": [f"user:{office.Helen.id}"], "subject": "Re: Figures?",
                                        "body": "Here they are.", "parent_id": str(msg.id),
                                        "kind": "report", "local_id": LOCAL, "action": "send"})
    reply = db.session.scalar(select(Message).where(Message.parent_id == msg.id))
    assert response.headers["Location"].endswith(f"/mail/{reply.id}#m-{reply.id}")
    assert box(office.Sam, msg).answered_at is not None
    thread = signed_in(office.Helen).get(f"/mail/{msg.id}").get_data(as_text=True)
    assert "Here they are." in thread and "answered" in thread


def test_bulk_actions_star_archive_and_back(office, signed_in, db):
    sam = office.Sam
    a = send(office.Helen, [f"user:{sam.id}"], "Alpha")
    b = send(office.Helen, [f"user:{sam.id}"], "Beta")
    c = signed_in(sam)
    c.form("/mail/bulk", {"ids": [a.id, b.id], "action": "read", "folder": "inbox"})
    assert box(sam, a).read_at and box(sam, b).read_at
    c.form("/mail/bulk", {"ids": [a.id], "action": "star", "folder": "inbox"})
    assert "Alpha" in c.get("/mail/?folder=starred").get_data(as_text=True)
    fragment = c.form("/mail/bulk", {"ids": [a.id, b.id], "action": "archive", "folder": "inbox"},
                      headers={"HX-Request": "true", "HX-Target": "mail-list"})
    assert fragment.status_code == 200 and 'id="mail-list"' in fragment.get_data(as_text=True)
    assert box(sam, a).folder == "archive" and box(sam, b).folder == "archive"
    c.form("/mail/bulk", {"ids": [b.id], "action": "restore", "folder": "archive"})
    assert box(sam, b).folder == "inbox" and box(sam, a).folder == "archive"
    # the star button alone (htmx)
    star = c.form(f"/mail/{b.id}/star", {"starred": "1"}, headers={"HX-Request": "true"})
    assert "bi-star-fill" in star.get_data(as_text=True) and box(sam, b).starred
    # someone else's message in a bulk action: refused, nothing changes
    other = send(office.Helen, [f"user:{office.Fred.id}"], "Not for Sam")
    c.form("/mail/bulk", {"ids": [b.id, other.id], "action": "archive", "folder": "inbox"})
    assert box(sam, b).folder == "inbox" and box(office.Fred, other).folder == "inbox"


def test_snooze_defers_to_a_time_in_the_users_zone(office, signed_in, db):
    msg = send(office.Helen, [f"user:{office.Sam.id}"], "Later please")
    c = signed_in(office.Sam)
    c.form(f"/mail/{msg.id}/snooze", {"preset": "tomorrow"})
    b = box(office.Sam, msg)
    assert b.snoozed_until is not None and b.snoozed_until > clock.utcnow()
    assert b.snoozed_until.astimezone(UTC).hour == 9  # Sam's zone is UTC
    assert "Later please" not in c.get("/mail/").get_data(as_text=True)
    assert "Later please" in c.get("/mail/?folder=deferred").get_data(as_text=True)
    # a time in the past is refused
    c.form(f"/mail/{msg.id}/snooze", {"until": "2001-01-01T10:00"})
    assert box(office.Sam, msg).snoozed_until == b.snoozed_until


def test_labels_are_made_given_and_shown(office, signed_in, db):
    c = signed_in(office.Sam)
    msg = send(office.Helen, [f"user:{office.Sam.id}"], "Client call")
    c.form("/mail/labels", {"name": "Clients", "color": "success"})
    label = db.session.scalar(select(Label).where(Label.user_id == office.Sam.id))
    assert label.name == "Clients"
    dup = c.form("/mail/labels", {"name": "Clients", "color": "success"})
    assert dup.status_code == 409 and "already have a label" in dup.get_data(as_text=True)
    c.form(f"/mail/{msg.id}/labels", {"label_ids": [str(label.id)]})
    c.form("/mail/bulk", {"ids": [msg.id], "action": "archive", "folder": "inbox"})
    labelled = c.get(f"/mail/?label={label.id}").get_data(as_text=True)
    assert "Client call" in labelled  # across folders
    c.form(f"/mail/labels/{label.id}/delete")
    assert db.session.scalar(select(func.count()).select_from(Label)) == 0


def test_mailing_lists_page(office, signed_in, db):
    c = signed_in(office.Helen)
    response = c.form("/mail/lists", {"name": "Sales team", "members": [f"post:{office.seller.id}",
                                                                        f"unit:{office.finance.id}"],
                                      "shared": "1"})
    assert response.status_code == 302
    ml = db.session.scalar(select(MailingList))
    assert ml.shared and [m.label for m in ml.members] == ["Seller", "Finance"]
    bad = c.form("/mail/lists", {"name": "Broken", "members": ["post:999999"]})
    assert bad.status_code == 422 and 'value="Broken"' in bad.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(MailingList)) == 1
    c.form(f"/mail/lists/{ml.id}", {"name": "Sales people", "members": [f"post:{office.seller.id}"]})
    db.session.refresh(ml)
    assert ml.name == "Sales people" and not ml.shared and len(ml.members) == 1
    # another person may not change it
    other = signed_in(office.Fred)
    assert other.form(f"/mail/lists/{ml.id}", {"name": "Mine now"}).status_code == 404
    c.form(f"/mail/lists/{ml.id}", {"name": "Sales people", "shared": "1",
                                    "members": [f"post:{office.seller.id}"]})
    assert "Sales people" in other.get("/mail/lists").get_data(as_text=True)
    assert other.form(f"/mail/lists/{ml.id}", {"name": "Mine now"}).status_code == 403
    c.form(f"/mail/lists/{ml.id}/archive")
    db.session.refresh(ml)
    assert ml.archived_at is not None


def test_settings_set_the_email_preference(office, signed_in, db):
    c = signed_in(office.Sam)
    assert 'value="immediate" checked' in c.get("/mail/settings").get_data(as_text=True)
    c.form("/mail/settings", {"email_mode": "digest"})
    assert db.session.get(Preference, office.Sam.id).email_mode == "digest"
    c.form("/mail/settings", {"email_mode": "loud"})
    assert db.session.get(Preference, office.Sam.id).email_mode == "digest"


@pytest.fixture
def stored_files(app):
    """Blobs written by a test are removed after it (its rows are rolled back), so the
    purge job's tests elsewhere see only their own."""
    from pathlib import Path

    root = Path(app.config["UPLOAD_DIR"])
    before = set(root.rglob("*")) if root.exists() else set()
    yield
    for path in set(root.rglob("*")) - before if root.exists() else ():
        if path.is_file():
            path.unlink()


def test_files_attach_to_the_saved_draft_and_travel_with_it(office, signed_in, db, stored_files):
    import io

    c = signed_in(office.Sam)
    c.form("/mail/compose/autosave", {"to": [f"user:{office.Helen.id}"], "subject": "With a file",
                                      "local_id": LOCAL})
    draft = db.session.scalar(select(Message).where(Message.sender_id == office.Sam.id))
    up = c.form("/attachments", {"owner_type": "mail_message", "owner_id": str(draft.id),
                                 "file": (io.BytesIO(b"figures,1\n"), "figures.csv")},
                content_type="multipart/form-data")
    assert up.status_code == 200
    assert "figures.csv" in c.get(f"/mail/compose?draft={draft.id}").get_data(as_text=True)
    c.form("/mail/compose", {"to": [f"user:{office.Helen.id}"], "subject": "With a file",
                             "draft_id": str(draft.id), "local_id": LOCAL, "action": "send"})
    thread = signed_in(office.Helen).get(f"/mail/{draft.id}").get_data(as_text=True)
    assert "figures.csv" in thread
    assert "bi-paperclip" in signed_in(office.Helen).get("/mail/").get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 1


def test_pages_cost_the_same_queries_for_few_or_many_messages(office, signed_in, db,
                                                              count_queries):
    helen, sam = office.Helen, office.Sam
    root = send(helen, [f"user:{sam.id}", f"post:{office.fhead.id}"], "Thread start")
    services.create_label(sam, {"name": "Clients"})
    db.session.commit()
    c = signed_in(sam)

    def cost(path):
        c.get(path)  # warm: the chart snapshot, the session
        with count_queries() as statements:
            assert c.get(path).status_code == 200
        return len(statements)

    def grow(n):
        for i in range(n):
            reply = services.send(helen, {"to": [f"user:{sam.id}", f"unit:{office.finance.id}"],
                                          "subject": f"More {i}", "body": "x",
                                          "parent_id": root.id})
            box_id = box(sam, reply).id
            assert box_id
        db.session.commit()

    few = {p: cost(p) for p in ("/mail/", f"/mail/{root.id}", "/mail/?folder=sent")}
    grow(12)
    many = {p: cost(p) for p in few}
    assert many == few, (few, many)


def test_broadcast_is_offered_only_to_a_post_with_the_capability(office, signed_in, db, admin):
    from app.orgchart import services as org

    org.set_capability(admin, office.director.id, {"name": "broadcast"})
    db.session.commit()
    dora, sam = signed_in(office.Dora), signed_in(office.Sam)
    assert 'value="broadcast"' in dora.get("/mail/compose").get_data(as_text=True)
    assert 'data-token="all"' in dora.get("/mail/recipients?q=all").get_data(as_text=True)
    assert 'value="broadcast"' not in sam.get("/mail/compose").get_data(as_text=True)
    assert 'data-token="all"' not in sam.get("/mail/recipients?q=all").get_data(as_text=True)
    response = dora.form("/mail/compose", {"to": ["all"], "kind": "broadcast", "subject": "Closed Monday",
                                           "local_id": LOCAL, "action": "send"})
    assert response.status_code == 302
    for person in (office.Helen, office.Sam, office.Sara, office.Fred):
        assert "Closed Monday" in signed_in(person).get("/mail/").get_data(as_text=True)
    # a broadcast to a single person is refused
    refused = dora.form("/mail/compose", {"to": [f"user:{office.Sam.id}"], "kind": "broadcast",
                                          "subject": "Just you", "local_id": "other", "action": "send"})
    assert refused.status_code == 422
    assert "A broadcast goes to all staff or to units." in refused.get_data(as_text=True)


def test_other_mail_pages_get_the_left_column_from_the_layout(app, office, db):
    from flask import render_template_string
    from flask_login import login_user

    send(office.Helen, [f"user:{office.Sam.id}"], "Unread one")
    with app.test_request_context("/mail/elsewhere"):
        login_user(office.Sam)
        html = render_template_string('{% extends "messaging/layout.html" %}'
                                      '{% block mail %}Another page{% endblock %}')
    assert "Another page" in html and 'id="mail-folders"' in html
    assert re.search(r'data-testid="folder-unread"[^>]*>1<', html)


def test_saving_a_scheduled_message_keeps_it_scheduled(office, signed_in, db):
    c = signed_in(office.Sam)
    later = (clock.utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    c.form("/mail/compose", {"to": [f"user:{office.Helen.id}"], "subject": "Monday plan",
                             "send_at": later.strftime("%Y-%m-%dT%H:%M"), "local_id": LOCAL,
                             "action": "send"})
    msg = db.session.scalar(select(Message).where(Message.sender_id == office.Sam.id))
    assert msg.state == "scheduled" and msg.send_at == later
    page = c.get(f"/mail/compose?draft={msg.id}").get_data(as_text=True)
    assert "scheduled to be sent" in page
    local_id = re.search(r'name="local_id" value="([^"]+)"', page).group(1)
    # an autosave with the time field cleared changes the text, not the schedule
    c.form("/mail/compose/autosave", {"to": [f"user:{office.Helen.id}"], "subject": "Monday plan v2",
                                      "send_at": "", "draft_id": str(msg.id), "local_id": local_id})
    db.session.refresh(msg)
    assert (msg.state, msg.send_at, msg.subject) == ("scheduled", later, "Monday plan v2")
    # Send with the field empty sends it now
    c.form("/mail/compose", {"to": [f"user:{office.Helen.id}"], "subject": "Monday plan v2",
                             "send_at": "", "draft_id": str(msg.id), "local_id": local_id,
                             "action": "send"})
    db.session.refresh(msg)
    assert msg.state == "sent" and box(office.Helen, msg) is not None
    assert msg.subject == "Monday plan v2"
