"""Pages that take the chart in and out: XLSX export and import (with a preview), SVG/PNG.

The import is two requests: the upload is checked and planned (nothing changes) and its
bytes are kept under UPLOAD_DIR/imports/<sha256>.xlsx; the preview's confirm button
carries only that sha256, and confirming plans the stored file again and applies it.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from app.core.errors import ValidationError
from app.core.realtime import on_commit
from app.orgchart import bp, drawing, xlsx

SHA256 = re.compile(r"[0-9a-f]{64}")
KEEP_UPLOADS = 24 * 3600  # seconds an unconfirmed upload is kept
PREVIEW_ROWS = 1000


def _imports_dir() -> Path:
    return Path(current_app.config["UPLOAD_DIR"]) / "imports"


def _stored(sha: str) -> Path:
    if not SHA256.fullmatch(sha or ""):
        raise ValidationError(_("The upload is not known; upload the file again."),
                              {"file": [_("The upload is not known; upload the file again.")]})
    return _imports_dir() / f"{sha}.xlsx"


def _keep(plan: xlsx.ImportPlan) -> None:
    """Store the upload's bytes by their hash (written whole, then renamed into place);
    uploads never confirmed are removed a day later."""
    folder = _imports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_UPLOADS
    for old in folder.glob("*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        except OSError:
            pass
    target = _stored(plan.sha256)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(plan.content)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _preview_rows(plan: xlsx.ImportPlan) -> list[xlsx.RowReport]:
    """Every row with an error, and the others up to PREVIEW_ROWS, in sheet order."""
    if len(plan.rows) <= PREVIEW_ROWS:
        return plan.rows
    others = [r for r in plan.rows if not r.errors][:max(0, PREVIEW_ROWS - len(plan.error_rows))]
    return sorted([*plan.error_rows, *others], key=lambda r: r.row)


def _page(plan: xlsx.ImportPlan | None = None, errors: dict | None = None, status: int = 200):
    return render_template("orgchart/import.html", plan=plan, errors=errors or {},
                           rows=_preview_rows(plan) if plan else [], max_mb=_max_mb()), status


def _max_mb() -> int:
    cap = current_app.config.get("MAX_CONTENT_LENGTH")
    return min(xlsx.MAX_FILE_MB, max(1, cap // (1024 * 1024))) if cap else xlsx.MAX_FILE_MB


def _file_errors(exc: ValidationError) -> dict:
    return {"file": exc.fields.get("file") or [exc.message]}


# --- export ---------------------------------------------------------------------------

@bp.route("/export.xlsx")
def export_xlsx():
    return send_file(io.BytesIO(xlsx.export_xlsx()), mimetype=xlsx.XLSX_MIME, as_attachment=True,
                     download_name="organisation-chart.xlsx", max_age=0)


@bp.route("/export.<any(svg, png):fmt>")
def export_image(fmt: str):
    data = drawing.render(fmt, request.args.get("unit", type=int))
    response = current_app.response_class(data, mimetype=drawing.FORMATS[fmt])
    response.headers["Cache-Control"] = "private, no-cache"
    # a drawing opened on its own: its styles apply, nothing in it can run
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f"attachment; filename=organisation-chart.{fmt}"
    return response


# --- import ---------------------------------------------------------------------------

@bp.route("/import", methods=["GET", "POST"])
def import_form():
    xlsx.require_editor(current_user)
    if request.method == "GET":
        return _page()
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        message = _("The file is larger than %(mb)d MB.", mb=_max_mb())
        return _page(errors={"file": [message]}, status=413)
    try:
        plan = xlsx.plan_import(current_user, upload)
    except ValidationError as exc:
        return _page(errors=_file_errors(exc), status=422)
    if not plan.ok:
        message = ngettext("%(num)d row has an error (see the table); correct it and upload the "
                           "file again. Nothing was imported.",
                           "%(num)d rows have errors (see the table); correct them and upload the "
                           "file again. Nothing was imported.", len(plan.error_rows))
        return _page(plan, {"file": [message]}, 422)
    if plan.changes:
        _keep(plan)
    return _page(plan)


@bp.route("/import/confirm", methods=["POST"])
def import_confirm():
    xlsx.require_editor(current_user)
    sha = request.form.get("sha256", "")
    try:
        path = _stored(sha)
        try:
            content = path.read_bytes()
        except OSError:
            message = _("The upload is no longer kept; upload the file again.")
            raise ValidationError(message, {"file": [message]}) from None
        name = request.form.get("filename", "")[:255] or path.name
        plan = xlsx.plan_import(current_user, FileStorage(io.BytesIO(content), filename=name))
        if plan.sha256 != sha:  # the stored bytes are not what was previewed
            raise ValidationError(_("The upload is not known; upload the file again."))
    except ValidationError as exc:
        return _page(errors=_file_errors(exc), status=422)
    if not plan.ok:  # the chart or the accounts changed since the preview
        message = _("%(n)d rows have errors now (see the table); nothing was imported.",
                    n=len(plan.error_rows))
        return _page(plan, {"file": [message]}, 422)
    counts = xlsx.apply_import(current_user, plan)
    on_commit(lambda: path.unlink(missing_ok=True))
    if any(counts.values()):
        flash(_("Imported: %(units)d new units, %(posts)d new posts and %(holders)d new holders.",
                **counts), "success")
    else:
        flash(_("Nothing to import: the chart already has everything in the file."), "info")
    return redirect(url_for("orgchart.board"))
