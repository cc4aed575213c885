"""Import and export of companies and contacts: mapping, preview, all or nothing, idempotent
re-import, duplicates, bad files, access, and the pages that drive it."""

from __future__ import annotations

import io
import json
import re
import zipfile

import openpyxl
import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.clients import exports, imports
from app.clients import services as clients
from app.clients.models import Category, Company, Contact, ContactLink
from app.core.errors import ValidationError
from app.core.models import AuditEvent

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\0" * 64


def xlsx(rows: list[list]) -> bytes:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Sheet")
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def preview(actor, content: bytes, kind: str = "companies", mapping=None):
    head = imports.read_head(content)
    mapping = imports.guess_mapping(kind, head.headers) if mapping is None else mapping
    sheet = imports.read_sheet(content)
    return imports.plan(actor, kind, sheet, mapping, filename="f", sha256="x")


def run(actor, content: bytes, kind: str = "companies", mapping=None):
    return imports.import_file(actor, kind, content, mapping, filename="clients.xlsx")


def counts(db) -> tuple[int, int, int, int]:
    return (db.session.scalar(select(func.count()).select_from(Company)),
            db.session.scalar(select(func.count()).select_from(Contact)),
            db.session.scalar(select(func.count()).select_from(ContactLink)),
            db.session.scalar(select(func.count()).select_from(Category)))


def statuses(planned) -> list[str]:
    return [r.status for r in planned[0].rows]


COMPANIES = [
    ["Наименование", "ИНН", "Телефон", "E-mail", "Статус", "Категории", "Теги", "Ответственный"],
    ["ООО «Рога и копыта»", "7701234567", "8 (900) 123-45-67", "info@roga.test", "активный",
     "Опт; Розница", "vip, new", ""],
    ["Acme Ltd", "", "+44 20 7946 0000", "hello@acme.test", "prospect", "", "", ""],
    ["Beta LLC", "7709999999", "", "", "", "Опт", "", ""],
]


# --- mapping --------------------------------------------------------------------------------

def test_mapping_is_guessed_from_english_and_russian_headers():
    guess = imports.guess_mapping("companies", [
        "Наименование", "ИНН", "Телефон", "Mobile phone", "E-mail", "Сайт", "Ответственный",
        "Something else", "Холдинг", "Примечание"])
    assert guess == {"legal_name": [0], "tax_number": [1], "phones": [2, 3], "emails": [4],
                     "website": [5], "responsible": [6], "parent": [8], "notes": [9]}
    guess = imports.guess_mapping("contacts", ["Full name", "Company", "Job title", "Email",
                                               "Дата рождения", "Согласие на контакт", "Telegram"])
    assert guess["name"] == [0] and guess["company"] == [1] and guess["position"] == [2]
    assert guess["emails"] == [3] and guess["birthday"] == [4] and guess["consent"] == [5]
    assert "messengers" not in guess  # "Telegram" is no header of ours: the user maps it


def test_a_mapping_the_user_changes_is_checked(office):
    content = xlsx(COMPANIES)
    sheet = imports.read_sheet(content)
    with pytest.raises(ValidationError, match="cannot fill two fields"):
        imports.plan(office.Sam, "companies", sheet, {"legal_name": [0], "short_name": [0]})
    with pytest.raises(ValidationError, match="does not have"):
        imports.plan(office.Sam, "companies", sheet, {"legal_name": [0], "notes": [42]})
    with pytest.raises(ValidationError, match="takes one column"):
        imports.plan(office.Sam, "companies", sheet, {"legal_name": [0, 1]})
    # The user maps the "Теги" column to industry instead: it is read as such.
    planned = imports.plan(office.Sam, "companies", sheet, {"legal_name": [0], "industry": [6]})
    record = planned[0].new[0][1]
    assert record.values["industry"] == "vip, new" and record.values["tags"] == ""


# --- preview and apply ----------------------------------------------------------------------

def test_preview_changes_nothing_and_apply_writes_every_row(office, db):
    before = counts(db)
    planned = preview(office.Sam, xlsx(COMPANIES))
    assert statuses(planned) == ["new", "new", "new"] and planned[0].ok
    assert counts(db) == before
    report = imports.apply(office.Sam, "companies", planned)
    assert report["created"] == 3 and report["updated"] == 0
    db.session.expire_all()
    roga = db.session.scalar(select(Company).where(Company.tax_number == "7701234567"))
    assert roga.legal_name == "ООО «Рога и копыта»" and roga.status == "active"
    assert roga.phones == ["8 (900) 123-45-67"] and roga.emails == ["info@roga.test"]
    assert sorted(c.name for c in roga.categories) == ["Опт", "Розница"]
    assert roga.tag_list == ["vip", "new"] and roga.responsible_id == office.Sam.id
    assert "79001234567" in roga.search_text and roga.is_client
    beta = db.session.scalar(select(Company).where(Company.legal_name == "Beta LLC"))
    assert [c.name for c in beta.categories] == ["Опт"]  # one category "Опт", shared
    assert counts(db)[3] == before[3] + 2
    assert [r.target_id for r in planned[0].rows] == [roga.id, planned[0].rows[1].target_id, beta.id]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clients.import_companies"))
    assert event.after["created"] == 3 and event.actor_id == office.Sam.id


def test_reimporting_the_same_file_changes_nothing(office, db):
    content = xlsx(COMPANIES)
    run(office.Sam, content)
    events = db.session.scalar(select(func.count()).select_from(AuditEvent))
    before = counts(db)
    planned, report = run(office.Sam, content)
    assert [r.status for r in planned.rows] == ["unchanged"] * 3
    assert report == {"created": 0, "updated": 0, "unchanged": 3, "duplicates": 0}
    assert counts(db) == before
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events


def test_rows_match_by_tax_number_then_email_or_phone_then_name(office, db):
    run(office.Sam, xlsx(COMPANIES))
    planned = preview(office.Sam, xlsx([
        ["Legal name", "Tax number", "Phones", "E-mails", "Website"],
        ["Roga renamed", "7701234567", "", "", "roga.test"],        # tax number
        ["Acme", "", "", "HELLO@acme.test", "acme.test"],            # e-mail, any case
        ["Acme Holding", "", "+44 (20) 7946-0000", "", ""],          # phone by its digits
        ["Beta LLC", "", "", "", "beta.test"],                       # exact legal name
        ["Beta LLC", "1234567890", "", "", ""],                      # another tax number
    ]))
    rows = planned[0].rows
    assert [(r.status, r.found_by) for r in rows] == [
        ("update", "tax_number"), ("update", "email"), ("duplicate", "phone"),
        ("update", "name"), ("new", None)]
    assert rows[2].target_row == 3  # Acme, matched by the row before it
    assert rows[0].changes == ["legal_name", "website"]


def test_duplicates_within_the_file_and_of_other_managers(office, db):
    fred_co = clients.create_company(office.Fred, {"legal_name": "Fred's", "tax_number": "5500000001"})
    helen_co = clients.create_company(office.Helen, {"legal_name": "Helen's",
                                                     "emails": ["boss@helen.test"]})
    planned = preview(office.Sam, xlsx([
        ["Legal name", "Tax number", "E-mail"],
        ["New one", "5500000002", ""],
        ["Same again", "5500000002", ""],
        ["Fred's copy", "5500000001", ""],
        ["Helen's copy", "", "boss@helen.test"],
    ]))
    rows = planned[0].rows
    assert [r.status for r in rows] == ["new", "duplicate", "duplicate", "duplicate"]
    assert rows[1].target_row == 2 and rows[1].found_by == "tax_number"
    # Fred's company is out of Sam's sight: reported without its id.
    assert rows[2].target_id is None and "another manager" in rows[2].note
    # Sam's head Helen keeps hers: Sam cannot see it either.
    assert rows[3].target_id is None
    # Helen sees Sam's and her own; Fred's stays hidden from her too.
    planned = preview(office.Helen, xlsx([["Legal name", "E-mail"], ["Helen's", "boss@helen.test"]]))
    assert planned[0].rows[0].status == "unchanged" and planned[0].rows[0].target_id == helen_co.id
    imports.apply(office.Sam, "companies", preview(office.Sam, xlsx([
        ["Legal name", "Tax number"], ["Fred's copy", "5500000001"]])))
    db.session.expire_all()
    assert db.session.get(Company, fred_co.id).legal_name == "Fred's"
    # Shared with Sam, Fred's company is named by its id, and still left as it is.
    clients.share(office.Fred, fred_co.id, {"user_ids": [office.Sam.id]})
    planned = preview(office.Sam, xlsx([["Legal name", "Phone", "Tax number"],
                                        ["Fred's copy", "", "5500000001"]]))
    row = planned[0].rows[0]
    assert (row.status, row.target_id, row.found_by) == ("duplicate", fred_co.id, "tax_number")
    assert "Another manager keeps this company" in row.note and not planned[0].changes


def test_an_error_row_stops_the_whole_file(office, db):
    before = counts(db)
    content = xlsx([
        ["Legal name", "Tax number", "E-mail", "Status", "Roles", "Responsible"],
        ["Good one", "7700000001", "a@good.test", "active", "client, partner", ""],
        ["Bad mail", "", "not-an-email", "", "", ""],
        ["Bad tax", "77 00 ЯЯ", "", "", "", ""],
        ["Bad status", "", "", "sleeping", "", ""],
        ["Bad roles", "", "", "", "friend", ""],
        ["Unknown person", "", "", "", "", "nobody@nowhere.test"],
        ["Not under Sam", "", "", "", "", office.Fred.email],
        ["", "7700000009", "", "", "", ""],  # a new company without its name
    ])
    planned = preview(office.Sam, content)
    rows = planned[0].rows
    assert [r.status for r in rows] == ["new"] + ["error"] * 7
    assert "E-mails" in rows[1].error and "Tax number" in rows[2].error
    assert "prospect, active or former" in rows[3].error and "client, supplier" in rows[4].error
    assert "no account" in rows[5].error and "below you" in rows[6].error
    assert "legal name" in rows[7].error
    with pytest.raises(ValidationError, match="errors in 7 rows"):
        imports.apply(office.Sam, "companies", planned)
    with pytest.raises(ValidationError):
        run(office.Sam, content)
    assert counts(db) == before


def test_an_update_adds_lists_and_never_removes(office, db):
    company = clients.create_company(office.Sam, {
        "legal_name": "Gamma", "tax_number": "7800000001", "phones": ["+7 900 000-00-01"],
        "emails": ["a@gamma.test"], "tags": ["old"], "notes": "Keep me"})
    planned, report = run(office.Sam, xlsx([
        ["Legal name", "Tax number", "Phones", "E-mails", "Tags", "Notes"],
        ["", "7800000001", "8 900 000 00 01; +7 900 000-00-02", "b@gamma.test", "new", ""]]))
    assert planned.rows[0].status == "update" and report["updated"] == 1
    db.session.expire_all()
    company = db.session.get(Company, company.id)
    assert company.legal_name == "Gamma" and company.notes == "Keep me"
    assert company.phones == ["+7 900 000-00-01", "+7 900 000-00-02"]
    assert company.emails == ["a@gamma.test", "b@gamma.test"] and company.tag_list == ["old", "new"]
    assert "79000000002" in company.search_text and "b@gamma.test" in company.search_text


def test_holdings_by_tax_number_or_name_within_the_file(office, db):
    existing = clients.create_company(office.Sam, {"legal_name": "Old Parent", "tax_number": "1000000001"})
    planned, _report = run(office.Sam, xlsx([
        ["Legal name", "Tax number", "Holding"],
        ["Child A", "2000000001", "Big Holding"],   # a parent made by a later row
        ["Big Holding", "2000000000", ""],
        ["Child B", "2000000002", "1000000001"],    # a stored parent by tax number
    ]))
    db.session.expire_all()
    holding = db.session.scalar(select(Company).where(Company.tax_number == "2000000000"))
    child_a = db.session.scalar(select(Company).where(Company.tax_number == "2000000001"))
    child_b = db.session.scalar(select(Company).where(Company.tax_number == "2000000002"))
    assert child_a.parent_id == holding.id and child_b.parent_id == existing.id
    # A cycle through the file is refused.
    planned = preview(office.Sam, xlsx([["Legal name", "Tax number", "Holding"],
                                        ["Big Holding", "2000000000", "2000000001"]]))
    assert planned[0].rows[0].status == "error" and "inside itself" in planned[0].rows[0].error
    planned = preview(office.Sam, xlsx([["Legal name", "Holding"], ["Orphan", "No Such Co"]]))
    assert "No such parent company" in planned[0].rows[0].error


# --- contacts ---------------------------------------------------------------------------------

def test_contacts_join_companies_and_reimport_changes_nothing(office, db):
    acme = clients.create_company(office.Sam, {"legal_name": "Acme", "tax_number": "3000000001"})
    beta = clients.create_company(office.Sam, {"legal_name": "Beta"})
    content = xlsx([
        ["ФИО", "Компания", "Должность", "Телефон", "E-mail", "Дата рождения", "Согласие",
         "Мессенджеры"],
        ["Иван Петров", "3000000001", "Директор", "+7 900 111-22-33", "ivan@acme.test",
         "17.05.1980", "да", "telegram: @ivan"],
        ["Иван Петров", "Beta", "Консультант", "", "ivan@acme.test", "", "", ""],
        ["Анна", "", "", "", "", "", "", ""],
    ])
    planned, report = run(office.Sam, content, "contacts")
    assert [r.status for r in planned.rows] == ["new", "update", "new"]
    assert planned.rows[1].target_row == 2 and report["created"] == 2
    db.session.expire_all()
    ivan = db.session.scalar(select(Contact).where(Contact.name == "Иван Петров"))
    assert {(lk.company_id, lk.position) for lk in ivan.links} == {(acme.id, "Директор"),
                                                                   (beta.id, "Консультант")}
    assert ivan.birthday.isoformat() == "1980-05-17" and ivan.consent
    assert ivan.messengers == [{"kind": "telegram", "handle": "@ivan"}]
    assert ivan.created_by_id == office.Sam.id
    before = counts(db)
    planned, report = run(office.Sam, content, "contacts")
    assert [r.status for r in planned.rows] == ["unchanged"] * 3
    assert report["created"] == report["updated"] == 0 and counts(db) == before


def test_a_contact_at_a_company_one_may_not_see_is_an_error(office, db):
    clients.create_company(office.Fred, {"legal_name": "Fred's", "tax_number": "5500000001"})
    before = counts(db)
    planned = preview(office.Sam, xlsx([["Name", "Company"], ["Olga", "5500000001"]]), "contacts")
    assert planned[0].rows[0].status == "error" and "No such company" in planned[0].rows[0].error
    planned = preview(office.Sam, xlsx([["Name", "Birthday", "Consent"], ["Olga", "31.02.1980", "maybe"]]),
                      "contacts")
    assert "31.12.1980" in planned[0].rows[0].error and "yes or no" in planned[0].rows[0].error
    assert counts(db) == before


# --- files that are not what they claim -------------------------------------------------------

def refused(actor, content: bytes, kind: str = "companies") -> str:
    with pytest.raises(ValidationError) as info:
        run(actor, content, kind)
    return info.value.fields["file"][0]


def test_csv_in_utf8_bom_and_windows_1251(office, db):
    text = "Название;ИНН;Телефон\r\n\"Рога; и копыта\";7701234567;'+7 900 123-45-67\r\n"
    for encoding in ("utf-8", "utf-8-sig", "cp1251"):
        sheet = imports.read_sheet(csv_bytes(text, encoding))
        assert sheet.headers == ["Название", "ИНН", "Телефон"]
        assert sheet.rows == [(2, ["Рога; и копыта", "7701234567", "+7 900 123-45-67"])]
    comma = csv_bytes("Legal name,Tax number\nAcme,123\n")
    assert imports.read_sheet(comma).rows == [(2, ["Acme", "123"])]


def test_bad_encodings_are_refused(office, db):
    before = counts(db)
    assert "encoding" in refused(office.Sam, "Название\nРога".encode() + b"\x98\x98")
    # UTF-8 with some Windows-1251 bytes in it
    mixed = "Название;Город\nРога;Москва\nКопыта;Тверь\n".encode() + "Ещё;Омск\n".encode("cp1251")
    assert "encoding" in refused(office.Sam, mixed)
    assert "UTF-16" in refused(office.Sam, "Name\nAcme\n".encode("utf-16"))
    assert counts(db) == before


def test_a_missing_required_column_is_refused(office, db):
    before = counts(db)
    message = refused(office.Sam, xlsx([["Phone", "E-mail"], ["+7 900 1234567", "a@b.test"]]))
    assert "“Legal name” is missing" in message
    assert "“Name” is missing" in refused(office.Sam, csv_bytes("Company;Phone\nAcme;1\n"), "contacts")
    assert "no rows" in refused(office.Sam, xlsx([["Legal name"]]))
    assert counts(db) == before


def test_not_a_spreadsheet_is_refused(office, db):
    before = counts(db)
    assert "not a spreadsheet" in refused(office.Sam, PNG)
    assert "not a spreadsheet" in refused(office.Sam, b"%PDF-1.7\n...")
    assert "not a spreadsheet" in refused(office.Sam, b"<html><table><tr><td>x</td></tr></table>")
    assert "not a spreadsheet" in refused(office.Sam, b"name\x00\x01\x02")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("content.xml", "<office/>")
    assert "not an Excel workbook" in refused(office.Sam, other.getvalue())
    assert ".xls" in refused(office.Sam, bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 600)
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("xl/workbook.xml", "<not really")
    assert "could not be read" in refused(office.Sam, broken.getvalue())
    assert "empty" in refused(office.Sam, b"")
    assert counts(db) == before


def test_zip_bombs_are_refused_before_parsing(office, db, monkeypatch):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", b"<" + b" " * (60 * 1024 * 1024) + b"/>")
    assert len(bomb.getvalue()) < 1024 * 1024
    assert "compressed suspiciously well" in refused(office.Sam, bomb.getvalue())
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(imports.MAX_ENTRIES + 1):
            zf.writestr(f"xl/x{i}.xml", "")
    assert "too many parts" in refused(office.Sam, many.getvalue())
    monkeypatch.setattr(imports, "MAX_UNCOMPRESSED", 1000)
    assert "unpacks to more than" in refused(office.Sam, xlsx(COMPANIES))


def test_rows_and_columns_are_capped_while_streaming(office, db, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 2)
    assert "more than 2 rows" in refused(office.Sam, xlsx(COMPANIES))
    assert "more than 2 rows" in refused(office.Sam, csv_bytes("Legal name\na\nb\nc\n"))
    monkeypatch.setattr(imports, "MAX_ROWS", 10)
    monkeypatch.setattr(imports, "MAX_COLUMNS", 2)
    sheet = imports.read_sheet(xlsx([["Legal name", "Tax number", "Phone"], ["a", "1", "2"]]))
    assert sheet.headers == ["Legal name", "Tax number"] and sheet.rows == [(2, ["a", "1"])]
    monkeypatch.setattr(imports, "MAX_CELL", 5)
    planned = preview(office.Sam, xlsx([["Legal name"], ["Too long a name"]]))
    assert "longer than 5 characters" in planned[0].rows[0].error


# --- export -----------------------------------------------------------------------------------

def test_export_then_import_changes_nothing(office, db):
    parent = clients.create_company(office.Sam, {"legal_name": "=HYPERLINK(\"x\")",
                                                 "tax_number": "9000000000"})
    clients.create_company(office.Sam, {
        "legal_name": "Рога и копыта", "short_name": "Рога", "tax_number": "9000000001",
        "is_supplier": True, "is_partner": True, "status": "active", "categories": ["Опт", "VIP, key"],
        "tags": ["north", "b2b"], "industry": "Retail", "phones": ["+7 900 123-45-67", "8 800 1"],
        "emails": ["a@roga.test"], "website": "roga.test", "parent_id": parent.id,
        "addresses": [{"kind": "legal", "text": "Москва, ул. Ленина, 1; оф. 2"},
                      {"kind": "office", "text": "Тверь"}],
        "notes": "Line one\nLine two", "responsible_id": office.Sam.id})
    clients.create_company(office.Sam, {"legal_name": "No tax, no phone"})
    contact = clients.create_contact(office.Sam, {
        "name": "Иван", "phones": ["+7 900 000-00-00"], "emails": ["ivan@roga.test"],
        "messengers": [{"kind": "telegram", "handle": "@ivan"}], "birthday": "1980-05-17",
        "consent": True, "companies": [{"company_id": parent.id, "position": "CEO"}]})
    clients.create_contact(office.Sam, {"name": "Lonely"})
    db.session.commit()
    before = counts(db)
    for fmt in ("xlsx", "csv"):
        for kind in ("companies", "contacts"):
            content = exports.export(office.Sam, kind, fmt)
            planned, report = run(office.Sam, content, kind)
            assert {r.status for r in planned.rows} == {"unchanged"}, (fmt, kind, [
                (r.title, r.status, r.changes, r.errors) for r in planned.rows])
            assert report["created"] == report["updated"] == 0
    assert counts(db) == before
    rows = list(exports.contact_rows(office.Sam))
    assert rows[1][:3] == ["Иван", "9000000000", "CEO"] and rows[1][6] == "1980-05-17"
    assert contact.id


def test_csv_export_guards_formulas_and_opens_in_excel(office, db):
    clients.create_company(office.Sam, {"legal_name": "=1+1", "phones": ["+7 900 1234567"]})
    content = exports.export(office.Sam, "companies", "csv")
    assert content.startswith(b"\xef\xbb\xbf")
    text = content.decode("utf-8-sig")
    assert "'=1+1" in text and "'+7 900 1234567" in text and text.splitlines()[0].startswith("Legal name;")
    wb = openpyxl.load_workbook(io.BytesIO(exports.export(office.Sam, "companies", "xlsx")), read_only=True)
    values = list(wb.worksheets[0].iter_rows(values_only=True))
    assert values[1][0] == "=1+1"  # text, not a formula
    wb.close()


def test_one_exports_only_what_one_sees(office, db):
    clients.create_company(office.Sam, {"legal_name": "Sam's"})
    shared = clients.create_company(office.Fred, {"legal_name": "Fred's, shared"})
    clients.create_company(office.Fred, {"legal_name": "Fred's own"})
    clients.share(office.Fred, shared.id, {"user_ids": [office.Sam.id]})
    clients.create_contact(office.Fred, {"name": "Fred's contact"})
    clients.create_contact(office.Sam, {"name": "Sam's contact"})

    def names(actor, kind):
        return sorted(row[0] for row in list(exports.ROWS[kind](actor))[1:])

    assert names(office.Sam, "companies") == ["Fred's, shared", "Sam's"]
    assert names(office.Helen, "companies") == ["Sam's"]
    assert names(office.Dora, "companies") == ["Fred's own", "Fred's, shared", "Sam's"]
    assert names(office.Sam, "contacts") == ["Sam's contact"]
    assert names(office.Fred, "contacts") == ["Fred's contact"]


# --- pages ------------------------------------------------------------------------------------

@pytest.fixture
def sam_client(client, office):
    client.sign_in(office.Sam.email)
    return client


def upload(client, content: bytes, name: str = "clients.xlsx", kind: str = "companies"):
    """The form as a browser posts it (encoded here, in memory: the test client would spool
    a large body to a temporary file that it never closes)."""
    boundary, body = encode_multipart({"csrf_token": client.csrf(), "kind": kind,
                                       "file": FileStorage(io.BytesIO(content), filename=name)})
    return client.post("/clients/import", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def mapping_form(html: str) -> dict:
    data = {name: value for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}
    for name, body in re.findall(r'<select[^>]*name="(col-\d+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        data[name] = chosen.group(1) if chosen else ""
    return data


def test_pages_upload_map_preview_and_apply(sam_client, office, db):
    content = xlsx(COMPANIES)
    page = upload(sam_client, content)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Наименование" in html and "ООО «Рога и копыта»" in html  # headers and a sample
    form = mapping_form(html)
    assert form["col-0"] == "legal_name" and form["col-1"] == "tax_number"
    form["col-7"] = ""  # the user drops the responsible column
    shown = sam_client.form("/clients/import/preview", form)
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert html.count('data-testid="import-row"') == 3 and "import-confirm" in html
    assert counts(db)[0] == 0
    confirm = {name: value for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html.split('data-testid="import-apply"')[1])}
    done = sam_client.form("/clients/import/apply", confirm)
    assert done.status_code == 302
    report = sam_client.get(done.headers["Location"])
    assert report.status_code == 200 and "3" in report.get_data(as_text=True)
    assert counts(db)[0] == 3
    again = sam_client.form("/clients/import/apply", confirm)  # a second click: nothing new
    assert again.status_code == 302 and counts(db)[0] == 3
    csv_report = sam_client.get(done.headers["Location"] + ".csv")
    assert csv_report.status_code == 200 and "new" in csv_report.get_data(as_text=True)


def test_the_pages_refuse_bad_files_clearly(sam_client, app, db, monkeypatch):
    page = upload(sam_client, PNG, "photo.xlsx")
    assert page.status_code == 422 and "not a spreadsheet" in page.get_data(as_text=True)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 100 * 1024 * 1024)
    big = b"Legal name\n" + b"x" * (50 * 1024 * 1024)
    page = upload(sam_client, big, "big.csv")
    assert page.status_code == 422 and "larger than 20 MB" in page.get_data(as_text=True)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024 * 1024)
    page = upload(sam_client, big, "big.csv")  # over the request cap: refused before reading
    assert page.status_code == 413 and "too large" in page.get_data(as_text=True)
    page = upload(sam_client, xlsx([["Phone"], ["1"]]))
    form = mapping_form(page.get_data(as_text=True))
    shown = sam_client.form("/clients/import/preview", form)
    assert shown.status_code == 422 and "is missing" in shown.get_data(as_text=True)
    assert counts(db)[0] == 0


def test_progress_is_readable_by_its_owner_only(sam_client, client, office, app):
    from app.clients import import_views

    with app.test_request_context():
        import_views.write_progress("a" * 32, office.Sam.id, "reading", 2000, 10000)
    answer = sam_client.get("/clients/import/progress/" + "a" * 32)
    assert answer.status_code == 200 and json.loads(answer.data)["done"] == 2000
    assert sam_client.get("/clients/import/progress/" + "b" * 32).status_code == 404
    other = app.test_client()
    other.sign_in(office.Fred.email)
    assert other.get("/clients/import/progress/" + "a" * 32).status_code == 404


def test_export_pages(sam_client, office, db):
    clients.create_company(office.Sam, {"legal_name": "Sam's"})
    clients.create_company(office.Fred, {"legal_name": "Fred's"})
    db.session.commit()
    answer = sam_client.get("/clients/export/companies.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    text = answer.get_data().decode("utf-8-sig")
    assert "Sam's" in text and "Fred's" not in text
    answer = sam_client.get("/clients/export/contacts.xlsx")
    assert answer.status_code == 200 and answer.data.startswith(b"PK")
    assert sam_client.get("/clients/export/deals.csv").status_code == 404
