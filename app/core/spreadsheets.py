"""Safety checks shared by every spreadsheet upload (the chart, clients, statistics).

An upload is read with a size cap before it is all in memory; a workbook is a zip whose
entries (count, unpacked size, compression ratio) are checked before any XML of it is
parsed, and openpyxl parses that XML through defusedxml only.
"""

from __future__ import annotations

import io
import zipfile

import openpyxl
from flask import current_app
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from app.core.errors import ValidationError

# Workbooks are XML: without defusedxml openpyxl would parse entity bombs and external
# entities. Refuse to run at all rather than import unsafely (explicit, not an assert,
# so that `python -O` keeps the check).
if openpyxl.DEFUSEDXML is not True:  # pragma: no cover - the dependency is pinned
    raise RuntimeError("defusedxml must be installed: openpyxl would parse workbooks unsafely")

CHUNK = 1024 * 1024
OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")  # .xls, and encrypted .xlsx
ZIP_SIGNATURE = b"PK\x03\x04"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def refuse(message: str) -> ValidationError:
    """An error about the uploaded file as a whole (the form's "file" field)."""
    return ValidationError(message, {"file": [message]})


def upload_cap(max_mb: int) -> int:
    """Bytes an upload may have: the module's cap, or the app's request cap if lower."""
    hard = max_mb * 1024 * 1024
    return min(current_app.config.get("MAX_CONTENT_LENGTH") or hard, hard)


def read_upload(upload: FileStorage | None, max_mb: int) -> bytes:
    """The upload's bytes, refusing more than the cap before reading it all."""
    if upload is None or not upload.filename:
        raise refuse(_("Choose a file."))
    hard = max_mb * 1024 * 1024
    cap = upload_cap(max_mb)
    buf, size = io.BytesIO(), 0
    while chunk := upload.stream.read(CHUNK):
        size += len(chunk)
        if size > cap:
            if size > hard:
                raise refuse(_("The file is larger than %(mb)d MB; split it into smaller files.",
                               mb=max_mb))
            raise refuse(_("The file is larger than %(mb)d MB.", mb=max(1, cap // (1024 * 1024))))
        buf.write(chunk)
    if size == 0:
        raise refuse(_("The file is empty."))
    return buf.getvalue()


def check_xlsx_zip(content: bytes, *, max_entries: int, max_uncompressed: int,
                   max_ratio: int) -> None:
    """A workbook is a zip: look at its entries before any XML of it is parsed.

    Refuses an old .xls (or a password-protected workbook), anything that is not a zip
    with xl/workbook.xml, too many entries, more than `max_uncompressed` bytes unpacked,
    and entries compressed more than `max_ratio` times (a zip bomb)."""
    not_xlsx = _("This file is not an Excel workbook (.xlsx). Save it from Excel or "
                 "LibreOffice as “Excel 2007-365 (.xlsx)” and upload it again.")
    stream = io.BytesIO(content)
    if content.startswith(OLE_SIGNATURE):
        raise refuse(_("This is an old Excel file (.xls) or a workbook protected by a password. "
                       "Save it as .xlsx without a password and upload it again."))
    if not zipfile.is_zipfile(stream):
        raise refuse(not_xlsx)
    try:
        with zipfile.ZipFile(stream) as zf:
            entries = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise refuse(not_xlsx) from exc
    if len(entries) > max_entries:
        raise refuse(_("The workbook has too many parts (more than %(n)d); it is refused.",
                       n=max_entries))
    if "xl/workbook.xml" not in {e.filename for e in entries}:
        raise refuse(not_xlsx)
    # Declared sizes bound what zipfile will ever inflate (it stops at file_size).
    total = sum(e.file_size for e in entries)
    packed = sum(e.compress_size for e in entries)
    if total > max_uncompressed:
        raise refuse(_("The workbook unpacks to more than %(mb)d MB; it is refused.",
                       mb=max_uncompressed // (1024 * 1024)))
    big = [e for e in entries if e.file_size > CHUNK]
    if total > packed * max_ratio or any(e.file_size > max(e.compress_size, 1) * max_ratio
                                         for e in big):
        raise refuse(_("The workbook is compressed suspiciously well (over %(n)d times); "
                       "it is refused.", n=max_ratio))
