"""The chart in and out of Excel: export, the checked and all-or-nothing import, its pages."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

import app.orgchart.io_views  # noqa: F401 - the routes, as registering the module does
from app.core.errors import PermissionDenied, ValidationError
from app.core.models import AuditEvent
from app.orgchart import chart as charts
from app.orgchart import services, xlsx
from app.orgchart.models import Assignment, Post, Unit

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
HEADER = ["unit path", "post", "head", "holder e-mail", "holder name", "acting"]




def post_titled(title: str) -> Post:
    chart = charts.load()
    return next(p for p in chart.posts.values() if p.title == title)


def unit_named(name: str) -> Unit:
    return next(u for u in charts.load().units.values() if u.name == name)


def rows_count(db) -> tuple[int, int, int]:
    return tuple(db.session.scalar(select(func.count(m.id))) for m in (Unit, Post, Assignment))


def workbook(rows: list[list], header: list | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Chart"
    ws.append(HEADER if header is None else header)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def upload(data: bytes, name: str = "chart.xlsx") -> FileStorage:
    return FileStorage(io.BytesIO(data), filename=name)


def read(data: bytes) -> list[tuple]:
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return [tuple("" if v is None else v for v in row) for row in wb["Chart"].iter_rows(values_only=True)]
    finally:
        wb.close()


def refused(admin, data: bytes, name: str = "chart.xlsx") -> str:
    with pytest.raises(ValidationError) as info:
        xlsx.plan_import(admin, upload(data, name))
    assert info.value.fields["file"] == [info.value.message]
    return info.value.message


# --- export -----------------------------------------------------------------------------

def test_export_rows_in_board_order_with_every_holder(admin, acme, make_user, db):
    seller, helper = make_user("Sasha Seller"), make_user("Hana Helper")
    manager = post_titled("Sales manager")
    services.assign(admin, {"post_id": manager.id, "user_id": seller.id})
    services.assign(admin, {"post_id": manager.id, "user_id": helper.id, "acting": True})
    db.session.commit()

    rows = read(xlsx.export_xlsx())
    assert rows[0] == tuple(HEADER)
    assert rows[1] == ("Acme", "Executive director", "yes", "", "", "")
    assert rows[2][0] == "Acme / Executive" and rows[2][2] == "yes"
    assert rows[3][0] == "Acme / Executive / Owner's office"
    sales = [r for r in rows if r[1] == "Sales manager"]
    assert sales == [
        ("Acme / Dissemination / Sales", "Sales manager", "", seller.email, "Sasha Seller", ""),
        ("Acme / Dissemination / Sales", "Sales manager", "", helper.email, "Hana Helper", "yes"),
    ]
    live_posts = db.session.scalar(select(func.count(Post.id)).where(Post.archived_at.is_(None)))
    assert len(rows) == 1 + live_posts + 1  # one extra row for the second holder
    divisions = [r[0] for r in rows if r[0].count(" / ") == 1]
    assert list(dict.fromkeys(divisions)) == [
        "Acme / Executive", "Acme / Communications", "Acme / Dissemination", "Acme / Finance",
        "Acme / Production", "Acme / Qualifications", "Acme / Public relations"]


def test_export_writes_names_as_text_never_formulas(admin, db):
    company = services.create_unit(admin, {"kind": "company", "name": "=HYPERLINK(\"http://x\")"})
    services.create_post(admin, {"unit_id": company.id, "title": "=1+2", "is_head": True})
    db.session.commit()
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.export_xlsx()))
    cell = wb["Chart"]["B2"]
    assert (cell.value, cell.data_type) == ("=1+2", "s")
    assert wb["Chart"]["A2"].data_type == "s"


def test_export_then_import_changes_nothing(admin, acme, make_user, db):
    seller = make_user("Sasha Seller")
    services.assign(admin, {"post_id": post_titled("Sales manager").id, "user_id": seller.id,
                            "acting": True})
    db.session.commit()
    before = rows_count(db)
    audits = db.session.scalar(select(func.count(AuditEvent.id)))

    plan = xlsx.plan_import(admin, upload(xlsx.export_xlsx()))
    assert plan.ok and not plan.changes
    assert {r.status for r in plan.rows} == {"unchanged"}
    assert xlsx.apply_import(admin, plan) == {"units": 0, "posts": 0, "holders": 0}
    db.session.commit()
    assert rows_count(db) == before
    assert db.session.scalar(select(func.count(AuditEvent.id))) == audits


# --- import -----------------------------------------------------------------------------

def test_import_creates_units_posts_and_holders(admin, acme, make_user, db):
    ann, bob = make_user("Ann North"), make_user("Bob Night")
    data = workbook([
        ["Acme / Dissemination / Sales", "Sales manager", "", ann.email.upper(), "", ""],
        ["Acme / Dissemination / Key accounts", "Head of key accounts", "yes", ann.email, "", "yes"],
        ["Acme / Dissemination / Key accounts / North", "Account manager", "", bob.email, "", ""],
        ["Acme / Dissemination / Key accounts / North", "Account manager", "", "", "", ""],
        ["Acme / Dissemination / Key accounts / North", "Analyst", "", "", "", ""],
        ["Globex", "Director", "yes", bob.email, "", ""],
        ["Acme / Executive", "Head of the Executive division", "yes", "", "", ""],
    ])
    before = rows_count(db)
    audits = db.session.scalar(select(func.max(AuditEvent.id)))
    plan = xlsx.plan_import(admin, upload(data))
    assert plan.ok, [r.errors for r in plan.rows]
    assert [r.status for r in plan.rows] == [
        "new holder", "new unit(s)", "new unit(s)", "unchanged", "new post", "new unit(s)",
        "unchanged"]
    assert [r.row for r in plan.rows] == [2, 3, 4, 5, 6, 7, 8]
    assert plan.counts == {"units": 3, "posts": 4, "holders": 4}
    assert rows_count(db) == before  # the plan changed nothing

    assert xlsx.apply_import(admin, plan) == {"units": 3, "posts": 4, "holders": 4}
    db.session.commit()
    chart = charts.load()
    key, north, globex = unit_named("Key accounts"), unit_named("North"), unit_named("Globex")
    assert (key.kind, north.kind, globex.kind) == ("department", "section", "company")
    assert chart.units[key.parent_id].name == "Dissemination" and north.parent_id == key.id
    assert globex.parent_id is None and globex in chart.roots()
    head = chart.head[key.id]
    assert head.title == "Head of key accounts"
    assert [(a.user_id, a.acting) for a in chart.own[head.id]] == [(ann.id, True)]
    assert [p.title for p in chart.unit_posts[north.id]] == ["Account manager", "Analyst"]
    assert chart.holding(post_titled("Account manager")).users == (bob,)
    assert chart.holding(post_titled("Analyst")).from_post == head  # vacant: held from above
    assert ann in chart.holding(post_titled("Sales manager")).users
    assert chart.head[globex.id].title == "Director"
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.id > audits)).all()
    assert sorted(set(actions)) == ["org.assign", "org.import", "org.post.create", "org.unit.create"]
    assert (actions.count("org.unit.create"), actions.count("org.post.create"),
            actions.count("org.assign"), actions.count("org.import")) == (3, 4, 4, 1)

    # the same file again: every row unchanged, nothing created
    counts = rows_count(db)
    again = xlsx.plan_import(admin, upload(data))
    assert again.ok and {r.status for r in again.rows} == {"unchanged"}
    assert xlsx.apply_import(admin, again) == {"units": 0, "posts": 0, "holders": 0}
    assert rows_count(db) == counts


def test_russian_headers_and_case_insensitive_matching(admin, acme, make_user, db):
    ann = make_user("Ann North")
    data = workbook([["acme / DISSEMINATION / sales", "Sales Manager", "нет", ann.email, "", "да"]],
                    header=["Путь подразделения", "ПОСТ", "Руководитель", "E-mail держателя",
                            "Имя держателя", "Исполняющий"])
    plan = xlsx.plan_import(admin, upload(data))
    assert plan.ok and [r.status for r in plan.rows] == ["new holder"]
    xlsx.apply_import(admin, plan)
    a = charts.load().own[post_titled("Sales manager").id]
    assert [(x.user_id, x.acting) for x in a] == [(ann.id, True)]


def test_missing_column_is_named(admin, acme, db):
    before = rows_count(db)
    message = refused(admin, workbook([["Acme", "Boss", "x@example.test"]],
                                      header=["unit path", "post", "e-mail"]))
    assert "holder e-mail" in message and "e-mail держателя" in message
    assert "unit path" in refused(admin, workbook([["Boss", ""]], header=["post", "holder e-mail"]))
    assert rows_count(db) == before


def test_unknown_and_deactivated_holders_are_row_errors(admin, acme, make_user, db):
    gone = make_user("Gone Person", active=False)
    ok = make_user("Fine Person")
    before = rows_count(db)
    plan = xlsx.plan_import(admin, upload(workbook([
        ["Acme / Finance / Income", "Invoicing officer", "", ok.email, "", ""],
        ["Acme / Finance / Income", "Invoicing officer", "", "nobody@example.test", "", ""],
        ["Acme / Finance / Income", "Invoicing officer", "", gone.email, "", ""],
    ])))
    assert not plan.ok
    assert [r.status for r in plan.rows] == ["new holder", "error", "error"]
    assert "no account with this e-mail" in plan.rows[1].error
    assert "deactivated" in plan.rows[2].error
    with pytest.raises(ValidationError):
        xlsx.apply_import(admin, plan)
    assert rows_count(db) == before


def test_bad_paths_titles_and_flags_are_row_errors(admin, acme, db):
    before = rows_count(db)
    plan = xlsx.plan_import(admin, upload(workbook([
        ["Acme / Sales / Acme", "Clerk", "", "", "", ""],
        ["Acme / sales / Key / SALES", "Clerk", "", "", "", ""],
        ["Acme /  / Sales", "Clerk", "", "", "", ""],
        ["", "Clerk", "", "", "", ""],
        ["Acme / Sales", "", "", "", "", ""],
        ["Acme / Sales", "Clerk", "maybe", "", "", ""],
        ["Acme / R/D", "Clerk", "", "", "", ""],
    ])))
    assert [r.status for r in plan.rows] == ["error"] * 6 + ["new unit(s)"]
    assert all("cycle" in r.error for r in plan.rows[:2])
    assert "no name" in plan.rows[2].error
    assert "unit path is empty" in plan.rows[3].error
    assert "post title is empty" in plan.rows[4].error
    assert "“yes”" in plan.rows[5].error
    assert [u.name for u in plan.units] == ["R/D"]  # a slash without spaces is part of a name
    assert not plan.ok
    with pytest.raises(ValidationError):
        xlsx.apply_import(admin, plan)
    assert rows_count(db) == before


def test_two_heads_of_one_unit_are_refused(admin, acme, db):
    archive = services.create_unit(admin, {"parent_id": acme.id, "kind": "division", "name": "Archive"})
    services.create_post(admin, {"unit_id": archive.id, "title": "Keeper"})
    db.session.commit()
    before = rows_count(db)
    plan = xlsx.plan_import(admin, upload(workbook([
        ["Acme / Labs", "Chief scientist", "yes", "", "", ""],
        ["Acme / Labs", "Chief scientist", "yes", "", "", ""],  # the same post twice is fine
        ["Acme / Labs", "Lab head", "yes", "", "", ""],
        ["Acme / Finance", "Chief accountant", "yes", "", "", ""],  # Finance has a head
        ["Acme / Finance / Income", "Invoicing officer", "yes", "", "", ""],
        ["Acme / Archive", "Keeper", "yes", "", "", ""],  # exists, is not the head
    ])))
    assert [r.status for r in plan.rows] == ["new unit(s)", "unchanged"] + ["error"] * 4
    assert "Row 2" in plan.rows[2].error and "Chief scientist" in plan.rows[2].error
    assert "already has a head post: Head of the Finance division" in plan.rows[3].error
    assert "already has a head post: Head of Income" in plan.rows[4].error
    assert "not the head" in plan.rows[5].error
    with pytest.raises(ValidationError):
        xlsx.apply_import(admin, plan)
    assert rows_count(db) == before


def test_only_chart_editors_may_import(user, acme, db):
    with pytest.raises(PermissionDenied):
        xlsx.plan_import(user, upload(xlsx.export_xlsx()))


# --- files that are not what they claim ------------------------------------------------------

def test_not_a_spreadsheet_is_refused(admin, acme, db):
    before = rows_count(db)
    assert "not an Excel workbook" in refused(admin, PNG, "photo.xlsx")
    assert "not an Excel workbook" in refused(admin, b"unit path;post\nAcme;Boss\n", "chart.xlsx")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("content.xml", "<office/>")  # an OpenDocument-like zip
    assert "not an Excel workbook" in refused(admin, other.getvalue())
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("xl/workbook.xml", "<not really")
    assert "could not be read" in refused(admin, broken.getvalue())
    assert "empty" in refused(admin, b"")
    assert "password" in refused(admin, bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 600, "old.xls")
    assert rows_count(db) == before


def test_zip_bombs_are_refused_before_parsing(admin, acme, db, monkeypatch):
    before = rows_count(db)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", b"<" + b" " * (60 * 1024 * 1024) + b"/>")
    assert len(bomb.getvalue()) < 1024 * 1024
    assert "compressed suspiciously well" in refused(admin, bomb.getvalue())

    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(2001):
            zf.writestr(f"xl/x{i}.xml", "")
    assert "too many parts" in refused(admin, many.getvalue())

    monkeypatch.setattr(xlsx, "MAX_UNCOMPRESSED", 1000)
    assert "unpacks to more than" in refused(admin, xlsx.export_xlsx())
    assert rows_count(db) == before


def test_size_caps(admin, acme, app, db, monkeypatch):
    big = b"PK" + b"\0" * (21 * 1024 * 1024)
    assert "larger than 1 MB" in refused(admin, big)  # the test app's MAX_CONTENT_LENGTH
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 100 * 1024 * 1024)
    assert "larger than 20 MB" in refused(admin, big)


def test_rows_are_capped_while_streaming(admin, acme, db, monkeypatch):
    monkeypatch.setattr(xlsx, "MAX_ROWS", 5)
    rows = [["Acme / Finance", f"Clerk {i}", "", "", "", ""] for i in range(6)]
    assert "more than 5 rows" in refused(admin, workbook(rows))
    assert xlsx.plan_import(admin, upload(workbook(rows[:5]))).ok


def test_columns_beyond_the_cap_are_not_read(admin, acme, db):
    header = [f"note {i}" for i in range(20)] + ["unit path", "post", "holder e-mail"]
    assert "is missing" in refused(admin, workbook([[""] * 20 + ["Acme", "Boss", ""]], header=header))


# --- pages ------------------------------------------------------------------------------

def multipart(c, path: str, data: bytes, name: str = "chart.xlsx"):
    return c.post(path, data={"file": (io.BytesIO(data), name)},
                  headers={"X-CSRFToken": c.csrf()}, content_type="multipart/form-data")


def raw_multipart(c, path: str, data: bytes, name: str):
    b = "crmboundary42"
    head = (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    body = head + data + f"\r\n--{b}--\r\n".encode()
    return c.post(path, data=body, content_type=f"multipart/form-data; boundary={b}",
                  headers={"X-CSRFToken": c.csrf()})


def imports(app) -> list[Path]:
    return sorted((Path(app.config["UPLOAD_DIR"]) / "imports").glob("*.xlsx"))


def test_import_pages_preview_then_confirm(app, admin_client, admin, acme, make_user, db):
    ann = make_user("Ann North")
    page = admin_client.get("/org/import")
    assert page.status_code == 200 and 'type="file"' in page.get_data(as_text=True)
    data = workbook([["Acme / Labs", "Lab head", "yes", ann.email, "", ""]])
    before = rows_count(db)

    resp = multipart(admin_client, "/org/import", data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "new unit(s)" in html and "Lab head" in html and 'data-testid="import-confirm"' in html
    sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', html).group(1)
    assert (Path(app.config["UPLOAD_DIR"]) / "imports" / f"{sha}.xlsx").read_bytes() == data
    assert rows_count(db) == before

    done = admin_client.form("/org/import/confirm", {"sha256": sha, "filename": "chart.xlsx"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/org/")
    assert rows_count(db) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert charts.load().holding(post_titled("Lab head")).users == (ann,)
    assert imports(app) == []  # the kept upload goes once imported
    board = admin_client.get("/org/")
    assert "1 new units, 1 new posts and 1 new holders" in board.get_data(as_text=True)

    # the same file again: nothing to import, no button
    html = multipart(admin_client, "/org/import", data).get_data(as_text=True)
    assert "Nothing to import" in html and 'data-testid="import-confirm"' not in html


def test_import_page_errors_show_next_to_the_field(app, admin_client, acme, db):
    before = rows_count(db)
    resp = multipart(admin_client, "/org/import", PNG, "photo.xlsx")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'class="invalid-feedback" id="e-file"' in html and "not an Excel workbook" in html

    resp = multipart(admin_client, "/org/import",
                     workbook([["Acme / Labs", "Lab head", "", "nobody@example.test", "", ""]]))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "1 row has an error" in html
    assert "There is no account with this e-mail." in html
    assert 'data-testid="import-confirm"' not in html
    assert imports(app) == [] and rows_count(db) == before


def test_confirm_never_trusts_the_form(app, admin_client, acme, db):
    before = rows_count(db)
    for sha in ("../../etc/passwd", "../" * 21 + "x", "A" * 64, "0" * 63, "", "0" * 64 + "\n"):
        resp = admin_client.form("/org/import/confirm", {"sha256": sha})
        assert resp.status_code == 422, sha
        assert 'id="e-file"' in resp.get_data(as_text=True)
    resp = admin_client.form("/org/import/confirm", {"sha256": "0" * 64})
    assert resp.status_code == 422 and "no longer kept" in resp.get_data(as_text=True)
    folder = Path(app.config["UPLOAD_DIR"]) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{'1' * 64}.xlsx").write_bytes(workbook([["Acme / Labs", "Lab head", "", "", "", ""]]))
    resp = admin_client.form("/org/import/confirm", {"sha256": "1" * 64})  # not its content's hash
    assert resp.status_code == 422 and "not known" in resp.get_data(as_text=True)
    (folder / f"{'1' * 64}.xlsx").unlink()
    assert rows_count(db) == before


def test_oversized_upload_is_refused(app, admin_client, acme, db):
    before = rows_count(db)
    resp = raw_multipart(admin_client, "/org/import", b"PK" + b"\0" * (1024 * 1024 + 10), "big.xlsx")
    assert resp.status_code == 413
    assert imports(app) == [] and rows_count(db) == before


def test_employee_gets_403_on_import_pages(app, user_client, acme, db):
    before = rows_count(db)
    assert user_client.get("/org/import").status_code == 403
    assert multipart(user_client, "/org/import", xlsx.export_xlsx()).status_code == 403
    assert user_client.form("/org/import/confirm", {"sha256": "0" * 64}).status_code == 403
    assert imports(app) == [] and rows_count(db) == before


def test_export_download(user_client, acme, db):
    resp = user_client.get("/org/export.xlsx")  # everyone may see the chart
    assert resp.status_code == 200 and resp.mimetype == xlsx.XLSX_MIME
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert read(resp.data)[1][0] == "Acme"
