"""JSON API of the mail: every endpoint with a token (and with a browser session), the error
envelope and its codes, what a message shows of its caller's state (and of nobody else's),
attachments on drafts, and the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.core.models import Attachment, AuditEvent, FeedEvent
from app.extensions import db
from app.messaging import services
from app.messaging.models import Label, ListMember, Mailbox, MailingList, Message, Revision
from app.messaging.schemas import BODY_MAX
from tests.conftest import PASSWORD

API = "/api/v1"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def error_of(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


MODELS = (Message, Mailbox, Revision, Label, MailingList, ListMember, Attachment, FeedEvent,
          AuditEvent)


def row_counts() -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


@pytest.fixture
def tok(office, token_for):
    """Bearer headers by first name."""
    return {name: bearer(token_for(getattr(office, name)))
            for name in ("Dora", "Helen", "Sam", "Sara", "Fred")}


def later(**kw) -> str:
    return (clock.utcnow() + timedelta(**kw)).isoformat()


def post_message(client, headers, to, status=201, **kw):
    resp = client.post(f"{API}/messages", headers=headers,
                       json={"to": to, "subject": "Hello", "body": "Some *text*", **kw})
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


# --- sending, reading, lists of messages --------------------------------------------------

def test_send_read_and_show_only_the_callers_state(client, office, tok):
    o = office
    sent = post_message(client, tok["Helen"], [f"post:{o.seller.id}"], local_id="tab-1:1",
                        subject='<script>alert(1)</script> Plan', importance="high")
    mid = sent["id"]
    assert (sent["state"], sent["kind"], sent["importance"]) == ("sent", "ordinary", "high")
    assert sent["sender"] == {"id": o.Helen.id, "name": "Helen"}
    assert sent["to"] == [{"kind": "post", "target_id": o.seller.id, "label": "Seller"}]
    assert sent["subject"] == "<script>alert(1)</script> Plan"  # text; the page escapes it
    assert sent["body_html"] == "<p>Some <em>text</em></p>\n" and sent["snippet"] == "Some text"
    assert sent["box"]["role"] == "sender" and sent["box"]["folder"] == "sent"
    assert sent["local_id"] == "tab-1:1" and sent["editable"] is True
    assert {b.user_id for b in db.session.scalars(select(Mailbox).where(
        Mailbox.message_id == mid, Mailbox.role == "recipient"))} == {o.Sam.id, o.Sara.id}

    # a retry of the same local id: the first message, 200, nothing delivered twice
    again = post_message(client, tok["Helen"], [f"user:{o.Fred.id}"], status=200,
                         local_id="tab-1:1", subject="Other")
    assert again["id"] == mid and again["subject"] == sent["subject"]
    assert db.session.scalar(select(func.count()).select_from(Mailbox).where(
        Mailbox.message_id == mid)) == 3
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1

    inbox = client.get(f"{API}/messages", headers=tok["Sam"]).get_json()
    assert inbox["meta"] == {"page": 1, "per_page": 25, "total": 1, "pages": 1}
    [item] = inbox["items"]
    assert item["id"] == mid and item["attachment_count"] == 0
    assert item["box"] == {"role": "recipient", "folder": "inbox", "read": False, "read_at": None,
                           "starred": False, "labels": [], "confirmed": False,
                           "confirmed_at": None, "snoozed_until": None,
                           "via_post_id": o.seller.id, "reply_due_at": None, "answered_at": None}

    # Sara reads and stars her copy: Sam's copy says nothing of it
    resp = client.post(f"{API}/messages/read", headers=tok["Sara"], json={"ids": [mid]})
    assert resp.get_json() == {"changed": 1, "counts": {"unread": 0, "drafts": 0, "deferred": 0}}
    client.post(f"{API}/messages/star", headers=tok["Sara"], json={"ids": [mid], "starred": True})
    sams = client.get(f"{API}/messages/{mid}", headers=tok["Sam"]).get_json()
    assert sams["box"]["read"] is False and sams["box"]["starred"] is False
    assert sams["local_id"] is None and sams["external_to"] is None and sams["editable"] is False
    assert sams["history"] == [] and sams["attachments"] == []
    saras = client.get(f"{API}/messages/{mid}", headers=tok["Sara"]).get_json()
    assert saras["box"]["read"] is True and saras["box"]["starred"] is True
    # reading the message does not mark it read; the sender sees it can no longer be edited
    assert client.get(f"{API}/messages/{mid}", headers=tok["Sam"]).get_json()["box"]["read"] is False
    assert client.get(f"{API}/messages/{mid}", headers=tok["Helen"]).get_json()["editable"] is False


def test_folders_pages_and_label_filter(client, office, tok):
    o = office
    ids = [post_message(client, tok["Helen"], [f"user:{o.Sam.id}"], subject=f"N{i}")["id"]
           for i in range(3)]
    first = client.get(f"{API}/messages?per_page=2", headers=tok["Sam"]).get_json()
    assert first["meta"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    assert [m["id"] for m in first["items"]] == [ids[2], ids[1]]  # newest first (same time: id)
    second = client.get(f"{API}/messages?per_page=2&page=2", headers=tok["Sam"]).get_json()
    assert [m["id"] for m in second["items"]] == [ids[0]]
    sent = client.get(f"{API}/messages?folder=sent", headers=tok["Helen"]).get_json()
    assert sent["meta"]["total"] == 3 and all(m["box"]["role"] == "sender" for m in sent["items"])
    assert client.get(f"{API}/messages", headers=tok["Helen"]).get_json()["meta"]["total"] == 0

    label = client.post(f"{API}/mail-labels", headers=tok["Sam"], json={"name": "Key"}).get_json()
    resp = client.put(f"{API}/messages/{ids[1]}/labels", headers=tok["Sam"],
                      json={"label_ids": [label["id"]]})
    assert resp.status_code == 200 and resp.get_json()["box"]["labels"] == [
        {"id": label["id"], "name": "Key", "color": "secondary"}]
    tagged = client.get(f"{API}/messages?label_id={label['id']}", headers=tok["Sam"]).get_json()
    assert [m["id"] for m in tagged["items"]] == [ids[1]]
    # someone else's label is not a filter one may use
    error_of(client.get(f"{API}/messages?label_id={label['id']}", headers=tok["Helen"]),
             404, "not_found")
    err = error_of(client.get(f"{API}/messages?folder=trash", headers=tok["Sam"]),
                   422, "validation_error")
    assert "folder" in err["fields"]
    error_of(client.get(f"{API}/messages?page=0", headers=tok["Sam"]), 422, "validation_error")
    error_of(client.get(f"{API}/messages?per_page=500", headers=tok["Sam"]), 422, "validation_error")

    assert client.post(f"{API}/messages/move", headers=tok["Sam"],
                       json={"ids": ids[:2], "folder": "archive"}).get_json() == {"changed": 2}
    archive = client.get(f"{API}/messages?folder=archive", headers=tok["Sam"]).get_json()
    assert {m["id"] for m in archive["items"]} == set(ids[:2])
    assert client.post(f"{API}/messages/star", headers=tok["Sam"],
                       json={"ids": [ids[0]], "starred": True}).get_json() == {"changed": 1}
    starred = client.get(f"{API}/messages?folder=starred", headers=tok["Sam"]).get_json()
    assert [m["id"] for m in starred["items"]] == [ids[0]]
    assert starred["items"][0]["box"]["folder"] == "archive"


def test_drafts_autosave_send_and_delete(client, office, tok):
    o = office
    resp = client.post(f"{API}/messages/drafts", headers=tok["Sam"],
                       json={"subject": "Half", "local_id": "d-1"})
    assert resp.status_code == 201
    draft = resp.get_json()
    assert draft["state"] == "draft" and draft["box"]["folder"] == "drafts" and draft["to"] == []
    resp = client.post(f"{API}/messages/drafts", headers=tok["Sam"], json={
        "draft_id": draft["id"], "to": [f"user:{o.Helen.id}"], "subject": "Whole", "body": "Text"})
    assert resp.status_code == 200 and resp.get_json()["subject"] == "Whole"
    resp = client.post(f"{API}/messages/drafts", headers=tok["Sam"],
                       json={"local_id": "d-1", "to": [f"user:{o.Helen.id}"], "subject": "Whole!"})
    assert resp.status_code == 200 and resp.get_json()["id"] == draft["id"]
    drafts = client.get(f"{API}/messages?folder=drafts", headers=tok["Sam"]).get_json()
    assert [m["id"] for m in drafts["items"]] == [draft["id"]]
    assert client.get(f"{API}/messages/counts", headers=tok["Sam"]).get_json()["drafts"] == 1
    # nobody else sees a draft
    error_of(client.get(f"{API}/messages/{draft['id']}", headers=tok["Helen"]), 404, "not_found")
    # a draft is changed by saving it again, not by PATCH
    error_of(client.patch(f"{API}/messages/{draft['id']}", headers=tok["Sam"],
                          json={"subject": "X"}), 409, "conflict")

    sent = post_message(client, tok["Sam"], [f"user:{o.Helen.id}"], draft_id=draft["id"])
    assert sent["id"] == draft["id"] and sent["state"] == "sent"
    error_of(client.post(f"{API}/messages/drafts", headers=tok["Sam"],
                         json={"draft_id": draft["id"], "subject": "Again"}), 409, "conflict")

    other = client.post(f"{API}/messages/drafts", headers=tok["Sam"], json={"subject": "Scrap"})
    other_id = other.get_json()["id"]
    error_of(client.delete(f"{API}/messages/{other_id}", headers=tok["Helen"]), 404, "not_found")
    resp = client.delete(f"{API}/messages/{other_id}", headers=tok["Sam"])
    assert resp.get_json() == {"id": other_id, "state": "deleted"}
    assert db.session.get(Message, other_id) is None


def test_scheduled_send_waits_in_deferred(client, office, tok):
    o = office
    msg = post_message(client, tok["Helen"], [f"user:{o.Sam.id}"], send_at=later(hours=2))
    assert msg["state"] == "scheduled" and msg["box"]["folder"] == "scheduled"
    deferred = client.get(f"{API}/messages?folder=deferred", headers=tok["Helen"]).get_json()
    assert [m["id"] for m in deferred["items"]] == [msg["id"]]
    assert client.get(f"{API}/messages", headers=tok["Sam"]).get_json()["items"] == []
    clock.advance(timedelta(hours=2))
    assert services.send_due(clock.utcnow()) == 1
    db.session.commit()
    inbox = client.get(f"{API}/messages", headers=tok["Sam"]).get_json()
    assert [m["id"] for m in inbox["items"]] == [msg["id"]]


def test_edit_until_read_then_409_and_corrections(client, office, tok):
    o = office
    mid = post_message(client, tok["Helen"], [f"user:{o.Sam.id}"], subject="Plan", body="Ten")["id"]
    resp = client.patch(f"{API}/messages/{mid}", headers=tok["Helen"], json={"body": "Twelve"})
    assert resp.status_code == 200
    edited = resp.get_json()
    assert (edited["subject"], edited["body"]) == ("Plan", "Twelve") and edited["edited_at"]
    assert [(h["kind"], h["body"]) for h in edited["history"]] == [("edit", "Ten")]

    client.post(f"{API}/messages/read", headers=tok["Sam"], json={"ids": [mid]})
    before = row_counts()
    err = error_of(client.patch(f"{API}/messages/{mid}", headers=tok["Helen"],
                                json={"body": "Fifteen"}), 409, "conflict")
    assert "correction" in err["message"]
    error_of(client.delete(f"{API}/messages/{mid}", headers=tok["Helen"]), 409, "conflict")
    assert row_counts() == before and db.session.get(Message, mid).body == "Twelve"

    resp = client.post(f"{API}/messages/{mid}/corrections", headers=tok["Helen"],
                       json={"body": "Fifteen, **not** twelve"})
    assert resp.status_code == 201
    assert resp.get_json()["kind"] == "correction"
    assert "<strong>not</strong>" in resp.get_json()["body_html"]
    shown = client.get(f"{API}/messages/{mid}", headers=tok["Sam"]).get_json()
    assert [h["kind"] for h in shown["history"]] == ["edit", "correction"]
    error_of(client.post(f"{API}/messages/{mid}/corrections", headers=tok["Sam"],
                         json={"body": "Mine"}), 404, "not_found")
    error_of(client.post(f"{API}/messages/{mid}/corrections", headers=tok["Helen"],
                         json={}), 422, "validation_error")


def test_recall_before_read(client, office, tok):
    o = office
    mid = post_message(client, tok["Helen"], [f"post:{o.seller.id}"])["id"]
    err = error_of(client.delete(f"{API}/messages/{mid}", headers=tok["Sam"]),
                   403, "permission_denied")
    assert "archive" in err["message"]
    resp = client.delete(f"{API}/messages/{mid}", headers=tok["Helen"])
    assert resp.status_code == 200 and resp.get_json() == {"id": mid, "state": "recalled"}
    error_of(client.get(f"{API}/messages/{mid}", headers=tok["Sam"]), 404, "not_found")
    assert client.get(f"{API}/messages", headers=tok["Sara"]).get_json()["items"] == []
    assert client.get(f"{API}/messages/{mid}", headers=tok["Helen"]).get_json()["state"] == "recalled"


def test_thread_confirm_receipts_snooze(client, office, tok):
    o = office
    mid = post_message(client, tok["Helen"], [f"post:{o.seller.id}"], kind="directive",
                       subject="Dress code")["id"]
    resp = client.post(f"{API}/messages/{mid}/confirm", headers=tok["Sam"])
    assert resp.status_code == 200
    assert resp.get_json()["box"]["confirmed"] is True and resp.get_json()["box"]["read"] is True
    receipts = client.get(f"{API}/messages/{mid}/receipts", headers=tok["Helen"]).get_json()
    assert (receipts["total"], receipts["read"], receipts["confirmed"]) == (2, 1, 1)
    by_name = {r["user"]["name"]: r for r in receipts["recipients"]}
    assert by_name["Sam"]["confirmed_at"] and by_name["Sara"]["confirmed_at"] is None
    assert by_name["Sam"]["via_post_id"] == o.seller.id
    error_of(client.get(f"{API}/messages/{mid}/receipts", headers=tok["Sam"]), 404, "not_found")
    error_of(client.post(f"{API}/messages/{mid}/confirm", headers=tok["Helen"]),
             422, "validation_error")

    reply = post_message(client, tok["Sam"], [f"user:{o.Helen.id}"], parent_id=mid,
                         subject="Re: Dress code")
    assert reply["thread_id"] == mid and reply["parent_id"] == mid
    thread = client.get(f"{API}/messages/{reply['id']}/thread", headers=tok["Helen"]).get_json()
    assert [m["id"] for m in thread] == [mid, reply["id"]]
    assert [m["box"]["role"] for m in thread] == ["sender", "recipient"]
    assert [m["id"] for m in client.get(f"{API}/messages/{mid}/thread",
                                        headers=tok["Sara"]).get_json()] == [mid]

    resp = client.post(f"{API}/messages/{mid}/snooze", headers=tok["Sara"],
                       json={"until": later(hours=3)})
    assert resp.status_code == 200 and resp.get_json()["box"]["snoozed_until"]
    assert client.get(f"{API}/messages", headers=tok["Sara"]).get_json()["items"] == []
    assert client.get(f"{API}/messages/counts", headers=tok["Sara"]).get_json() == {
        "unread": 0, "drafts": 0, "deferred": 1}
    err = error_of(client.post(f"{API}/messages/{mid}/snooze", headers=tok["Sara"],
                               json={"until": later(hours=-1)}), 422, "validation_error")
    assert "until" in err["fields"]
    error_of(client.post(f"{API}/messages/{mid}/snooze", headers=tok["Sara"], json={}),
             422, "validation_error")


def test_labels_api(client, office, tok):
    o = office
    mid = post_message(client, tok["Helen"], [f"user:{o.Sam.id}"])["id"]
    resp = client.post(f"{API}/mail-labels", headers=tok["Sam"], json={"name": "Key", "color": "danger"})
    assert resp.status_code == 201
    key = resp.get_json()
    error_of(client.post(f"{API}/mail-labels", headers=tok["Sam"], json={"name": "Key"}),
             409, "conflict")
    error_of(client.post(f"{API}/mail-labels", headers=tok["Sam"], json={"name": ""}),
             422, "validation_error")
    assert client.get(f"{API}/mail-labels", headers=tok["Sam"]).get_json() == [key]
    assert client.get(f"{API}/mail-labels", headers=tok["Helen"]).get_json() == []
    client.put(f"{API}/messages/{mid}/labels", headers=tok["Sam"], json={"label_ids": [key["id"]]})
    # another's label, another's message
    helens = client.post(f"{API}/mail-labels", headers=tok["Helen"], json={"name": "H"}).get_json()
    error_of(client.put(f"{API}/messages/{mid}/labels", headers=tok["Sam"],
                        json={"label_ids": [helens["id"]]}), 404, "not_found")
    error_of(client.put(f"{API}/messages/{mid}/labels", headers=tok["Fred"],
                        json={"label_ids": []}), 404, "not_found")
    error_of(client.delete(f"{API}/mail-labels/{key['id']}", headers=tok["Helen"]), 404, "not_found")
    assert client.delete(f"{API}/mail-labels/{key['id']}", headers=tok["Sam"]).status_code == 204
    assert client.get(f"{API}/messages/{mid}", headers=tok["Sam"]).get_json()["box"]["labels"] == []


def test_mailing_lists_api(client, office, tok):
    o = office
    resp = client.post(f"{API}/mailing-lists", headers=tok["Helen"], json={
        "name": "Desk", "shared": True, "members": [f"post:{o.seller.id}", f"user:{o.Fred.id}"]})
    assert resp.status_code == 201
    ml = resp.get_json()
    assert ml["mine"] is True and ml["owner"]["name"] == "Helen"
    assert [(m["kind"], m["target_id"], m["label"]) for m in ml["members"]] == [
        ("post", o.seller.id, "Seller"), ("user", o.Fred.id, "Fred")]
    seen = client.get(f"{API}/mailing-lists", headers=tok["Dora"]).get_json()
    assert [(x["id"], x["mine"]) for x in seen] == [(ml["id"], False)]

    msg = post_message(client, tok["Dora"], [f"list:{ml['id']}"])
    resp = client.patch(f"{API}/mailing-lists/{ml['id']}", headers=tok["Helen"],
                        json={"name": "Front desk"})
    assert resp.status_code == 200
    patched = resp.get_json()
    assert patched["name"] == "Front desk" and patched["shared"] is True
    assert [m["target_id"] for m in patched["members"]] == [o.seller.id, o.Fred.id]
    patched = client.patch(f"{API}/mailing-lists/{ml['id']}", headers=tok["Helen"],
                           json={"members": [f"user:{o.Dora.id}"]}).get_json()
    assert [m["target_id"] for m in patched["members"]] == [o.Dora.id]
    # what was sent keeps its recipients
    assert {b.user_id for b in db.session.scalars(select(Mailbox).where(
        Mailbox.message_id == msg["id"], Mailbox.role == "recipient"))} == {o.Sam.id, o.Sara.id, o.Fred.id}

    before = row_counts()
    error_of(client.patch(f"{API}/mailing-lists/{ml['id']}", headers=tok["Dora"],
                          json={"name": "Mine"}), 403, "permission_denied")
    err = error_of(client.post(f"{API}/mailing-lists", headers=tok["Helen"],
                               json={"name": "Bad", "members": ["post:10000000"]}),
                   422, "validation_error")
    assert "to" in err["fields"] or "members" in err["fields"]
    error_of(client.post(f"{API}/mailing-lists", headers=tok["Helen"], json={"members": []}),
             422, "validation_error")
    private = client.post(f"{API}/mailing-lists", headers=tok["Fred"],
                          json={"name": "Own", "members": [f"user:{o.Sam.id}"]}).get_json()
    before = row_counts()
    error_of(client.patch(f"{API}/mailing-lists/{private['id']}", headers=tok["Helen"],
                          json={"name": "X"}), 404, "not_found")
    error_of(client.delete(f"{API}/mailing-lists/{private['id']}", headers=tok["Helen"]),
             404, "not_found")
    error_of(client.post(f"{API}/messages", headers=tok["Helen"],
                         json={"to": [f"list:{private['id']}"], "body": "x"}), 422, "validation_error")
    assert row_counts() == before

    assert client.delete(f"{API}/mailing-lists/{ml['id']}", headers=tok["Helen"]).status_code == 204
    assert client.get(f"{API}/mailing-lists", headers=tok["Dora"]).get_json() == []
    error_of(client.post(f"{API}/messages", headers=tok["Dora"],
                         json={"to": [f"list:{ml['id']}"], "body": "x"}), 422, "validation_error")


def test_preferences_api(client, office, tok):
    assert client.get(f"{API}/mail-preferences", headers=tok["Sam"]).get_json() == {
        "email_mode": "immediate"}
    resp = client.put(f"{API}/mail-preferences", headers=tok["Sam"], json={"email_mode": "digest"})
    assert resp.status_code == 200 and resp.get_json() == {"email_mode": "digest"}
    assert client.get(f"{API}/mail-preferences", headers=tok["Sam"]).get_json()["email_mode"] == "digest"
    assert client.get(f"{API}/mail-preferences", headers=tok["Sara"]).get_json()["email_mode"] == "immediate"
    err = error_of(client.put(f"{API}/mail-preferences", headers=tok["Sam"],
                              json={"email_mode": "hourly"}), 422, "validation_error")
    assert "email_mode" in err["fields"]


def test_counts_and_feed(client, office, tok):
    o = office
    assert client.get(f"{API}/feed?after=0", headers=tok["Sam"]).get_json() == {
        "events": [], "more": False, "reset": False, "last": 0}
    mid = post_message(client, tok["Helen"], [f"user:{o.Sam.id}"])["id"]
    post_message(client, tok["Helen"], [f"user:{o.Sam.id}"])
    assert client.get(f"{API}/messages/counts", headers=tok["Sam"]).get_json() == {
        "unread": 2, "drafts": 0, "deferred": 0}
    client.post(f"{API}/messages/read", headers=tok["Sam"], json={"ids": [mid]})

    feed = client.get(f"{API}/feed?after=0", headers=tok["Sam"]).get_json()
    assert [(e["seq"], e["kind"]) for e in feed["events"]] == [
        (1, "message.new"), (2, "message.new"), (3, "message.read")]
    assert feed["events"][0]["payload"]["id"] == mid
    assert feed["events"][2]["payload"]["counts"]["mail_unread"] == 1
    assert feed["last"] == 3 and feed["more"] is False
    tail = client.get(f"{API}/feed?after=2", headers=tok["Sam"]).get_json()
    assert [e["seq"] for e in tail["events"]] == [3]
    # the sender's feed has the receipt; nobody else's feed has anything of it
    helen = client.get(f"{API}/feed?after=0", headers=tok["Helen"]).get_json()
    assert [e["kind"] for e in helen["events"]] == ["message.new", "message.new", "message.receipt"]
    assert client.get(f"{API}/feed?after=0", headers=tok["Fred"]).get_json()["events"] == []
    for query in ("", "?after=-1", "?after=x"):
        err = error_of(client.get(f"{API}/feed{query}", headers=tok["Sam"]), 422, "validation_error")
        assert "after" in err["fields"]


# --- errors -------------------------------------------------------------------------------

def test_without_a_token_every_endpoint_is_401(client, office):
    for method, path in (
            ("get", "/messages"), ("post", "/messages"), ("post", "/messages/drafts"),
            ("get", "/messages/1"), ("patch", "/messages/1"), ("delete", "/messages/1"),
            ("get", "/messages/1/thread"), ("post", "/messages/1/corrections"),
            ("post", "/messages/1/confirm"), ("get", "/messages/1/receipts"),
            ("post", "/messages/1/snooze"), ("put", "/messages/1/labels"),
            ("post", "/messages/read"), ("post", "/messages/move"), ("post", "/messages/star"),
            ("get", "/messages/counts"), ("get", "/feed?after=0"), ("get", "/mailing-lists"),
            ("post", "/mailing-lists"), ("patch", "/mailing-lists/1"),
            ("delete", "/mailing-lists/1"), ("get", "/mail-labels"), ("post", "/mail-labels"),
            ("delete", "/mail-labels/1"), ("get", "/mail-preferences"),
            ("put", "/mail-preferences")):
        error_of(getattr(client, method)(f"{API}{path}", json={}), 401, "unauthorized")
        error_of(getattr(client, method)(f"{API}{path}", json={}, headers=bearer("crm_wrong")),
                 401, "unauthorized")


def test_another_persons_message_is_404_and_unchanged(client, office, tok):
    o = office
    mid = post_message(client, tok["Helen"], [f"user:{o.Sam.id}"], kind="directive")["id"]
    fred = tok["Fred"]
    before = row_counts()
    for method, path, body in (
            ("get", f"/messages/{mid}", None),
            ("patch", f"/messages/{mid}", {"subject": "Mine"}),
            ("delete", f"/messages/{mid}", None),
            ("get", f"/messages/{mid}/thread", None),
            ("post", f"/messages/{mid}/corrections", {"body": "Mine"}),
            ("post", f"/messages/{mid}/confirm", None),
            ("get", f"/messages/{mid}/receipts", None),
            ("post", f"/messages/{mid}/snooze", {"until": later(hours=1)}),
            ("put", f"/messages/{mid}/labels", {"label_ids": []}),
            ("post", "/messages/move", {"ids": [mid], "folder": "archive"}),
            ("post", "/messages/star", {"ids": [mid], "starred": True}),
            ("get", "/messages/10000000", None),
            ("post", "/messages", {"to": [f"user:{o.Helen.id}"], "body": "x", "parent_id": mid}),
            ("post", "/messages", {"to": [f"user:{o.Helen.id}"], "body": "x", "forward_of": mid}),
    ):
        kwargs = {"headers": fred} if body is None else {"headers": fred, "json": body}
        error_of(getattr(client, method)(f"{API}{path}", **kwargs), 404, "not_found")
    assert client.post(f"{API}/messages/read", headers=fred,
                       json={"ids": [mid]}).get_json()["changed"] == 0
    assert row_counts() == before
    sams = client.get(f"{API}/messages/{mid}", headers=tok["Sam"]).get_json()
    assert sams["box"]["read"] is False and sams["box"]["confirmed"] is False


def test_bad_input_is_422_with_fields_and_changes_nothing(client, office, tok):
    o = office
    h = tok["Helen"]
    sam = [f"user:{o.Sam.id}"]
    before = row_counts()
    for body, field in (
            ({"to": ["user:10000000"], "body": "x"}, "to"),
            ({"to": ["post:10000000"], "body": "x"}, "to"),
            ({"to": ["unit:10000000"], "body": "x"}, "to"),
            ({"to": ["list:10000000"], "body": "x"}, "to"),
            ({"to": ["all"], "body": "x"}, "to"),
            ({"to": [], "body": "x"}, "to"),
            ({"to": sam, "subject": "", "body": ""}, "body"),
            ({"to": sam, "body": "x" * (BODY_MAX + 1)}, "body"),
            ({"to": sam, "body": "x", "kind": "request"}, "reply_due_at"),
            ({"to": sam, "body": "x", "kind": "request", "reply_due_at": later(hours=-1)},
             "reply_due_at"),
            ({"to": sam, "body": "x", "send_at": later(minutes=-5)}, "send_at"),
            ({"to": sam, "body": "x", "send_at": "soon"}, "send_at"),
            ({"to": "user:1", "body": "x"}, "to"),
            ({"to": sam, "body": ["x"]}, "body"),
            ({"to": sam, "body": "x", "kind": "memo"}, "kind"),
            ({"to": sam, "body": "x", "parent_id": "1"}, "parent_id"),
    ):
        err = error_of(client.post(f"{API}/messages", headers=h, json=body), 422, "validation_error")
        assert field in err["fields"], (body, err)
    for token in ("user:10000000", "post:10000000", "unit:10000000", "list:10000000", "all"):
        err = error_of(client.post(f"{API}/messages/drafts", headers=h, json={"to": [token]}),
                       422, "validation_error")
        assert token in err["message"] and "to" in err["fields"]
    err = error_of(client.post(f"{API}/messages", headers=h, data="{not json",
                               content_type="application/json"), 400, "bad_request")
    assert "json" in err["fields"]
    error_of(client.post(f"{API}/messages", headers=h, json=[1, 2]), 422, "validation_error")
    error_of(client.post(f"{API}/messages", headers=h, json={"to": sam, "body": "x"} | {
        "kind": "broadcast"}), 403, "permission_denied")
    for path, body in (("/messages/read", {"ids": "x"}), ("/messages/read", {}),
                       ("/messages/move", {"ids": [1], "folder": "trash"}),
                       ("/messages/star", {"ids": [1]}), ("/mail-labels", {"name": "x" * 61})):
        err = error_of(client.post(f"{API}{path}", headers=h, json=body), 422, "validation_error")
        assert err["fields"], path
    assert row_counts() == before


def test_session_calls_need_the_csrf_token(app, office):
    o = office
    browser = app.test_client()
    assert browser.sign_in(o.Sam.email, PASSWORD).status_code == 302
    assert browser.get(f"{API}/messages").status_code == 200
    before = row_counts()
    err = error_of(browser.post(f"{API}/messages", json={"to": [f"user:{o.Helen.id}"], "body": "x"}),
                   400, "csrf_failed")
    assert err["message"]
    assert row_counts() == before
    resp = browser.post(f"{API}/messages", json={"to": [f"user:{o.Helen.id}"], "body": "Hi"},
                        headers={"X-CSRFToken": browser.csrf()})
    assert resp.status_code == 201 and resp.get_json()["sender"]["id"] == o.Sam.id
    # the core API stays token-only
    assert browser.get(f"{API}/me").status_code == 401


def test_openapi_document_has_the_mail(app, client, office, tok):
    doc = client.get(f"{API}/openapi.json", headers=tok["Sam"]).get_json()
    paths = doc["paths"]
    for path, methods in (
            ("/api/v1/messages", {"get", "post"}), ("/api/v1/messages/drafts", {"post"}),
            ("/api/v1/messages/{message_id}", {"get", "patch", "delete"}),
            ("/api/v1/messages/{message_id}/thread", {"get"}),
            ("/api/v1/messages/{message_id}/corrections", {"post"}),
            ("/api/v1/messages/{message_id}/confirm", {"post"}),
            ("/api/v1/messages/{message_id}/receipts", {"get"}),
            ("/api/v1/messages/{message_id}/snooze", {"post"}),
            ("/api/v1/messages/{message_id}/labels", {"put"}),
            ("/api/v1/messages/read", {"post"}), ("/api/v1/messages/move", {"post"}),
            ("/api/v1/messages/star", {"post"}), ("/api/v1/messages/counts", {"get"}),
            ("/api/v1/feed", {"get"}), ("/api/v1/mailing-lists", {"get", "post"}),
            ("/api/v1/mailing-lists/{list_id}", {"patch", "delete"}),
            ("/api/v1/mail-labels", {"get", "post"}), ("/api/v1/mail-labels/{label_id}", {"delete"}),
            ("/api/v1/mail-preferences", {"get", "put"})):
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    send = paths["/api/v1/messages"]["post"]
    assert {"200", "201", "422"} <= set(send["responses"])
    assert send["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ComposeIn")
    schemas = doc["components"]["schemas"]
    assert {"to", "subject", "body", "kind", "local_id", "send_at"} <= set(
        schemas["ComposeIn"]["properties"])
    assert {"box", "history", "attachments", "body_html"} <= set(
        schemas["MailMessageDetail"]["properties"])
    assert {"read", "starred", "labels", "confirmed", "folder"} <= set(
        schemas["MailBoxState"]["properties"])
    assert {"name": "after", "in": "query"}.items() <= paths["/api/v1/feed"]["get"][
        "parameters"][0].items()


# --- attachments on drafts ----------------------------------------------------------------

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


def upload(client, headers, owner_id, content=b"price list", name="prices.txt"):
    """A multipart body built by hand (the test client would spool a large one to a file)."""
    b = "mailboundary7"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\nmail_message\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="owner_id"\r\n\r\n{owner_id}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + \
        f"\r\n--{b}--\r\n".encode()
    return client.post(f"{API}/attachments", headers=headers, data=body,
                       content_type=f"multipart/form-data; boundary={b}")


def test_files_go_on_ones_own_draft_only(client, office, tok, stored_files):
    o = office
    draft = client.post(f"{API}/messages/drafts", headers=tok["Sam"],
                        json={"to": [f"user:{o.Helen.id}"], "subject": "Prices"}).get_json()
    resp = upload(client, tok["Sam"], draft["id"], name="<b>prices</b>.txt")
    assert resp.status_code == 201
    att = resp.get_json()
    assert "<" not in att["filename"] and ">" not in att["filename"]
    shown = client.get(f"{API}/messages/{draft['id']}", headers=tok["Sam"]).get_json()
    assert [a["id"] for a in shown["attachments"]] == [att["id"]] and shown["attachment_count"] == 1

    before = row_counts()
    # someone else's draft: it does not exist for them
    error_of(upload(client, tok["Helen"], draft["id"]), 404, "not_found")
    error_of(upload(client, tok["Helen"], 10_000_000), 404, "not_found")
    # too large for the upload limit
    error_of(upload(client, tok["Sam"], draft["id"], content=b"x" * (1024 * 1024 + 1)),
             413, "too_large")
    # a program
    error_of(upload(client, tok["Sam"], draft["id"], content=b"MZ\x90\x00" + b"\x00" * 64,
                    name="setup.exe"), 422, "validation_error")
    assert row_counts() == before

    sent = post_message(client, tok["Sam"], [f"user:{o.Helen.id}"], draft_id=draft["id"],
                        subject="Prices")
    assert sent["attachment_count"] == 1
    # once sent, the files are fixed: not the sender, not a recipient, not a stranger
    before = row_counts()
    error_of(upload(client, tok["Sam"], draft["id"]), 403, "permission_denied")
    error_of(upload(client, tok["Helen"], draft["id"]), 403, "permission_denied")
    error_of(upload(client, tok["Fred"], draft["id"]), 404, "not_found")
    assert row_counts() == before
    # the recipient may list and download; a stranger may not
    listed = client.get(f"{API}/attachments?owner_type=mail_message&owner_id={draft['id']}",
                        headers=tok["Helen"])
    assert [a["id"] for a in listed.get_json()] == [att["id"]]
    got = client.get(f"{API}/attachments/{att['id']}/content", headers=tok["Helen"])
    assert got.status_code == 200 and got.data == b"price list"
    error_of(client.get(f"{API}/attachments/{att['id']}/content", headers=tok["Fred"]),
             404, "not_found")
    error_of(client.get(f"{API}/attachments?owner_type=mail_message&owner_id={draft['id']}",
                        headers=tok["Fred"]), 404, "not_found")
    inbox = client.get(f"{API}/messages", headers=tok["Helen"]).get_json()
    assert inbox["items"][0]["attachment_count"] == 1


def test_lists_and_threads_take_the_same_queries_for_more_messages(client, office, tok,
                                                                   count_queries):
    o = office
    label = services.create_label(o.Sam, {"name": "Key"})
    db.session.commit()

    def grow(n: int, first: int | None = None) -> int:
        for _i in range(n):
            mid = post_message(client, tok["Helen"], [f"post:{o.seller.id}", f"user:{o.Fred.id}"],
                               parent_id=first)["id"]
            first = first or mid
            client.put(f"{API}/messages/{mid}/labels", headers=tok["Sam"],
                       json={"label_ids": [label.id]})
        return first

    def queries(path: str) -> int:
        with count_queries() as statements:
            assert client.get(path, headers=tok["Sam"]).status_code == 200
        return len(statements)

    root = grow(2)
    small = (queries(f"{API}/messages"), queries(f"{API}/messages/{root}/thread"))
    grow(8, root)
    assert client.get(f"{API}/messages", headers=tok["Sam"]).get_json()["meta"]["total"] == 10
    assert len(client.get(f"{API}/messages/{root}/thread", headers=tok["Sam"]).get_json()) == 10
    big = (queries(f"{API}/messages"), queries(f"{API}/messages/{root}/thread"))
    assert big == small
