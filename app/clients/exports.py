"""Export of companies and contacts to XLSX and CSV: what the user may see, in the columns
the import reads back (so a file exported and imported again changes nothing).

Companies: one row each. Contacts: one row per company they are at (among the companies the
user sees), or one row with no company. A company is named by its tax number, or by its
legal name when it has none. Lists are joined with "; " (addresses, which hold commas and
semicolons, one per line). CSV is UTF-8 with a BOM, separated by semicolons (what Excel
opens in Russian and English alike), and a cell that a spreadsheet would take for a formula
starts with an apostrophe, which the import removes again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.clients import services
from app.clients.imports import FIELDS, ROLE_NAMES, messenger_text
from app.clients.models import Category, Company, CompanyCategory, Contact, ContactLink
from app.core import spreadsheets
from app.core.models import User
from app.extensions import db

FORMATS = {"xlsx": spreadsheets.XLSX_MIME, "csv": "text/csv; charset=utf-8"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BATCH = 2000


def _ref(tax_number: str | None, legal_name: str | None) -> str:
    return tax_number or legal_name or ""


def headers(kind: str) -> list[str]:
    return [str(f.label) for f in FIELDS[kind]]


def company_rows(actor: User) -> Iterator[list[str]]:
    """The header, then a row per company the actor sees (not archived), oldest first."""
    yield headers("companies")
    parent = aliased(Company)
    visible = services.visible_companies(actor).where(Company.archived_at.is_(None))
    categories: dict[int, list[str]] = {}
    for company_id, name in db.session.execute(
            select(CompanyCategory.company_id, Category.name)
            .join(Category, Category.id == CompanyCategory.category_id)
            .where(CompanyCategory.company_id.in_(visible)).order_by(Category.name)):
        categories.setdefault(company_id, []).append(name)
    stmt = (select(Company.id, Company.legal_name, Company.short_name, Company.tax_number,
                   Company.is_client, Company.is_supplier, Company.is_partner, Company.status,
                   Company.tags, Company.industry, Company.addresses, Company.phones,
                   Company.emails, Company.website, User.email, parent.tax_number,
                   parent.legal_name, Company.notes)
            .outerjoin(User, User.id == Company.responsible_id)
            .outerjoin(parent, parent.id == Company.parent_id)
            .where(services.company_clause(actor), Company.archived_at.is_(None))
            .order_by(Company.id)
            .execution_options(yield_per=BATCH))
    for (cid, legal, short, tax, is_client, is_supplier, is_partner, status, tags, industry,
         addresses, phones, emails, website, responsible, parent_tax, parent_name,
         notes) in db.session.execute(stmt):
        roles = [ROLE_NAMES[k] for k, on in (("is_client", is_client), ("is_supplier", is_supplier),
                                              ("is_partner", is_partner)) if on]
        yield [legal, short, tax or "", "; ".join(roles), status,
               "; ".join(categories.get(cid, [])), ", ".join(t for t in tags.split(",") if t),
               industry, "\n".join(a["text"] for a in addresses or []), "; ".join(phones or []),
               "; ".join(emails or []), website, responsible or "", _ref(parent_tax, parent_name),
               notes]


def contact_rows(actor: User) -> Iterator[list[str]]:
    """The header, then a row per contact and company (both seen by the actor)."""
    yield headers("contacts")
    visible = services.visible_companies(actor).where(Company.archived_at.is_(None))
    links: dict[int, list[tuple[str, str]]] = {}
    for contact_id, tax, name, position in db.session.execute(
            select(ContactLink.contact_id, Company.tax_number, Company.legal_name,
                   ContactLink.position)
            .join(Company, Company.id == ContactLink.company_id)
            .where(ContactLink.company_id.in_(visible))
            .order_by(ContactLink.contact_id, ContactLink.company_id)):
        links.setdefault(contact_id, []).append((_ref(tax, name), position))
    stmt = (select(Contact.id, Contact.name, Contact.phones, Contact.emails, Contact.messengers,
                   Contact.birthday, Contact.consent, Contact.notes)
            .where(services.contact_clause(actor), Contact.archived_at.is_(None))
            .order_by(Contact.id)
            .execution_options(yield_per=BATCH))
    for cid, name, phones, emails, messengers, birthday, consent, notes in db.session.execute(stmt):
        for company, position in links.get(cid) or [("", "")]:
            yield [name, company, position, "; ".join(phones or []), "; ".join(emails or []),
                   messenger_text(messengers or []), birthday.isoformat() if birthday else "",
                   "yes" if consent else "no", notes]


ROWS = {"companies": company_rows, "contacts": contact_rows}


def _cell(ws, value: str, bold: bool = False) -> WriteOnlyCell:
    """A cell that is always text: a name starting with "=" must not become a formula."""
    cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", value or ""))
    cell.data_type = "s"
    if bold:
        cell.font = Font(bold=True)
    return cell


def to_xlsx(rows: Iterator[list[str]], title: str) -> bytes:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])
    ws.freeze_panes = "A2"
    header = next(rows)
    ws.append([_cell(ws, h, bold=True) for h in header])
    for row in rows:
        ws.append([_cell(ws, v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _guard(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def to_csv(rows: Iterator[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(next(rows))
    for row in rows:
        writer.writerow([_guard(v or "") for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def export(actor: User, kind: str, fmt: str) -> bytes:
    """Companies or contacts the actor sees, as an XLSX or CSV file."""
    rows = ROWS[kind](actor)
    return to_xlsx(rows, kind.capitalize()) if fmt == "xlsx" else to_csv(rows)
