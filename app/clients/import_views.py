"""Pages that take companies and contacts in and out: upload, column mapping, preview,
apply with a per-row report, progress of long reads, and the exports.

Every step after the upload carries only the file's sha256: its bytes are kept under
UPLOAD_DIR/client-imports/ (written whole, then renamed into place) and removed a day
later. The preview keeps the rows it read next to them, so applying does not read a
large workbook a second time; applying checks every row again against what is stored
then. A long read or check reports its progress to a small file that the page polls.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from flask import abort, current_app, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from app.clients import bp, exports, imports
from app.core import spreadsheets
from app.core.clock import utcnow
from app.core.errors import ValidationError
from app.core.realtime import on_commit

SHA256 = re.compile(r"[0-9a-f]{64}")
TOKEN = re.compile(r"[0-9a-f]{32}")
KEEP = 24 * 3600  # seconds uploads, cached rows and progress are kept
KEEP_REPORTS = 7 * 24 * 3600
PREVIEW_ROWS = 500
REPORT_PAGE = 100
KIND_NAMES = {"companies": _l("Companies"), "contacts": _l("Contacts")}
PHASES = {"reading": _l("Reading the file"), "checking": _l("Checking the rows"),
          "saving": _l("Saving")}


# --- where things are kept -------------------------------------------------------------------

def _folder(name: str) -> Path:
    path = Path(current_app.config["UPLOAD_DIR"]) / "client-imports" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, data: bytes) -> None:
    """Written whole, then renamed into place: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sweep() -> None:
    """Remove what is older than it is kept for."""
    now = time.time()
    for name, keep in (("uploads", KEEP), ("rows", KEEP), ("progress", KEEP),
                       ("reports", KEEP_REPORTS)):
        for old in _folder(name).glob("*"):
            try:
                if old.stat().st_mtime < now - keep:
                    old.unlink(missing_ok=True)
            except OSError:
                pass


def _refuse(message: str) -> ValidationError:
    return spreadsheets.refuse(message)


def _upload_path(sha: str) -> Path:
    if not SHA256.fullmatch(sha or ""):
        raise _refuse(_("The upload is not known; upload the file again."))
    return _folder("uploads") / f"{sha}.bin"


def _stored(sha: str) -> bytes:
    try:
        return _upload_path(sha).read_bytes()
    except OSError:
        raise _refuse(_("The upload is no longer kept; upload the file again.")) from None


def _rows_path(sha: str, kind: str, columns: list[int]) -> Path:
    key = hashlib.sha256(f"{sha}:{kind}:{columns}".encode()).hexdigest()
    return _folder("rows") / f"{key}.json"


def _kind(value: str | None) -> str:
    if value not in imports.KINDS:
        raise _refuse(_("Choose companies or contacts."))
    return value


def write_progress(token: str, owner_id: int, phase: str, done: int, total: int | None) -> None:
    if TOKEN.fullmatch(token or ""):
        _write(_folder("progress") / f"{token}.json", json.dumps(
            {"owner": owner_id, "phase": phase, "done": done, "total": total}).encode())


def _progress(token: str):
    last = [0.0]

    def report(phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.3 or done == total:
            last[0] = now
            write_progress(token, current_user.id, phase, done, total)

    return report if TOKEN.fullmatch(token or "") else None


def _max_mb() -> int:
    return max(1, spreadsheets.upload_cap(imports.MAX_FILE_MB) // (1024 * 1024))


# --- upload and mapping ------------------------------------------------------------------------

def _upload_page(errors: dict | None = None, kind: str = "companies", status: int = 200):
    return render_template("clients/import_upload.html", errors=errors or {}, kind=kind,
                           kind_names=KIND_NAMES, max_mb=_max_mb(), max_rows=imports.MAX_ROWS,
                           fields=imports.FIELDS), status


def _mapping_page(kind: str, sha: str, filename: str, head: imports.Sheet,
                  mapping: dict[str, list[int]], errors: dict | None = None, status: int = 200):
    chosen = {c: key for key, cols in mapping.items() for c in cols}
    samples = [[row[1][i] if i < len(row[1]) else "" for row in head.rows]
               for i in range(head.width)]
    return render_template("clients/import_mapping.html", kind=kind, sha256=sha,
                           filename=filename, headers=head.headers, samples=samples,
                           chosen=chosen, fields=imports.FIELDS[kind], kind_names=KIND_NAMES,
                           fmt=head.fmt, encoding=head.encoding, errors=errors or {},
                           progress=secrets.token_hex(16), phases=PHASES), status


def _file_errors(exc: ValidationError) -> dict:
    return {"file": exc.fields.get("file") or [exc.message]}


@bp.route("/import", methods=["GET", "POST"])
def import_start():
    if request.method == "GET":
        return _upload_page(kind=request.args.get("kind", "companies"))
    kind = request.form.get("kind", "companies")
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        message = _("The file is larger than %(mb)d MB.", mb=_max_mb())
        return _upload_page({"file": [message]}, kind, 413)
    try:
        kind = _kind(kind)
        content = spreadsheets.read_upload(upload, imports.MAX_FILE_MB)
        head = imports.read_head(content)
    except ValidationError as exc:
        return _upload_page(_file_errors(exc), kind if kind in imports.KINDS else "companies", 422)
    sha = hashlib.sha256(content).hexdigest()
    _sweep()
    _write(_upload_path(sha), content)
    filename = (upload.filename or "")[:255]
    return _mapping_page(kind, sha, filename, head, imports.guess_mapping(kind, head.headers))


@bp.get("/import/<sha>/mapping")
def import_mapping(sha: str):
    """The mapping again, from the preview's "change the mapping"."""
    try:
        kind = _kind(request.args.get("kind"))
        head = imports.read_head(_stored(sha))
    except ValidationError as exc:
        return _upload_page(_file_errors(exc), status=422)
    mapping = _mapping_from(request.args)
    return _mapping_page(kind, sha, request.args.get("filename", "")[:255], head,
                         mapping or imports.guess_mapping(kind, head.headers))


def _mapping_from(form) -> dict[str, list[int]]:
    """col-<n> = field key, for each column of the file."""
    mapping: dict[str, list[int]] = {}
    for name, value in form.items():
        found = re.fullmatch(r"col-(\d{1,3})", name)
        if found and value and int(found.group(1)) < imports.MAX_COLUMNS:
            mapping.setdefault(value, []).append(int(found.group(1)))
    return {k: sorted(v) for k, v in mapping.items()}


# --- preview and apply ---------------------------------------------------------------------

def _read(sha: str, kind: str, mapping: dict[str, list[int]], token: str,
          cached: bool) -> imports.Sheet:
    """The mapped columns of every row: read from the file (and kept), or, when applying,
    as the preview kept them."""
    columns = imports.mapped_columns(mapping)
    path = _rows_path(sha, kind, columns)
    if cached:
        try:
            data = json.loads(path.read_bytes())
            if data["sha256"] == sha and data["columns"] == columns:
                return imports.Sheet(data["fmt"], data["headers"],
                                     [(n, cells) for n, cells in data["rows"]], data["encoding"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    sheet = imports.read_sheet(_stored(sha), columns, progress=_progress(token))
    _write(path, json.dumps({"sha256": sha, "columns": columns, "fmt": sheet.fmt,
                             "headers": sheet.headers, "encoding": sheet.encoding,
                             "rows": sheet.rows}, ensure_ascii=False).encode())
    return sheet


def _preview_rows(plan: imports.Plan) -> list[imports.RowReport]:
    """Every row with an error first (up to the page's size), then the others in order."""
    errors = plan.error_rows[:PREVIEW_ROWS]
    others = [r for r in plan.rows if not r.errors][:max(0, PREVIEW_ROWS - len(errors))]
    return [*errors, *others]


def _preview_page(plan: imports.Plan, errors: dict | None = None, status: int = 200):
    return render_template("clients/import_preview.html", plan=plan, rows=_preview_rows(plan),
                           counts=plan.counts(), errors=errors or {}, kind_names=KIND_NAMES,
                           labels=imports.STATUS_LABELS, found_by=imports.FOUND_BY,
                           describe=_describer(plan.kind),
                           mapping_args=_mapping_args(plan), progress=secrets.token_hex(16),
                           phases=PHASES), status


def _describer(kind: str):
    labels = imports.change_labels(kind)
    return lambda changes: ", ".join(dict.fromkeys(str(labels.get(c, c)) for c in changes))


def _mapping_args(plan: imports.Plan) -> dict[str, str]:
    """The preview's mapping as the mapping page's query string."""
    args = {"kind": plan.kind, "filename": plan.filename}
    for key, cols in plan.mapping.items():
        args.update({f"col-{c}": key for c in cols})
    return args


def _planned(cached: bool):
    sha, filename = request.form.get("sha256", ""), request.form.get("filename", "")[:255]
    kind = _kind(request.form.get("kind"))
    mapping = _mapping_from(request.form)
    token = request.form.get("progress", "")
    sheet = _read(sha, kind, mapping, token, cached)
    return imports.plan(current_user, kind, sheet, mapping, filename=filename, sha256=sha,
                        progress=_progress(token), columns_kept=True)


def _refused(exc: ValidationError):
    """A mapping the file cannot take goes back to the mapping page; anything else about
    the file to the upload page."""
    sha, kind = request.form.get("sha256", ""), request.form.get("kind")
    if kind in imports.KINDS and SHA256.fullmatch(sha) and _upload_path(sha).exists():
        try:
            head = imports.read_head(_stored(sha))
        except ValidationError:
            return _upload_page(_file_errors(exc), status=422)
        return _mapping_page(kind, sha, request.form.get("filename", "")[:255], head,
                             _mapping_from(request.form), _file_errors(exc), 422)
    return _upload_page(_file_errors(exc), status=422)


@bp.post("/import/preview")
def import_preview():
    try:
        planned = _planned(cached=False)
    except ValidationError as exc:
        return _refused(exc)
    plan = planned[0]
    if not plan.ok:
        return _preview_page(plan, {"file": [_("%(n)d rows have errors (see the table); correct "
                                               "the file and upload it again. Nothing was "
                                               "imported.", n=len(plan.error_rows))]}, 422)
    return _preview_page(plan)


@bp.post("/import/apply")
def import_apply():
    try:
        planned = _planned(cached=True)
    except ValidationError as exc:
        return _refused(exc)
    plan = planned[0]
    if not plan.ok:  # what is stored changed since the preview
        return _preview_page(plan, {"file": [_("%(n)d rows have errors now (see the table); "
                                               "nothing was imported.", n=len(plan.error_rows))]},
                             422)
    progress = _progress(request.form.get("progress", ""))
    if progress is not None:
        progress("saving", 0, None)
    counts = imports.apply(current_user, plan.kind, planned)
    report_id = secrets.token_hex(16)
    data = json.dumps({"owner": current_user.id, "kind": plan.kind, "filename": plan.filename,
                       "at": utcnow().isoformat(), "counts": counts,
                       "rows": [r.as_dict() for r in plan.rows]}, ensure_ascii=False).encode()
    path = _folder("reports") / f"{report_id}.json"
    on_commit(lambda: _write(path, data))
    return redirect(url_for("clients.import_report", report_id=report_id))


# --- the report ----------------------------------------------------------------------------

def _load_report(report_id: str) -> dict:
    if not TOKEN.fullmatch(report_id or ""):
        abort(404)
    try:
        data = json.loads((_folder("reports") / f"{report_id}.json").read_bytes())
    except (OSError, ValueError):
        abort(404)
    if data.get("owner") != current_user.id:
        abort(404)
    return data


@bp.get("/import/report/<report_id>")
def import_report(report_id: str):
    data = _load_report(report_id)
    status = request.args.get("status", "")
    rows = [imports.RowReport.from_dict(r) for r in data["rows"]
            if not status or r["status"] == status]
    pages = max(1, -(-len(rows) // REPORT_PAGE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    by_status = dict.fromkeys(imports.STATUSES, 0)
    for r in data["rows"]:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    return render_template("clients/import_report.html", report_id=report_id, data=data,
                           rows=rows[(page - 1) * REPORT_PAGE:page * REPORT_PAGE], page=page,
                           pages=pages, status=status, by_status=by_status,
                           kind_names=KIND_NAMES, labels=imports.STATUS_LABELS,
                           found_by=imports.FOUND_BY,
                           describe=_describer(data["kind"]))


@bp.get("/import/report/<report_id>.csv")
def import_report_csv(report_id: str):
    data = _load_report(report_id)
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([_("Row"), _("Name"), _("Result"), _("Record"), _("Found by"), _("Changes"),
                     _("Errors and notes")])
    for r in data["rows"]:
        writer.writerow([r["row"], exports._guard(r["title"] or ""), r["status"],
                         r["target_id"] or "", r["found_by"] or "", ", ".join(r["changes"]),
                         exports._guard(" ".join([*r["errors"], r["note"] or ""]).strip())])
    return current_app.response_class(
        ("\ufeff" + out.getvalue()).encode(), mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=import-{report_id[:8]}.csv"})


@bp.get("/import/progress/<token>")
def import_progress(token: str):
    if not TOKEN.fullmatch(token or ""):
        abort(404)
    try:
        data = json.loads((_folder("progress") / f"{token}.json").read_bytes())
    except (OSError, ValueError):
        abort(404)
    if data.get("owner") != current_user.id:
        abort(404)
    phase = data.get("phase", "")
    response = jsonify({"phase": phase, "label": str(PHASES.get(phase, "")),
                        "done": data.get("done", 0), "total": data.get("total")})
    response.headers["Cache-Control"] = "no-store"
    return response


# --- export ---------------------------------------------------------------------------------

@bp.get("/export")
def export():
    return render_template("clients/export.html", kind_names=KIND_NAMES)


@bp.get("/export/<kind>.<fmt>")
def export_file(kind: str, fmt: str):
    if kind not in imports.KINDS or fmt not in exports.FORMATS:
        abort(404)
    content = exports.export(current_user, kind, fmt)
    stamp = utcnow().strftime("%Y-%m-%d")
    return send_file(io.BytesIO(content), mimetype=exports.FORMATS[fmt], as_attachment=True,
                     download_name=f"{kind}-{stamp}.{fmt}", max_age=0)
