"""Attachments: upload, list, download, delete; caps, type by content, safe downloads."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from app.core import clock, jobs
from app.core.models import Attachment, AuditEvent

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def upload(c, owner_id, data, name, owner_type="user"):
    return c.post("/attachments", data={
        "owner_type": owner_type, "owner_id": str(owner_id),
        "file": (io.BytesIO(data), name)}, headers={"X-CSRFToken": c.csrf()},
        content_type="multipart/form-data")


def raw_multipart(c, owner_id, data: bytes, name: str):
    """A multipart body built by hand (the test client spools large ones to a temp file)."""
    b = "crmboundary42"
    head = (f'--{b}\r\nContent-Disposition: form-data; name="owner_type"\r\n\r\nuser\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="owner_id"\r\n\r\n{owner_id}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    body = head + data + f"\r\n--{b}--\r\n".encode()
    return c.post("/attachments", data=body, content_type=f"multipart/form-data; boundary={b}",
                  headers={"X-CSRFToken": c.csrf()})


def blobs(app) -> list[Path]:
    root = Path(app.config["UPLOAD_DIR"])
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"]


def tmp_files(app) -> list[Path]:
    return list((Path(app.config["UPLOAD_DIR"]) / "tmp").glob("*"))


def test_upload_list_download_delete(app, user_client, user, db):
    # files other tests left unused are purged first, so the counts below are this test's
    clock.freeze(datetime.now(UTC) + timedelta(hours=2))
    jobs.run_due(only="purge_files")
    clock.release()
    resp = upload(user_client, user.id, PNG, "photo.png")
    assert resp.status_code == 200 and "photo.png" in resp.get_data(as_text=True)
    att = db.session.scalar(select(Attachment).where(Attachment.owner_id == user.id))
    assert (att.mime, att.size, att.owner_type) == ("image/png", len(PNG), "user")
    got = user_client.get(f"/attachments/{att.id}")
    assert got.data == PNG and got.mimetype == "image/png"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    panel = user_client.get(f"/attachments/panel?owner_type=user&owner_id={user.id}")
    assert "photo.png" in panel.get_data(as_text=True)
    path = Path(app.config["UPLOAD_DIR"]) / att.sha256[:2] / att.sha256
    assert path.exists()
    att_id = att.id
    resp = user_client.post(f"/attachments/{att_id}/delete",
                            headers={"X-CSRFToken": user_client.csrf()})
    assert resp.status_code == 200 and "No files yet." in resp.get_data(as_text=True)
    db.session.expunge_all()
    assert db.session.get(Attachment, att_id) is None
    # the bytes go with the purge job, once unused for an hour
    assert jobs.run_due(only="purge_files")["purge_files"] == "removed 0 files"
    clock.freeze(datetime.now(UTC) + timedelta(hours=2))
    assert jobs.run_due(only="purge_files")["purge_files"] == "removed 1 files"
    assert not path.exists()
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("attachment.%")).order_by(AuditEvent.id)))
    assert actions == ["attachment.add", "attachment.delete"]


def test_same_content_is_stored_once_and_kept_while_used(app, user_client, user, db):
    upload(user_client, user.id, b"same bytes here", "a.txt")
    upload(user_client, user.id, b"same bytes here", "b.txt")
    rows = db.session.scalars(select(Attachment).where(Attachment.owner_id == user.id)).all()
    assert len(rows) == 2 and rows[0].sha256 == rows[1].sha256
    path = Path(app.config["UPLOAD_DIR"]) / rows[0].sha256[:2] / rows[0].sha256
    user_client.post(f"/attachments/{rows[0].id}/delete", headers={"X-CSRFToken": user_client.csrf()})
    clock.freeze(datetime.now(UTC) + timedelta(hours=2))
    jobs.run_due(only="purge_files")
    assert path.exists()  # still used by b.txt
    assert user_client.get(f"/attachments/{rows[1].id}").data == b"same bytes here"


def test_other_users_attachment_is_404(app, user_client, make_user, db):
    other = make_user()
    c = app.test_client()
    c.sign_in(other.email)
    upload(c, other.id, b"private notes", "notes.txt")
    att = db.session.scalar(select(Attachment).where(Attachment.owner_id == other.id))
    assert user_client.get(f"/attachments/{att.id}").status_code == 404
    assert user_client.post(f"/attachments/{att.id}/delete",
                            headers={"X-CSRFToken": user_client.csrf()}).status_code == 404
    assert user_client.get(f"/attachments/panel?owner_type=user&owner_id={other.id}"
                           ).status_code == 404
    assert upload(user_client, other.id, b"sneaky", "x.txt").status_code == 404
    assert user_client.get("/attachments/999999").status_code == 404
    assert db.session.scalar(select(func.count(Attachment.id))) == 1


def test_admin_may_see_but_not_add_to_others_files(app, admin_client, user_client, user, db):
    upload(user_client, user.id, b"report", "r.txt")
    att = db.session.scalar(select(Attachment).where(Attachment.owner_id == user.id))
    assert admin_client.get(f"/attachments/{att.id}").data == b"report"
    assert upload(admin_client, user.id, b"x", "x.txt").status_code == 403


def test_over_the_cap_is_413_and_leaves_no_file(app, user_client, user, db):
    before = blobs(app)
    big = os.urandom(app.config["MAX_CONTENT_LENGTH"] + 10)
    resp = raw_multipart(user_client, user.id, big, "big.bin")
    assert resp.status_code == 413
    assert blobs(app) == before and tmp_files(app) == []
    assert db.session.scalar(select(func.count(Attachment.id))) == 0


def test_empty_file_is_refused(app, user_client, user, db):
    resp = upload(user_client, user.id, b"", "empty.txt")
    assert resp.status_code == 422 and "The file is empty." in resp.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Attachment.id))) == 0
    assert tmp_files(app) == []


def test_programs_are_refused(user_client, user, db):
    resp = upload(user_client, user.id, b"MZ\x90\x00" + b"\x00" * 100, "invoice.pdf")
    assert resp.status_code == 422
    elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 100
    assert upload(user_client, user.id, elf, "tool").status_code == 422
    assert db.session.scalar(select(func.count(Attachment.id))) == 0


def test_active_content_is_only_ever_downloaded(user_client, user, db):
    cases = {
        "page.html": b"<!doctype html><script>alert(1)</script>",
        "pic.svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
        "innocent.png": b"<html><body onload=alert(1)>",
        "x.js": b"#!/usr/bin/env node\nalert(1)",
    }
    for name, data in cases.items():
        upload(user_client, user.id, data, name)
    for att in db.session.scalars(select(Attachment)):
        resp = user_client.get(f"/attachments/{att.id}")
        assert resp.mimetype == "application/octet-stream", att.filename
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in resp.headers["Content-Security-Policy"]
    kinds = {a.filename: a.mime for a in db.session.scalars(select(Attachment))}
    assert kinds["innocent.png"] == "text/html"  # by content, not by name
    assert kinds["pic.svg"] == "image/svg+xml"


def test_file_names_are_made_safe(user_client, user, db):
    upload(user_client, user.id, b"data", "../../etc/<passwd>.txt")
    att = db.session.scalar(select(Attachment))
    assert att.filename == "passwd.txt"
    page = user_client.get(f"/attachments/panel?owner_type=user&owner_id={user.id}")
    assert "<passwd>" not in page.get_data(as_text=True)


def test_unknown_owner_type_is_404(user_client, user):
    assert upload(user_client, user.id, b"x", "x.txt", owner_type="nope").status_code == 404


def test_attachment_api(client, user, make_user, token_for, db):
    t = {"Authorization": f"Bearer {token_for(user)}"}
    resp = client.post("/api/v1/attachments", headers=t, content_type="multipart/form-data",
                       data={"owner_type": "user", "owner_id": str(user.id),
                             "file": (io.BytesIO(b"hello api"), "hello.txt")})
    assert resp.status_code == 201, resp.get_json()
    att_id = resp.get_json()["id"]
    listed = client.get(f"/api/v1/attachments?owner_type=user&owner_id={user.id}", headers=t)
    assert [a["filename"] for a in listed.get_json()] == ["hello.txt"]
    content = client.get(f"/api/v1/attachments/{att_id}/content", headers=t)
    assert content.data == b"hello api"
    other = make_user()
    t2 = {"Authorization": f"Bearer {token_for(other)}"}
    assert client.get(f"/api/v1/attachments/{att_id}", headers=t2).status_code == 404
    assert client.delete(f"/api/v1/attachments/{att_id}", headers=t2).status_code == 404
    assert client.delete(f"/api/v1/attachments/{att_id}", headers=t).status_code == 204
    missing = client.post("/api/v1/attachments", headers=t, content_type="multipart/form-data",
                          data={"owner_type": "user", "owner_id": "abc"})
    assert missing.status_code == 422 and "owner_id" in missing.get_json()["error"]["fields"]
