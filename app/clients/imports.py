"""Import of companies and contacts from CSV and XLSX.

Three steps. `read_head` reads the uploaded file's first row and a few more, and
`guess_mapping` matches its columns to the fields of a company or a contact by their
headers (English or Russian; the user may change the mapping). `plan` reads every row,
checks it against the rules of app.clients.services and against what is stored, and changes
nothing: each row gets a status (new, update, unchanged, duplicate, error). `apply` then
writes the plan all or nothing, and every row of the report gets the record it made or
changed.

A row is matched to a stored record (or to an earlier row of the same file) by tax number,
then by e-mail or phone, then by the exact legal name; for contacts by e-mail, then phone,
then the exact name at the same company. Two companies with different tax numbers are never
the same. A matched record gets what the row has that it has not: a non-empty cell replaces
a value, phones, e-mails, tags, categories, addresses and messengers are added, never
removed; empty cells change nothing. So importing the same file again, or a file exported
from here, changes nothing. A company that another row already matched, or that the user
may not change, is a duplicate: it is reported and left alone.

Everything is read once and checked in memory: the stored companies (or contacts) are
loaded with one query each, the responsible people with one more, and the records are
written many per statement. One audit event records each import with its counts.

Files: XLSX (checked as a zip before openpyxl parses it, read with read_only) or CSV in
UTF-8 (with or without a BOM) or Windows-1251, separated by commas, semicolons or tabs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time

import openpyxl
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError as MaValidationError
from sqlalchemy import func, select

from app.clients import services
from app.clients.models import Category, Company, CompanyCategory, Contact, ContactLink
from app.clients.schemas import CompanyIn, ContactIn
from app.core import audit, spreadsheets
from app.core.errors import ValidationError
from app.core.i18n import translate_library_message
from app.core.models import User
from app.extensions import db

KINDS = ("companies", "contacts")
MAX_FILE_MB = 20
MAX_ROWS = 200_000
MAX_COLUMNS = 60
MAX_CELL = 20_000
MAX_ENTRIES = 2000
MAX_UNCOMPRESSED = 600 * 1024 * 1024
MAX_RATIO = 100
SAMPLE_ROWS = 3

NEW, UPDATE, UNCHANGED, DUPLICATE, ERROR = "new", "update", "unchanged", "duplicate", "error"
STATUSES = (NEW, UPDATE, UNCHANGED, DUPLICATE, ERROR)
STATUS_LABELS = {NEW: _l("new"), UPDATE: _l("update"), UNCHANGED: _l("unchanged"),
                 DUPLICATE: _l("duplicate"), ERROR: _l("error")}
FOUND_BY = {"tax_number": _l("tax number"), "email": _l("e-mail"), "phone": _l("phone"),
            "name": _l("name")}

Progress = Callable[[str, int, int | None], None]  # (phase, rows done, rows in all or None)


# --- fields and the headers that name them -------------------------------------------------

@dataclass(frozen=True)
class Field:
    key: str
    label: object  # a lazy string
    aliases: tuple[str, ...]  # headers (folded) that name it, English and Russian
    required: bool = False
    multi: bool = False  # a list: several columns may feed it


_PHONES = ("phones", "phone", "phone number", "telephone", "tel", "mobile", "телефоны", "телефон",
           "номер телефона", "мобильный", "тел")
_EMAILS = ("e-mails", "e-mail", "emails", "email", "mail", "email address", "электронная почта",
           "эл. почта", "эл почта", "почта", "e-mail адрес", "емейл", "имейл")
_NOTES = ("notes", "note", "comment", "comments", "description", "примечания", "примечание",
          "комментарий", "комментарии", "заметки", "описание")

FIELDS: dict[str, tuple[Field, ...]] = {
    "companies": (
        Field("legal_name", _l("Legal name"), (
            "legal name", "company", "company name", "name", "full name", "organisation",
            "organization", "юридическое название", "юридическое наименование", "наименование",
            "полное наименование", "название", "название компании", "компания", "организация",
            "наименование организации"), required=True),
        Field("short_name", _l("Short name"), (
            "short name", "brand", "trade name", "краткое название", "краткое наименование",
            "сокращенное наименование", "сокращенное название", "бренд")),
        Field("tax_number", _l("Tax number"), (
            "tax number", "tax id", "taxpayer number", "inn", "vat", "vat number", "инн",
            "налоговый номер")),
        Field("roles", _l("Roles"), ("roles", "role", "type", "kind", "роли", "роль", "тип",
                                     "вид")),
        Field("status", _l("Status"), ("status", "state", "статус", "состояние")),
        Field("categories", _l("Categories"), (
            "categories", "category", "segment", "категории", "категория", "сегмент"), multi=True),
        Field("tags", _l("Tags"), ("tags", "tag", "labels", "теги", "тег", "метки"), multi=True),
        Field("industry", _l("Industry"), ("industry", "sector", "отрасль", "сфера",
                                           "сфера деятельности")),
        Field("addresses", _l("Addresses"), ("addresses", "address", "адреса", "адрес"),
              multi=True),
        Field("phones", _l("Phones"), _PHONES, multi=True),
        Field("emails", _l("E-mails"), _EMAILS, multi=True),
        Field("website", _l("Website"), ("website", "web site", "site", "web", "url", "сайт",
                                         "веб-сайт")),
        Field("responsible", _l("Responsible"), (
            "responsible", "responsible e-mail", "responsible email", "manager", "account manager",
            "owner", "ответственный", "ответственный менеджер", "менеджер")),
        Field("parent", _l("Holding"), (
            "holding", "parent", "parent company", "parent tax number", "холдинг",
            "головная компания", "материнская компания")),
        Field("notes", _l("Notes"), _NOTES),
    ),
    "contacts": (
        Field("name", _l("Name"), (
            "name", "full name", "contact", "contact name", "person", "фио", "ф и о", "имя",
            "контакт", "контактное лицо", "имя и фамилия"), required=True),
        Field("company", _l("Company"), (
            "company", "company name", "organisation", "organization", "company tax number",
            "employer", "компания", "организация", "инн компании", "место работы")),
        Field("position", _l("Position"), ("position", "job title", "title", "role", "должность")),
        Field("phones", _l("Phones"), _PHONES, multi=True),
        Field("emails", _l("E-mails"), _EMAILS, multi=True),
        Field("messengers", _l("Messengers"), (
            "messengers", "messenger", "мессенджеры", "мессенджер"), multi=True),
        Field("birthday", _l("Birthday"), (
            "birthday", "date of birth", "birth date", "день рождения", "дата рождения")),
        Field("consent", _l("Consent to be contacted"), (
            "consent", "consent to be contacted", "consent to contact", "согласие",
            "согласие на контакт", "согласие на связь")),
        Field("notes", _l("Notes"), _NOTES),
    ),
}

STATUS_WORDS = {
    "prospect": ("prospect", "potential", "потенциальный", "потенциальный клиент", "перспективный"),
    "active": ("active", "current", "активный", "действующий", "текущий"),
    "former": ("former", "lost", "бывший", "ушедший"),
}
STATUS_NAMES = {"prospect": _l("Prospect"), "active": _l("Active"), "former": _l("Former")}
ROLE_WORDS = {
    "is_client": ("client", "customer", "клиент", "покупатель", "заказчик"),
    "is_supplier": ("supplier", "vendor", "поставщик"),
    "is_partner": ("partner", "партнер", "партнёр"),
}
_ROLE_KNOWN = set().union(*ROLE_WORDS.values())
ROLE_NAMES = {"is_client": "client", "is_supplier": "supplier", "is_partner": "partner"}
_TRUE = {"yes", "y", "true", "1", "x", "+", "✓", "✔", "да", "д", "истина"}
_FALSE = {"no", "n", "false", "0", "-", "нет", "н", "ложь"}

_MANY = re.compile(r"[;,\n]+")  # phones, e-mails, tags
_LINES = re.compile(r"[;\n]+")  # categories, messengers (names may hold commas)
_NEWLINES = re.compile(r"\n+")  # addresses (which hold commas and semicolons)
_TAX = re.compile(r"[0-9A-Za-z-]{1,32}")
_FORMULA_GUARD = re.compile(r"'(?=[=+\-@\t\r])")  # what a CSV export puts before a formula-like cell


def change_labels(kind: str) -> dict[str, object]:
    """What a changed column is called in a report: the field the file fills."""
    labels = {f.key: f.label for f in FIELDS[kind]}
    roles = labels.get("roles")
    labels.update({"responsible_id": labels.get("responsible"), "parent_id": labels.get("parent"),
                   "is_client": roles, "is_supplier": roles, "is_partner": roles,
                   "companies": labels.get("company")})
    return {k: v for k, v in labels.items() if v is not None}


def fold(text: str) -> str:
    """A header or a name as compared: case, ё, blanks and punctuation around it ignored."""
    text = " ".join(str(text).replace("ё", "е").replace("Ё", "Е").split()).casefold()
    return text.strip(" *:.#№")


def guess_mapping(kind: str, headers: list[str]) -> dict[str, list[int]]:
    """Columns for each field, guessed from the headers: an exact name first (in English,
    Russian, or the field's label in the user's language), then a header that begins with
    one ("Phone (mobile)"). A field takes one column, or several if it is a list."""
    names: dict[str, str] = {}
    for f in FIELDS[kind]:
        for alias in (fold(str(f.label)), *f.aliases):
            names.setdefault(fold(alias), f.key)
    by_key = {f.key: f for f in FIELDS[kind]}
    found: dict[str, list[int]] = {}
    taken: set[int] = set()

    def take(key: str, index: int) -> None:
        if key in found and not by_key[key].multi:
            return
        found.setdefault(key, []).append(index)
        taken.add(index)

    folded = [fold(h) for h in headers]
    for index, header in enumerate(folded):
        if header in names:
            take(names[header], index)
    for index, header in enumerate(folded):
        if index in taken or not header:
            continue
        starts = [a for a in names if len(a) >= 3 and header.startswith(a)
                  and not header[len(a):len(a) + 1].isalnum()]
        if starts:
            take(names[max(starts, key=len)], index)
    return found


def check_mapping(kind: str, mapping: dict[str, list[int]], width: int) -> dict[str, list[int]]:
    """A mapping the user chose: known fields, columns that exist, one field per column,
    the required fields present."""
    known = {f.key: f for f in FIELDS[kind]}
    out: dict[str, list[int]] = {}
    used: dict[int, str] = {}
    for key, columns in mapping.items():
        f = known.get(key)
        if f is None:
            continue
        for index in columns:
            if not isinstance(index, int) or not 0 <= index < width:
                raise spreadsheets.refuse(_("The mapping names a column the file does not have."))
            if index in used:
                raise spreadsheets.refuse(_("One column cannot fill two fields (“%(a)s” and "
                                            "“%(b)s”).", a=known[used[index]].label, b=f.label))
            used[index] = key
        if columns:
            if len(columns) > 1 and not f.multi:
                raise spreadsheets.refuse(_("“%(field)s” takes one column.", field=f.label))
            out[key] = list(columns)
    for f in FIELDS[kind]:
        if f.required and f.key not in out:
            raise spreadsheets.refuse(_("The column “%(field)s” is missing: choose the column that "
                                        "holds it.", field=f.label))
    return out


# --- reading the file ------------------------------------------------------------------------

_BINARY = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"\x1f\x8b", b"Rar!", b"7z\xbc\xaf",
           b"\x7fELF", b"MZ", b"{\\rtf", b"BZh", b"\xfd7zXZ", b"OggS", b"ID3", b"RIFF",
           b"\x00\x00\x01\x00", b"II*\x00", b"MM\x00*")
_UTF16 = (b"\xff\xfe", b"\xfe\xff")
_UNLIKELY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# UTF-8 read as Windows-1251: "Р" or "С" followed by what 0x80-0xBF mean there.
_MOJIBAKE = re.compile("[РС][\u0402\u0403\u201a\u0453\u201e\u2026\u2020\u2021\u20ac\u2030\u0409"
                       "\u2039\u040a\u040c\u040b\u040f\u0452\u2018\u2019\u201c\u201d\u2022\u2013"
                       "\u2014\u2122\u0459\u203a\u045a\u045c\u045b\u045f\u00a0\u040e\u045e\u0408"
                       "\u00a4\u0490\u00a6\u00a7\u0401\u00a9\u0404\u00ab\u00ac\u00ad\u00ae\u0407"
                       "\u00b0\u00b1\u0406\u0456\u0491\u00b5\u00b6\u00b7\u0451\u2116\u0454\u00bb"
                       "\u0458\u0405\u0455\u0457]")


def _not_spreadsheet() -> ValidationError:
    return spreadsheets.refuse(_("This file is not a spreadsheet. Upload an Excel workbook (.xlsx) "
                                 "or a CSV file."))


def _bad_encoding() -> ValidationError:
    return spreadsheets.refuse(_("The text of this CSV file is in an encoding that is not "
                                 "recognised. Save it as “CSV UTF-8” (or in Windows-1251) and "
                                 "upload it again."))


def file_format(content: bytes) -> str:
    """"xlsx" or "csv", from the file's first bytes (never from its name); anything else is
    refused."""
    if not content:
        raise spreadsheets.refuse(_("The file is empty."))
    if content.startswith((spreadsheets.ZIP_SIGNATURE, spreadsheets.OLE_SIGNATURE)):
        spreadsheets.check_xlsx_zip(content, max_entries=MAX_ENTRIES,
                                    max_uncompressed=MAX_UNCOMPRESSED, max_ratio=MAX_RATIO)
        return "xlsx"
    head = content[:8192]
    if head.startswith(_UTF16) or head.startswith(b"\x00\x00\xfe\xff"):
        raise spreadsheets.refuse(_("This CSV file is saved as UTF-16. Save it as “CSV UTF-8” "
                                    "and upload it again."))
    if head.startswith(_BINARY) or b"\x00" in head:
        raise _not_spreadsheet()
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":  # an HTML or XML page saved as .xls
        raise _not_spreadsheet()
    return "csv"


def decode(content: bytes) -> tuple[str, str]:
    """The text of a CSV file and its encoding: UTF-8 (a BOM allowed), else Windows-1251."""
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _UNLIKELY.search(text):
            raise _bad_encoding()
        if encoding == "cp1251":
            garbled = len(_MOJIBAKE.findall(text))
            if garbled >= 3 and garbled * 10 >= text.count("Р") + text.count("С"):
                raise _bad_encoding()  # UTF-8 with a few bytes of something else
        return text, "utf-8" if encoding == "utf-8-sig" else "windows-1251"
    raise _bad_encoding()


def cell_text(value) -> str:
    """A cell as the text the rules read: numbers without ".0", dates as ISO dates."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


@dataclass
class Sheet:
    """What a file holds: its headers and rows (only the columns asked for, as text)."""

    fmt: str
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (row number in the file, cells)
    encoding: str | None = None

    @property
    def width(self) -> int:
        return len(self.headers)


def _csv_rows(content: bytes) -> tuple[Iterator[list[str]], str, Callable[[], float]]:
    text, encoding = decode(content)
    first = text[:64 * 1024].split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=lambda d: (first.count(d), d == ","))
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, delimiter=delimiter, quotechar='"', strict=False)
    size = max(len(text), 1)

    def rows():
        try:
            for values in reader:
                yield [_FORMULA_GUARD.sub("", v, count=1).strip() if v[:1] == "'" else v.strip()
                       for v in values[:MAX_COLUMNS]]
        except csv.Error as exc:
            raise spreadsheets.refuse(_("The CSV file could not be read (line %(n)d): %(error)s",
                                        n=reader.line_num, error=str(exc))) from exc

    return rows(), encoding, lambda: stream.tell() / size


def _xlsx_rows(content: bytes) -> tuple[Iterator[list[str]], Callable[[], float], object]:
    unreadable = _("The workbook could not be read; save it again as .xlsx and upload it again.")
    try:
        wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # any defect of the file: not a readable workbook
        raise spreadsheets.refuse(unreadable) from exc
    sheets = [ws for ws in wb.worksheets if hasattr(ws, "reset_dimensions")]
    if not sheets:
        wb.close()
        raise spreadsheets.refuse(_("The workbook has no sheet with a table."))
    ws = sheets[0]
    try:
        estimate = ws.max_row if ws.max_row and ws.max_row > 1 else None
    except Exception:  # a broken dimension: no estimate, the rows are read all the same
        estimate = None
    ws.reset_dimensions()  # the stored dimension may be wrong; read what is there
    seen = [0]

    def rows():
        try:
            for values in ws.iter_rows(min_col=1, max_col=MAX_COLUMNS, values_only=True):
                seen[0] += 1
                yield [cell_text(v) for v in values]
        except ValidationError:
            raise
        except Exception as exc:
            raise spreadsheets.refuse(unreadable) from exc

    return rows(), (lambda: min(1.0, seen[0] / estimate) if estimate else 0.0), wb


def read_sheet(content: bytes, columns: list[int] | None = None, *, limit: int | None = None,
               progress: Progress | None = None) -> Sheet:
    """The file's header row and its non-empty rows (at most `limit`), keeping only
    `columns` of each row (all when None). Caps rows, columns and cell sizes while
    streaming; refuses what is not a spreadsheet."""
    fmt = file_format(content)
    closer = None
    if fmt == "csv":
        rows, encoding, fraction = _csv_rows(content)
    else:
        rows, fraction, closer = _xlsx_rows(content)
        encoding = None
    headers: list[str] | None = None
    out: list[tuple[int, list[str]]] = []
    try:
        for number, values in enumerate(rows, start=1):
            if not any(values):
                continue
            if headers is None:
                while values and not values[-1]:
                    values.pop()
                headers = values
                continue
            if len(out) >= MAX_ROWS:
                raise spreadsheets.refuse(_("The file has more than %(n)d rows; split it into "
                                            "several files.", n=MAX_ROWS))
            width = len(headers)
            kept = [values[i] if i < len(values) else "" for i in columns] if columns is not None \
                else (values[:width] + [""] * (width - len(values)))
            if not any(kept):
                continue
            out.append((number, kept))
            if limit is not None and len(out) >= limit:
                break
            if progress is not None and len(out) % 2000 == 0:
                progress("reading", len(out), _estimate(len(out), fraction()))
    finally:
        if closer is not None:
            closer.close()
    if headers is None:
        raise spreadsheets.refuse(_("The file has no rows: the first row must name the columns."))
    if progress is not None:
        progress("reading", len(out), len(out))
    return Sheet(fmt, headers, out, encoding)


def _estimate(done: int, fraction: float) -> int | None:
    return int(done / fraction) if fraction > 0.01 else None


def read_head(content: bytes) -> Sheet:
    """The headers and the first few rows: what the mapping step shows."""
    sheet = read_sheet(content, limit=SAMPLE_ROWS)
    if not any(sheet.headers):
        raise spreadsheets.refuse(_("The first row must name the columns."))
    return sheet


# --- the plan -------------------------------------------------------------------------------

@dataclass
class RowReport:
    row: int  # the row's number in the file
    title: str
    status: str = NEW
    target_id: int | None = None  # the record matched, or created once applied
    target_row: int | None = None  # an earlier row of the file that it matched
    found_by: str | None = None
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def error(self) -> str | None:
        return " ".join(self.errors) or None

    def as_dict(self) -> dict:
        return {"row": self.row, "title": self.title, "status": self.status,
                "target_id": self.target_id, "target_row": self.target_row,
                "found_by": self.found_by, "changes": self.changes, "errors": self.errors,
                "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> RowReport:
        return cls(**{k: data.get(k) for k in ("row", "title", "status", "target_id",
                                               "target_row", "found_by", "note")},
                   changes=list(data.get("changes") or []), errors=list(data.get("errors") or []))


class _Record:
    """A company or contact as the plan sees it: stored (id) or to be made by a row."""

    __slots__ = ("id", "row", "values", "categories", "links", "parent", "claimed", "changes",
                 "parent_ref", "added_categories", "new_links", "positions")

    def __init__(self, id_: int | None, values: dict, row: int | None = None):
        self.id, self.row, self.values = id_, row, values
        self.categories: list[str] = []
        self.links: dict[int, str] = {}  # contacts: company id -> position
        self.parent: _Record | None = None
        self.claimed: int | None = None  # the first row of the file that matched it
        self.changes: set[str] = set()
        self.parent_ref: str | None = None
        self.added_categories: list[str] = []
        self.new_links: dict[int, str] = {}
        self.positions: dict[int, str] = {}


@dataclass
class Plan:
    kind: str
    filename: str
    sha256: str
    mapping: dict[str, list[int]]
    rows: list[RowReport] = field(default_factory=list)
    new: list[tuple[RowReport, _Record]] = field(default_factory=list, repr=False)
    changed: list[_Record] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not any(r.errors for r in self.rows)

    @property
    def error_rows(self) -> list[RowReport]:
        return [r for r in self.rows if r.errors]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for r in self.rows:
            out[ERROR if r.errors else r.status] += 1
        return out

    @property
    def changes(self) -> bool:
        return bool(self.new or self.changed)


def _norm_text(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _split(text: str, pattern: re.Pattern) -> list[str]:
    return [part.strip() for part in pattern.split(text) if part.strip()]


def _flag(text: str) -> bool | None:
    folded = text.casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    return None


def _schema_errors(exc: MaValidationError, labels: dict[str, str]) -> list[str]:
    out = []

    def walk(messages, prefix: str):
        if isinstance(messages, dict):
            for key, value in messages.items():
                walk(value, prefix if isinstance(key, int) else labels.get(key, str(key)))
        elif isinstance(messages, list):
            for m in messages:
                walk(m, prefix)
        else:
            text = str(messages)
            if text == "String does not match expected pattern.":
                text = _("Only digits, Latin letters and hyphens, up to 32.")
            out.append(f"{prefix}: {translate_library_message(text)}")

    walk(exc.messages, "")
    return out


class _Planner:
    """What the rows of one file do to the stored records, in memory."""

    def __init__(self, actor: User, plan: Plan, columns: dict[str, list[int]]):
        self.actor, self.plan = actor, plan
        self.scope = services.Scope(actor)
        self.labels = {f.key: str(f.label) for f in FIELDS[plan.kind]}
        self.columns = columns  # field -> indexes in the rows read
        self.by_id: dict[int, _Record] = {}

    def cells(self, values: list[str], key: str) -> list[str]:
        return [values[i] for i in self.columns.get(key, ()) if values[i]]

    def cell(self, values: list[str], key: str) -> str:
        found = self.cells(values, key)
        return found[0] if found else ""

    def users_by_email(self, emails: set[str]) -> dict[str, User]:
        out: dict[str, User] = {}
        ordered = sorted(emails)
        for i in range(0, len(ordered), 1000):
            for user in db.session.scalars(select(User).where(
                    func.lower(User.email).in_(ordered[i:i + 1000]))):
                out[user.email.lower()] = user
        return out


def _index(index: dict[str, list[_Record]], key: str, record: _Record) -> None:
    if key:
        bucket = index.setdefault(key, [])
        if record not in bucket:
            bucket.append(record)


def _phone_key(phone: str) -> str:
    d = services.digits(phone)
    return d if len(d) >= 6 else ""


# --- companies ------------------------------------------------------------------------------

COMPANY_TEXT = ("legal_name", "short_name", "industry", "website", "notes", "status", "tax_number")
COMPANY_FLAGS = ("is_client", "is_supplier", "is_partner")


class _Companies(_Planner):
    def __init__(self, actor: User, plan: Plan, columns: dict[str, list[int]]):
        super().__init__(actor, plan, columns)
        self.schema = CompanyIn()
        defaults = services.company_fields(self.schema.load({"legal_name": "-"}))
        defaults.pop("legal_name")
        self.defaults = defaults
        self.status_words = {fold(w): code for code, words in STATUS_WORDS.items() for w in words}
        self.status_words.update({fold(str(label)): code for code, label in STATUS_NAMES.items()})
        self.by_tax: dict[str, list[_Record]] = {}
        self.by_email: dict[str, list[_Record]] = {}
        self.by_phone: dict[str, list[_Record]] = {}
        self.by_name: dict[str, list[_Record]] = {}
        self._load()

    def _load(self) -> None:
        cols = (Company.id, Company.legal_name, Company.short_name, Company.tax_number,
                Company.is_client, Company.is_supplier, Company.is_partner, Company.tags,
                Company.industry, Company.addresses, Company.phones, Company.emails,
                Company.website, Company.responsible_id, Company.status, Company.notes,
                Company.parent_id)
        names = [c.key for c in cols]
        parents: dict[int, int] = {}
        for row in db.session.execute(select(*cols).where(Company.archived_at.is_(None))):
            values = dict(zip(names, row, strict=True))
            record = _Record(values.pop("id"), values)
            if values["parent_id"]:
                parents[record.id] = values["parent_id"]
            self.by_id[record.id] = record
            self._remember(record)
        for company_id, parent_id in parents.items():
            self.by_id[company_id].parent = self.by_id.get(parent_id)
        for company_id, name in db.session.execute(
                select(CompanyCategory.company_id, Category.name)
                .join(Category, Category.id == CompanyCategory.category_id)
                .order_by(Category.name)):
            if company_id in self.by_id:
                self.by_id[company_id].categories.append(name)

    def _remember(self, record: _Record) -> None:
        v = record.values
        _index(self.by_tax, v["tax_number"] or "", record)
        for email in v["emails"]:
            _index(self.by_email, email.lower(), record)
        for phone in v["phones"]:
            _index(self.by_phone, _phone_key(phone), record)
        _index(self.by_name, fold(v["legal_name"]), record)

    def run(self, rows: list[tuple[int, list[str]]], progress: Progress | None) -> None:
        emails = {self.cell(v, "responsible").lower() for _n, v in rows} - {""}
        self.users = self.users_by_email(emails)
        for done, (number, values) in enumerate(rows, start=1):
            self.row(number, values)
            if progress is not None and done % 5000 == 0:
                progress("checking", done, len(rows))
        self.parents()
        self.plan.changed = [r for r in self.by_id.values() if r.changes]
        if progress is not None:
            progress("checking", len(rows), len(rows))

    def _input(self, values: list[str], report: RowReport) -> dict:
        data: dict = {}
        for key in ("legal_name", "short_name", "industry", "website", "notes"):
            text = self.cell(values, key)
            if text:
                data[key] = _norm_text(text)
        tax = re.sub(r"\s+", "", self.cell(values, "tax_number"))
        if tax:
            data["tax_number"] = tax
        status = fold(self.cell(values, "status"))
        if status:
            code = self.status_words.get(status)
            if code is None:
                report.errors.append(_("%(field)s: write prospect, active or former.",
                                       field=self.labels["status"]))
            else:
                data["status"] = code
        roles = self.cell(values, "roles")
        if roles:
            words = {fold(w) for w in _split(roles, _MANY)}
            flags = {key: any(w in words for w in names) for key, names in ROLE_WORDS.items()}
            if not words <= _ROLE_KNOWN:
                report.errors.append(_("%(field)s: write client, supplier or partner (several "
                                       "separated by commas).", field=self.labels["roles"]))
            else:
                data.update(flags)
        for key, pattern in (("phones", _MANY), ("emails", _MANY), ("tags", _MANY),
                             ("categories", _LINES)):
            items = [x for text in self.cells(values, key) for x in _split(text, pattern)]
            if items:
                data[key] = items
        addresses = [x for text in self.cells(values, "addresses") for x in _split(text, _NEWLINES)]
        if addresses:
            data["addresses"] = [{"kind": "office", "text": a} for a in addresses]
        if "emails" in data:
            data["emails"] = [e.lower().removeprefix("mailto:") for e in data["emails"]]
        return data

    def row(self, number: int, values: list[str]) -> None:
        report = RowReport(number, self.cell(values, "legal_name") or self.cell(values, "short_name"))
        self.plan.rows.append(report)
        if any(len(v) > MAX_CELL for v in values):
            report.errors.append(_("A cell is longer than %(n)d characters.", n=MAX_CELL))
        data = self._input(values, report)
        try:
            loaded = self.schema.load(data, partial=True)
        except MaValidationError as exc:
            report.errors.extend(_schema_errors(exc, self.labels))
            loaded = {}
        cols = services.company_fields(loaded)
        categories = services._clean_list(loaded.get("categories", []))
        responsible = self.cell(values, "responsible").lower()
        user = self.users.get(responsible) if responsible else None
        if responsible and user is None:
            report.errors.append(_("%(field)s: there is no account with the e-mail %(email)s.",
                                   field=self.labels["responsible"], email=responsible))
        if report.errors:
            report.status = ERROR
            return
        target, found_by = self.match(cols)
        parent_ref = self.cell(values, "parent")
        if target is None:
            if not cols.get("legal_name"):
                report.errors.append(_("%(field)s: a new company needs its legal name.",
                                       field=self.labels["legal_name"]))
                report.status = ERROR
                return
            if user is not None and user.id != self.actor.id:
                error = self.scope.responsible_error(user)
                if error:
                    report.errors.append(f"{self.labels['responsible']}: {error}")
                    report.status = ERROR
                    return
            record = _Record(None, {**self.defaults, **cols,
                                    "responsible_id": user.id if user else self.actor.id},
                             row=number)
            record.categories = categories
            record.claimed, record.parent_ref = number, parent_ref or None
            self._remember(record)
            self.plan.new.append((report, record))
            report.status = NEW
            return
        report.found_by = found_by
        if target.claimed is not None:
            report.status, report.target_row = DUPLICATE, target.claimed
            report.target_id = target.id
            return
        target.claimed = number
        if target.id is not None and not self.scope.edits_company(target.values["responsible_id"]):
            report.status = DUPLICATE
            if self.scope.sees_company(target.id, target.values["responsible_id"]):
                report.target_id = target.id
                report.note = _("Another manager keeps this company; it is left as it is.")
            else:
                report.note = _("A company with this %(key)s is kept by another manager; it is "
                                "left as it is.", key=FOUND_BY[found_by])
            return
        report.target_id = target.id
        self.merge(target, cols, categories, user, report)
        target.parent_ref = parent_ref or None
        if not report.errors:
            report.status = UPDATE if target.changes else UNCHANGED

    def match(self, cols: dict) -> tuple[_Record | None, str | None]:
        tax = cols.get("tax_number")
        if tax and self.by_tax.get(tax):
            return self.by_tax[tax][0], "tax_number"

        def fits(record: _Record) -> bool:  # two different tax numbers: two companies
            other = record.values["tax_number"]
            return not (tax and other and other != tax)

        for key, index, keys in (("email", self.by_email, cols.get("emails", [])),
                                 ("phone", self.by_phone, [_phone_key(p) for p in cols.get("phones", [])]),
                                 ("name", self.by_name, [fold(cols.get("legal_name", ""))])):
            for k in keys:
                for record in index.get(k, ()) if k else ():
                    if fits(record):
                        return record, key
        return None, None

    def merge(self, record: _Record, cols: dict, categories: list[str], user: User | None,
              report: RowReport) -> None:
        v = record.values
        for key in (*COMPANY_TEXT, *COMPANY_FLAGS):
            if key in cols and cols[key] != v[key] and not (
                    isinstance(v[key], str) and _norm_text(v[key]) == cols[key]):
                v[key] = cols[key]
                record.changes.add(key)
        for key, norm in (("phones", lambda p: services.digits(p) or p.casefold()),
                          ("emails", str.lower)):
            have = {norm(x) for x in v[key]}
            added = [x for x in cols.get(key, []) if norm(x) not in have and not have.add(norm(x))]
            if added:
                v[key] = [*v[key], *added]
                record.changes.add(key)
        have = {fold(a["text"]) for a in v["addresses"]}
        added = [a for a in cols.get("addresses", []) if fold(a["text"]) not in have
                 and not have.add(fold(a["text"]))]
        if added:
            v["addresses"] = [*v["addresses"], *added]
            record.changes.add("addresses")
        if "tags" in cols:
            tags = [t for t in v["tags"].split(",") if t]
            more = [t for t in cols["tags"].split(",") if t and t not in tags]
            if more:
                v["tags"] = services.company_fields({"tags": tags + more})["tags"]
                record.changes.add("tags")
        have = {c.casefold() for c in record.categories}
        more = [c for c in categories if c.casefold() not in have and not have.add(c.casefold())]
        if more:
            record.categories += more
            record.added_categories += more
            record.changes.add("categories")
        if user is not None and user.id != v["responsible_id"]:
            error = self.scope.responsible_error(user)
            if error:
                report.errors.append(f"{self.labels['responsible']}: {error}")
                report.status = ERROR
                return
            v["responsible_id"] = user.id
            record.changes.add("responsible_id")
        report.changes = sorted(record.changes)

    def parents(self) -> None:
        """The holdings the file names: a parent stored (and visible) or made by a row."""
        reports = {r.row: r for r in self.plan.rows}
        records = [rec for _r, rec in self.plan.new if rec.parent_ref] + [
            rec for rec in self.by_id.values() if rec.claimed is not None and rec.parent_ref]
        for record in records:
            ref = record.parent_ref
            report = reports[record.claimed]
            if report.status in (ERROR, DUPLICATE):
                continue
            current = record.parent
            if current is not None and (re.sub(r"\s+", "", ref) == current.values["tax_number"]
                                        or fold(ref) == fold(current.values["legal_name"])):
                continue  # names the parent it has
            parent, error = self.find_parent(ref)
            if error is None and parent is record:
                error = _("A company cannot be inside itself or its own subsidiary.")
            if error is None:
                error = services.holding_error({r: r.parent for r in self._chain(parent)},
                                               record, parent)
            if error:
                report.errors.append(f"{self.labels['parent']}: {error}")
                report.status = ERROR
                continue
            record.parent = parent
            if record.id is not None:
                record.changes.add("parent_id")
                report.changes = sorted(record.changes)
                report.status = UPDATE

    @staticmethod
    def _chain(record: _Record) -> list[_Record]:
        out, seen = [], set()
        while record is not None and id(record) not in seen and len(out) <= services.MAX_DEPTH + 1:
            seen.add(id(record))
            out.append(record)
            record = record.parent
        return out

    def find_parent(self, ref: str) -> tuple[_Record | None, str | None]:
        def visible(r: _Record) -> bool:
            return r.id is None or self.scope.sees_company(r.id, r.values["responsible_id"])

        tax = re.sub(r"\s+", "", ref)
        found = [r for r in self.by_tax.get(tax, []) if visible(r)] if _TAX.fullmatch(tax) else []
        if not found:
            found = [r for r in self.by_name.get(fold(ref), []) if visible(r)]
        if not found:
            return None, _("No such parent company: %(name)s.", name=ref)
        if len(found) > 1:
            return None, _("Several companies are called %(name)s; name the parent by its tax "
                           "number.", name=ref)
        return found[0], None

    def apply(self) -> dict[str, int]:
        new = [record for _r, record in self.plan.new]
        rows = [{**r.values, "parent_id": r.parent.id if r.parent else None} for r in new]
        ids = services.insert_companies(rows)
        for record, company_id in zip(new, ids, strict=True):
            record.id = company_id
        for report, record in self.plan.new:
            report.target_id = record.id
        # parents made by the same file have their ids only now
        late = [r for r, row in zip(new, rows, strict=True)
                if r.parent is not None and row["parent_id"] is None]
        changed = self.plan.changed
        state = ("legal_name", "short_name", "tax_number", "phones", "emails")
        updates = []
        for record in changed:
            row = {"id": record.id, **{k: record.values[k] for k in state}}
            for key in record.changes - {"categories"}:
                row[key] = record.parent.id if key == "parent_id" and record.parent else \
                    (None if key == "parent_id" else record.values[key])
            updates.append(row)
        updates += [{"id": r.id, **{k: r.values[k] for k in state}, "parent_id": r.parent.id}
                    for r in late]
        services.update_companies(updates)
        names = [c for r in new for c in r.categories] + [c for r in changed
                                                          for c in r.added_categories]
        if names:
            ids_by_name = services.category_ids(names)
            services.link_categories(
                [(r.id, ids_by_name[c.lower()]) for r in new for c in r.categories]
                + [(r.id, ids_by_name[c.lower()]) for r in changed for c in r.added_categories])
        return {"created": len(new), "updated": len(changed)}


# --- contacts -------------------------------------------------------------------------------

CONTACT_TEXT = ("name", "notes", "birthday", "consent")
DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "%d.%m.%y")


def parse_date(text: str) -> date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
    return None


def messenger_items(text: str) -> list[dict]:
    out = []
    for item in _split(text, _LINES):
        kind, sep, handle = item.partition(":")
        if sep and kind.strip() and handle.strip() and " " not in kind.strip():
            out.append({"kind": kind.strip().lower(), "handle": handle.strip()})
        else:
            out.append({"kind": "other", "handle": item})
    return out


def messenger_text(items: list[dict]) -> str:
    return "; ".join(f"{m['kind']}: {m['handle']}" for m in items)


class _Contacts(_Planner):
    def __init__(self, actor: User, plan: Plan, columns: dict[str, list[int]]):
        super().__init__(actor, plan, columns)
        self.schema = ContactIn()
        defaults = services.contact_fields(self.schema.load({"name": "-"}))
        defaults.pop("name")
        self.defaults = defaults
        self.by_email: dict[str, list[_Record]] = {}
        self.by_phone: dict[str, list[_Record]] = {}
        self.by_name: dict[tuple[int | None, str], list[_Record]] = {}
        self._load()

    def _load(self) -> None:
        self.companies: dict[int, tuple[str, str | None]] = {}  # visible: id -> (name, tax)
        self.company_by_tax: dict[str, list[int]] = {}
        self.company_by_name: dict[str, list[int]] = {}
        for cid, name, tax, responsible in db.session.execute(
                select(Company.id, Company.legal_name, Company.tax_number, Company.responsible_id)
                .where(Company.archived_at.is_(None))):
            if not self.scope.sees_company(cid, responsible):
                continue
            self.companies[cid] = (name, tax)
            if tax:
                self.company_by_tax.setdefault(tax, []).append(cid)
            self.company_by_name.setdefault(fold(name), []).append(cid)
        cols = (Contact.id, Contact.name, Contact.phones, Contact.emails, Contact.messengers,
                Contact.birthday, Contact.consent, Contact.notes, Contact.created_by_id)
        names = [c.key for c in cols]
        links: dict[int, dict[int, str]] = {}
        for contact_id, company_id, position in db.session.execute(
                select(ContactLink.contact_id, ContactLink.company_id, ContactLink.position)):
            links.setdefault(contact_id, {})[company_id] = position
        self.hidden: set[int] = set()
        visible = set(self.companies)
        for row in db.session.execute(select(*cols).where(Contact.archived_at.is_(None))):
            values = dict(zip(names, row, strict=True))
            record = _Record(values.pop("id"), values)
            record.links = links.get(record.id, {})
            if not self.scope.sees_contact(values["created_by_id"], record.links, visible):
                self.hidden.add(record.id)
            self.by_id[record.id] = record
            self._remember(record)

    def _remember(self, record: _Record) -> None:
        v = record.values
        for email in v["emails"]:
            _index(self.by_email, email.lower(), record)
        for phone in v["phones"]:
            _index(self.by_phone, _phone_key(phone), record)
        for company_id in record.links or [None]:
            _index(self.by_name, (company_id, fold(v["name"])), record)

    def run(self, rows: list[tuple[int, list[str]]], progress: Progress | None) -> None:
        for done, (number, values) in enumerate(rows, start=1):
            self.row(number, values)
            if progress is not None and done % 5000 == 0:
                progress("checking", done, len(rows))
        self.plan.changed = [r for r in self.by_id.values() if r.changes]
        if progress is not None:
            progress("checking", len(rows), len(rows))

    def find_company(self, ref: str) -> tuple[int | None, str | None]:
        tax = re.sub(r"\s+", "", ref)
        found = self.company_by_tax.get(tax, []) if _TAX.fullmatch(tax) else []
        if not found:
            found = self.company_by_name.get(fold(ref), [])
        if not found:
            return None, _("No such company: %(name)s.", name=ref)
        if len(found) > 1:
            return None, _("Several companies are called %(name)s; name the company by its tax "
                           "number.", name=ref)
        return found[0], None

    def _input(self, values: list[str], report: RowReport) -> dict:
        data: dict = {}
        for key in ("name", "notes"):
            text = self.cell(values, key)
            if text:
                data[key] = _norm_text(text)
        for key in ("phones", "emails"):
            items = [x for text in self.cells(values, key) for x in _split(text, _MANY)]
            if items:
                data[key] = [e.lower().removeprefix("mailto:") for e in items] \
                    if key == "emails" else items
        messengers = [m for text in self.cells(values, "messengers") for m in messenger_items(text)]
        if messengers:
            data["messengers"] = messengers
        birthday = self.cell(values, "birthday")
        if birthday:
            when = parse_date(birthday)
            if when is None:
                report.errors.append(_("%(field)s: write the date as 31.12.1980 or 1980-12-31.",
                                       field=self.labels["birthday"]))
            else:
                data["birthday"] = when.isoformat()
        consent = self.cell(values, "consent")
        if consent:
            flag = _flag(consent)
            if flag is None:
                report.errors.append(_("%(field)s: write yes or no.", field=self.labels["consent"]))
            else:
                data["consent"] = flag
        return data

    def row(self, number: int, values: list[str]) -> None:
        report = RowReport(number, self.cell(values, "name"))
        self.plan.rows.append(report)
        if any(len(v) > MAX_CELL for v in values):
            report.errors.append(_("A cell is longer than %(n)d characters.", n=MAX_CELL))
        data = self._input(values, report)
        try:
            loaded = self.schema.load(data, partial=True)
        except MaValidationError as exc:
            report.errors.extend(_schema_errors(exc, self.labels))
            loaded = {}
        cols = services.contact_fields(loaded)
        company_ref, position = self.cell(values, "company"), self.cell(values, "position")
        company_id = None
        if company_ref:
            company_id, error = self.find_company(company_ref)
            if error:
                report.errors.append(f"{self.labels['company']}: {error}")
        elif position:
            report.errors.append(_("%(field)s: a position needs the company.",
                                   field=self.labels["position"]))
        if report.errors:
            report.status = ERROR
            return
        target, found_by = self.match(cols, company_id)
        if target is None:
            if not cols.get("name"):
                report.errors.append(_("%(field)s: a new contact needs a name.",
                                       field=self.labels["name"]))
                report.status = ERROR
                return
            record = _Record(None, {**self.defaults, **cols}, row=number)
            if company_id is not None:
                record.links = {company_id: position}
            record.claimed = number
            self._remember(record)
            self.plan.new.append((report, record))
            report.status = NEW
            return
        report.found_by = found_by
        if target.id is not None and target.id in self.hidden:
            report.status = DUPLICATE
            report.note = _("A contact with this %(key)s is kept by another manager; it is left "
                            "as it is.", key=FOUND_BY[found_by])
            return
        first = target.claimed is None
        if first:
            target.claimed = number
        else:
            report.target_row = target.claimed
        report.target_id = target.id
        before = set(target.changes)
        self.merge(target, cols, company_id, position, replace=first)
        changed = target.changes - before or (target.id is None and company_id in target.new_links)
        if target.id is None:  # joins a contact an earlier row makes
            report.status = UPDATE if changed else DUPLICATE
        else:
            report.status = UPDATE if changed else UNCHANGED
        report.changes = sorted(target.changes - before) if target.id is not None else []
        self._remember(target)

    def match(self, cols: dict, company_id: int | None) -> tuple[_Record | None, str | None]:
        for key, index, keys in (("email", self.by_email, cols.get("emails", [])),
                                 ("phone", self.by_phone, [_phone_key(p) for p in cols.get("phones", [])])):
            for k in keys:
                found = index.get(k) if k else None
                if found:
                    return found[0], key
        for record in self.by_name.get((company_id, fold(cols.get("name", ""))), ()):
            if record.id is None or record.id not in self.hidden:
                return record, "name"
        return None, None

    def merge(self, record: _Record, cols: dict, company_id: int | None, position: str,
              replace: bool) -> None:
        """A row's values into a matched contact: the first row that matches it replaces
        what it names; later rows of the file add to it only."""
        v = record.values
        for key in CONTACT_TEXT:
            if key not in cols:
                continue
            same = cols[key] == v[key] or (isinstance(v[key], str) and _norm_text(v[key]) == cols[key])
            if not same and (replace or v[key] in ("", None, False)):
                v[key] = cols[key]
                record.changes.add(key)
        for key, norm in (("phones", lambda p: services.digits(p) or p.casefold()),
                          ("emails", str.lower)):
            have = {norm(x) for x in v[key]}
            added = [x for x in cols.get(key, []) if norm(x) not in have and not have.add(norm(x))]
            if added:
                v[key] = [*v[key], *added]
                record.changes.add(key)
        have = {(m["kind"].lower(), m["handle"].casefold()) for m in v["messengers"]}
        added = [m for m in cols.get("messengers", [])
                 if (m["kind"].lower(), m["handle"].casefold()) not in have
                 and not have.add((m["kind"].lower(), m["handle"].casefold()))]
        if added:
            v["messengers"] = [*v["messengers"], *added]
            record.changes.add("messengers")
        if company_id is None:
            return
        if company_id not in record.links:
            record.links[company_id] = position
            record.new_links[company_id] = position
            if record.id is not None:
                record.changes.add("companies")
        elif (position and record.links[company_id] != position and replace
              and company_id not in record.new_links and company_id not in record.positions):
            record.links[company_id] = position
            record.positions[company_id] = position
            record.changes.add("position")

    def apply(self) -> dict[str, int]:
        new = [record for _r, record in self.plan.new]
        ids = services.insert_contacts(self.actor, [dict(r.values) for r in new])
        for record, contact_id in zip(new, ids, strict=True):
            record.id = contact_id
        for report, record in self.plan.new:
            report.target_id = record.id
        for report in self.plan.rows:  # rows that joined a contact made by an earlier row
            if report.target_id is None and report.target_row is not None:
                report.target_id = next((rec.id for rep, rec in self.plan.new
                                         if rep.row == report.target_row), None)
        changed = self.plan.changed
        state = ("name", "phones", "emails")
        updates = []
        for record in changed:
            columns = record.changes - {"companies", "position"}
            if columns:
                updates.append({"id": record.id, **{k: record.values[k] for k in state},
                                **{k: record.values[k] for k in columns}})
        services.update_contacts(updates)
        links = [(r.id, company_id, pos) for r in new for company_id, pos in r.links.items()]
        links += [(r.id, company_id, pos) for r in changed for company_id, pos in r.new_links.items()]
        positions = [(r.id, company_id, pos) for r in changed for company_id, pos in r.positions.items()]
        services.save_contact_links(links, positions)
        return {"created": len(new), "updated": len(changed)}


PLANNERS = {"companies": _Companies, "contacts": _Contacts}


# --- the two steps -----------------------------------------------------------------------

def plan(actor: User, kind: str, sheet: Sheet, mapping: dict[str, list[int]], *,
         filename: str = "", sha256: str = "", progress: Progress | None = None,
         columns_kept: bool = False) -> tuple[Plan, _Planner]:
    """Check every row of a sheet; change nothing. `mapping` names columns of the file;
    with `columns_kept` the sheet holds only the mapped columns, in sorted order (what
    read_sheet(content, mapped_columns(mapping)) gives)."""
    if kind not in KINDS:
        raise ValidationError(_("Choose companies or contacts."))
    mapping = check_mapping(kind, mapping, sheet.width)
    if columns_kept:
        position = {c: i for i, c in enumerate(mapped_columns(mapping))}
        mapping_in_rows = {k: [position[c] for c in cols] for k, cols in mapping.items()}
    else:
        mapping_in_rows = mapping
    if not sheet.rows:
        raise spreadsheets.refuse(_("The file has no rows to import."))
    result = Plan(kind=kind, filename=filename[:255], sha256=sha256, mapping=mapping)
    planner = PLANNERS[kind](actor, result, mapping_in_rows)
    planner.run(sheet.rows, progress)
    return result, planner


def mapped_columns(mapping: dict[str, list[int]]) -> list[int]:
    return sorted({c for cols in mapping.values() for c in cols})


def apply(actor: User, kind: str, planned: tuple[Plan, _Planner]) -> dict[str, int]:
    """Write a plan all or nothing; the rows of its report get the records' ids."""
    result, planner = planned
    if not result.ok:
        raise ValidationError(_("The file has errors in %(n)d rows; nothing was imported.",
                                n=len(result.error_rows)))
    with db.session.begin_nested():  # a failure half-way leaves nothing behind
        counts = planner.apply()
        summary = result.counts()
        after = {"file": result.filename, "sha256": result.sha256, "rows": len(result.rows),
                 "created": counts["created"], "updated": counts["updated"],
                 "unchanged": summary[UNCHANGED], "duplicates": summary[DUPLICATE],
                 "updated_ids": sorted(r.id for r in result.changed)[:1000]}
        if result.changes:
            audit.record(actor, f"clients.import_{kind}", "company" if kind == "companies"
                         else "contact", None, after=after)
    return {**counts, "unchanged": summary[UNCHANGED], "duplicates": summary[DUPLICATE]}


def import_file(actor: User, kind: str, content: bytes, mapping: dict[str, list[int]] | None = None,
                *, filename: str = "", progress: Progress | None = None) -> tuple[Plan, dict]:
    """Read, check and write a file in one go (the mapping guessed unless given); refuses
    the whole file when a row has an error."""
    sheet = read_sheet(content, progress=progress)  # a workbook is parsed once
    if not any(sheet.headers):
        raise spreadsheets.refuse(_("The first row must name the columns."))
    mapping = mapping if mapping is not None else guess_mapping(kind, sheet.headers)
    planned = plan(actor, kind, sheet, mapping, filename=filename,
                   sha256=hashlib.sha256(content).hexdigest(), progress=progress)
    return planned[0], apply(actor, kind, planned)
