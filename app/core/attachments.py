"""Attachments on any record, stored content-addressed under UPLOAD_DIR.

Modules register an owner type with two checks, `can_see(user, owner_id)` and
`can_edit(user, owner_id)`; every path (page, API) asks them, and a record one
may not see answers 404.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import filetype
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from app.core import audit
from app.core.errors import NotFound, PermissionDenied, ValidationError
from app.core.jobs import job
from app.core.models import Attachment, User
from app.extensions import db

CHUNK = 1024 * 1024
# Executables and installers are refused outright.
FORBIDDEN = {
    "application/x-msdownload", "application/x-executable", "application/x-elf",
    "application/x-mach-binary", "application/x-sharedlib", "application/vnd.microsoft.portable-executable",
    "application/x-dosexec",
}
# Types a browser would render or run: always served as an opaque download.
ACTIVE = {"text/html", "image/svg+xml", "application/xml", "text/xml", "application/javascript",
          "application/xhtml+xml", "text/javascript"}


@dataclass(frozen=True)
class OwnerType:
    can_see: Callable[[User, int], bool]
    can_edit: Callable[[User, int], bool]


_owners: dict[str, OwnerType] = {}


def register_owner(name: str, can_see: Callable[[User, int], bool],
                   can_edit: Callable[[User, int], bool] | None = None) -> None:
    _owners[name] = OwnerType(can_see, can_edit or can_see)


def _owner(name: str) -> OwnerType:
    owner = _owners.get(name)
    if owner is None:
        raise NotFound(_("No such record."))
    return owner


def _blob_path(sha: str) -> Path:
    return Path(current_app.config["UPLOAD_DIR"]) / sha[:2] / sha


def sniff(head: bytes) -> str:
    """The type from the content's first bytes, never from the file name."""
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    if head.startswith(b"MZ"):
        return "application/x-msdownload"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
        if len(head) >= 4:  # a multi-byte character cut at the sniff boundary
            try:
                text = head[:-3].decode("utf-8")
            except UnicodeDecodeError:
                text = None
    if text is None:
        return "application/octet-stream"
    low = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in low[:2048]:
        return "image/svg+xml"
    if low.startswith(("<!doctype html", "<html", "<head", "<body", "<script", "<iframe")) or \
            "<script" in low[:2048] or "<html" in low[:2048]:
        return "text/html"
    if low.startswith("<?xml"):
        return "application/xml"
    if low.startswith("#!"):
        return "text/x-script"
    return "text/plain"


def safe_name(name: str | None) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    return base[:255] or "file"


def store(actor: User, owner_type: str, owner_id: int, upload: FileStorage | None) -> Attachment:
    owner = _owner(owner_type)
    if not owner.can_see(actor, owner_id):
        raise NotFound(_("No such record."))
    if not owner.can_edit(actor, owner_id):
        raise PermissionDenied(_("You may not add files here."))
    if upload is None or not upload.filename:
        raise ValidationError(_("Choose a file."), {"file": [_("Choose a file.")]})
    cap = current_app.config["MAX_CONTENT_LENGTH"]
    root = Path(current_app.config["UPLOAD_DIR"])
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp = tempfile.mkstemp(dir=root / "tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.stream.read(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise ValidationError(_("The file is larger than %(mb)d MB.",
                                            mb=cap // (1024 * 1024)))
                if len(head) < 8192:
                    head += chunk[: 8192 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ValidationError(_("The file is empty."), {"file": [_("The file is empty.")]})
        mime = sniff(head)
        if mime in FORBIDDEN:
            raise ValidationError(_("Programs cannot be attached."),
                                  {"file": [_("Programs cannot be attached.")]})
        sha = digest.hexdigest()
        final = _blob_path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    att = Attachment(owner_type=owner_type, owner_id=owner_id, filename=safe_name(upload.filename),
                     sha256=sha, size=size, mime=mime, uploaded_by_id=actor.id)
    db.session.add(att)
    db.session.flush()
    audit.record(actor, "attachment.add", owner_type, owner_id,
                 after={"attachment_id": att.id, "filename": att.filename, "size": size})
    return att


def list_for(actor: User, owner_type: str, owner_id: int) -> list[Attachment]:
    if not _owner(owner_type).can_see(actor, owner_id):
        raise NotFound(_("No such record."))
    return list(db.session.scalars(
        select(Attachment).options(selectinload(Attachment.uploaded_by))
        .where(Attachment.owner_type == owner_type,
                                 Attachment.owner_id == owner_id)
        .order_by(Attachment.created_at, Attachment.id)))


def get(actor: User, attachment_id: int) -> Attachment:
    att = db.session.get(Attachment, attachment_id)
    if att is None or att.owner_type not in _owners or \
            not _owners[att.owner_type].can_see(actor, att.owner_id):
        raise NotFound(_("No such file."))
    return att


def blob_path(att: Attachment) -> Path:
    return _blob_path(att.sha256)


def delete(actor: User, attachment_id: int) -> None:
    att = get(actor, attachment_id)
    if not _owners[att.owner_type].can_edit(actor, att.owner_id):
        raise PermissionDenied(_("You may not remove this file."))
    audit.record(actor, "attachment.delete", att.owner_type, att.owner_id,
                 before={"attachment_id": att.id, "filename": att.filename, "size": att.size})
    db.session.delete(att)
    # The bytes stay until the purge job finds no row using them (another upload of the
    # same content may be committing right now).


ORPHAN_GRACE = timedelta(hours=1)


@job("purge_files")
def purge_orphan_files(now: datetime) -> str:
    """Delete stored files that no attachment uses and that are older than the grace period."""
    root = Path(current_app.config["UPLOAD_DIR"])
    if not root.exists():
        return "nothing stored"
    cutoff = (now - ORPHAN_GRACE).timestamp()
    candidates = {p.name: p for p in root.glob("??/*") if p.is_file()
                  and p.stat().st_mtime < cutoff}
    used = set()
    names = list(candidates)
    for i in range(0, len(names), 500):
        used |= set(db.session.scalars(select(Attachment.sha256).where(
            Attachment.sha256.in_(names[i:i + 500]))))
    removed = 0
    for name, path in candidates.items():
        if name not in used:
            path.unlink(missing_ok=True)
            removed += 1
    stale_tmp = [p for p in (root / "tmp").glob("*") if p.stat().st_mtime < cutoff]
    for p in stale_tmp:
        p.unlink(missing_ok=True)
    return f"removed {removed} files"


def download_headers(att: Attachment) -> tuple[str, dict]:
    """The type to send and the headers that keep a browser from rendering the file."""
    mime = "application/octet-stream" if att.mime in ACTIVE or att.mime.startswith("text/x-") \
        else att.mime
    return mime, {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }


def _is_admin(user: User) -> bool:
    from app.core.services import is_admin

    return is_admin(user)


# A user's own files (their account page); administrators may see them too.
register_owner(
    "user",
    can_see=lambda actor, owner_id: actor.id == owner_id or _is_admin(actor),
    can_edit=lambda actor, owner_id: actor.id == owner_id,
)
