"""The chart as an Excel workbook: export, and an all-or-nothing import with a preview.

Export writes one row per live post (one per holder when a post has several) in board
order; the same file imported again changes nothing.

Import runs in two steps. `plan_import` checks the upload (size, a real .xlsx zip that
is no zip bomb, the columns, every row) and changes nothing: it answers a plan with a
report per row. `apply_import` then creates the missing units, posts and holders through
the chart's services, so permissions and the audit log apply as for a change made by
hand. Existing units, posts and holders are matched (by name, title and e-mail) and left
alone; the import never renames, moves, archives or unassigns anything.

Columns are found by their header, in English or Russian:

    unit path | post | head | holder e-mail | holder name | acting

A unit path names the units from the company down, separated by " / " (a slash with a
space on each side; a slash without spaces is part of a name, as in "R/D").
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field

import openpyxl
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from app.core import audit, spreadsheets  # spreadsheets: defusedxml is asserted there
from app.core.errors import PermissionDenied, ValidationError
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services
from app.orgchart.models import Unit
from app.orgchart.schemas import SEPARATOR

SHEET = "Chart"
HEADER = ("unit path", "post", "head", "holder e-mail", "holder name", "acting")
# A slash with blanks (or the path's start or end) on both sides separates units.
_SPLIT = re.compile(r"(?:^|(?<=\s))/(?=\s|$)")
YES = "yes"

MAX_FILE_MB = 20
MAX_ENTRIES = 2000
MAX_UNCOMPRESSED = 200 * 1024 * 1024
MAX_RATIO = 100
MAX_ROWS = 20_000
MAX_COLUMNS = 20
MAX_NAME = 200
MAX_EMAIL = 254
MAX_POSITION = 100_000
XLSX_MIME = spreadsheets.XLSX_MIME

# Column keys and the headers (case-insensitive) that name them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "unit_path": ("unit path", "путь подразделения"),
    "post": ("post", "пост"),
    "email": ("holder e-mail", "holder email", "e-mail держателя", "email держателя"),
    "head": ("head", "руководитель"),
    "acting": ("acting", "исполняющий"),
}
COLUMN_RU = {"unit_path": "путь подразделения", "post": "пост", "email": "e-mail держателя"}
REQUIRED = ("unit_path", "post", "email")
_TRUE = {"yes", "y", "true", "1", "x", "+", "✓", "✔", "да", "д", "истина"}
_FALSE = {"", "no", "n", "false", "0", "-", "нет", "н", "ложь"}

NEW_UNITS, NEW_POST, NEW_HOLDER, UNCHANGED, ERROR = (
    "new unit(s)", "new post", "new holder", "unchanged", "error")
STATUS_LABELS = {
    NEW_UNITS: _l("new unit(s)"),
    NEW_POST: _l("new post"),
    NEW_HOLDER: _l("new holder"),
    UNCHANGED: _l("unchanged"),
    ERROR: _l("error"),
}
KINDS = ("company", "division", "department")  # deeper units are sections

UnitRef = int | tuple[str, ...]  # an existing unit's id, or the key of a unit to create
PostRef = int | tuple[UnitRef, str]  # an existing post's id, or (unit, folded title)
Missing = tuple[tuple[str, ...], str]  # a unit to create: its key and its name


# --- export ---------------------------------------------------------------------------

def walk(chart: charts.Chart) -> list[Unit]:
    """Units in board order: each unit, then its sub-units, siblings left to right."""
    out: list[Unit] = []
    seen: set[int] = set()
    stack = list(reversed(chart.roots()))
    while stack:
        unit = stack.pop()
        if unit.id in seen:
            continue
        seen.add(unit.id)
        out.append(unit)
        stack.extend(reversed(chart.children[unit.id]))
    return out


def _cell(ws, value, *, bold: bool = False) -> WriteOnlyCell:
    """A cell that is always text: a name starting with "=" must not become a formula."""
    text = ILLEGAL_CHARACTERS_RE.sub("", value or "")
    cell = WriteOnlyCell(ws, value=text)
    cell.data_type = "s"
    if bold:
        cell.font = Font(bold=True)
    return cell


def export_xlsx() -> bytes:
    """The live chart, one row per post and holder, in board order."""
    chart = charts.load()
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(SHEET)
    ws.freeze_panes = "A2"
    for letter, width in zip("ABCDEF", (60, 40, 8, 32, 28, 8), strict=True):
        ws.column_dimensions[letter].width = width
    ws.append([_cell(ws, h, bold=True) for h in HEADER])
    for unit in walk(chart):
        path = SEPARATOR.join(u.name for u in chart.path(unit.id))
        for post in chart.unit_posts[unit.id]:
            head = YES if post.is_head else ""
            holders = chart.own[post.id]
            if not holders:
                ws.append([_cell(ws, v) for v in (path, post.title, head, "", "", "")])
            for a in holders:
                ws.append([_cell(ws, v) for v in (path, post.title, head, a.user.email, a.user.name,
                                                  YES if a.acting else "")])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- the plan -------------------------------------------------------------------------

@dataclass
class RowReport:
    row: int  # the row's number in the sheet
    unit_path: str
    post: str
    holder: str
    status: str = UNCHANGED
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return " ".join(self.errors) or None

    @property
    def label(self) -> str:
        return self.error or str(STATUS_LABELS[self.status])


@dataclass
class NewUnit:
    key: tuple[str, ...]
    name: str
    kind: str
    parent: UnitRef | None
    position: int


@dataclass
class NewPost:
    key: tuple[UnitRef, str]
    unit: UnitRef
    title: str
    is_head: bool
    position: int


@dataclass
class NewHolder:
    post: PostRef
    user_id: int
    acting: bool


@dataclass
class ImportPlan:
    filename: str
    sha256: str
    rows: list[RowReport] = field(default_factory=list)
    units: list[NewUnit] = field(default_factory=list)
    posts: list[NewPost] = field(default_factory=list)
    holders: list[NewHolder] = field(default_factory=list)
    content: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return not any(r.errors for r in self.rows)

    @property
    def error_rows(self) -> list[RowReport]:
        return [r for r in self.rows if r.errors]

    @property
    def counts(self) -> dict[str, int]:
        return {"units": len(self.units), "posts": len(self.posts), "holders": len(self.holders)}

    @property
    def changes(self) -> bool:
        return any(self.counts.values())

    def by_status(self) -> dict[str, int]:
        out = dict.fromkeys(STATUS_LABELS, 0)
        for r in self.rows:
            out[ERROR if r.errors else r.status] += 1
        return out


def _refuse(message: str) -> ValidationError:
    return spreadsheets.refuse(message)


def _read_upload(upload: FileStorage | None) -> bytes:
    """The upload's bytes, refusing more than the cap before reading it all."""
    return spreadsheets.read_upload(upload, MAX_FILE_MB)


def _check_zip(content: bytes) -> None:
    """A workbook is a zip: look at its entries before any XML of it is parsed."""
    spreadsheets.check_xlsx_zip(content, max_entries=MAX_ENTRIES,
                                max_uncompressed=MAX_UNCOMPRESSED, max_ratio=MAX_RATIO)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold().replace("ё", "е")


def _flag(value) -> bool | None:
    """yes/no in a cell; None when the value means neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = _text(value).casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def split_path(path: str) -> list[str]:
    return [s.strip() for s in _SPLIT.split(path.strip())]


def _read_sheet(content: bytes) -> tuple[dict[str, int], list[tuple[int, tuple]]]:
    """The columns found by header, and the non-empty rows with their numbers."""
    try:
        wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # any defect of the file: not a readable workbook
        raise _refuse(_("The workbook could not be read; save it again as .xlsx and "
                        "upload it again.")) from exc
    try:
        if not wb.sheetnames:
            raise _refuse(_("The workbook has no sheet."))
        ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
        if not hasattr(ws, "reset_dimensions"):  # a chart sheet, not a worksheet
            raise _refuse(_("The first sheet holds no table."))
        ws.reset_dimensions()  # the stored dimension may be wrong; read what is there
        columns: dict[str, int] | None = None
        rows: list[tuple[int, tuple]] = []
        try:
            for number, values in enumerate(
                    ws.iter_rows(min_col=1, max_col=MAX_COLUMNS, values_only=True), start=1):
                if number > MAX_ROWS + 1:
                    raise _refuse(_("The sheet has more than %(n)d rows; split it into "
                                    "several files.", n=MAX_ROWS))
                if all(_text(v) == "" for v in values):
                    continue
                if columns is None:
                    columns = _columns(values)
                else:
                    rows.append((number, values))
        except ValidationError:
            raise
        except Exception as exc:
            raise _refuse(_("The workbook could not be read; save it again as .xlsx and "
                            "upload it again.")) from exc
    finally:
        wb.close()
    if columns is None or not rows:
        raise _refuse(_("The sheet has no rows to import."))
    return columns, rows


def _columns(header: tuple) -> dict[str, int]:
    found: dict[str, int] = {}
    names = {alias: key for key, aliases in COLUMNS.items() for alias in aliases}
    for index, value in enumerate(header):
        key = names.get(_fold(_text(value)))
        if key is not None:
            found.setdefault(key, index)
    missing = [key for key in REQUIRED if key not in found]
    if missing:
        english, russian = COLUMNS[missing[0]][0], COLUMN_RU[missing[0]]
        label = f"“{english}” (“{russian}”)"
        raise _refuse(_("The column %(name)s is missing. The first row must name the columns "
                        "unit path, post and holder e-mail (head and acting are optional).",
                        name=label))
    return found


def _users_by_email(emails: set[str]) -> dict[str, User]:
    out: dict[str, User] = {}
    ordered = sorted(emails)
    for i in range(0, len(ordered), 500):
        for user in db.session.scalars(select(User).where(
                func.lower(User.email).in_(ordered[i:i + 500]))):
            out[user.email.lower()] = user
    return out


class _Planner:
    """Resolves rows against the live chart and the things earlier rows will create."""

    def __init__(self, plan: ImportPlan, chart: charts.Chart):
        self.plan, self.chart = plan, chart
        self.child: dict[tuple[int | None, str], Unit] = {}
        for unit in walk(chart):
            parent = unit.parent_id if unit.parent_id in chart.units else None
            if parent is None and unit.kind != "company":
                continue
            self.child.setdefault((parent, _fold(unit.name)), unit)
        self.post_in: dict[tuple[int, str], int] = {}
        for unit_id, posts in chart.unit_posts.items():
            for post in posts:
                self.post_in.setdefault((unit_id, _fold(post.title)), post.id)
        self.new_units: dict[tuple[str, ...], NewUnit] = {}
        self.new_posts: dict[tuple[UnitRef, str], NewPost] = {}
        self.new_holders: set[tuple[PostRef, int]] = set()
        self.heads: dict[UnitRef, tuple[PostRef, str, int]] = {}  # marked head in the file
        self.next_unit_pos: dict[UnitRef | None, int] = {}
        self.next_post_pos: dict[UnitRef, int] = {}

    def _unit_position(self, parent: UnitRef | None) -> int:
        if parent not in self.next_unit_pos:
            siblings = self.chart.children.get(parent, []) if isinstance(parent, int) else (
                self.chart.roots() if parent is None else [])
            self.next_unit_pos[parent] = min(max((u.position for u in siblings), default=-1) + 1,
                                             MAX_POSITION)
        self.next_unit_pos[parent] += 1
        return min(self.next_unit_pos[parent] - 1, MAX_POSITION)

    def _post_position(self, unit: UnitRef) -> int:
        if unit not in self.next_post_pos:
            posts = self.chart.unit_posts.get(unit, []) if isinstance(unit, int) else []
            self.next_post_pos[unit] = max((p.position for p in posts), default=-1) + 1
        self.next_post_pos[unit] += 1
        return min(self.next_post_pos[unit] - 1, MAX_POSITION)

    def resolve_unit(self, segments: list[str]) -> tuple[UnitRef, int | None, list[Missing]]:
        """The unit a path names, the deepest existing unit on the path, and the (key,
        name) of each unit below it still to create."""
        parent: int | None = None
        missing: list[Missing] = []
        key: tuple[str, ...] = ()
        for name in segments:
            key = (*key, _fold(name))
            if not missing:
                found = self.child.get((parent, key[-1]))
                if found is not None:
                    parent = found.id
                    continue
            missing.append((key, name))
        return (key if missing else parent), parent, missing

    def cycle(self, segments: list[str]) -> bool:
        """Does a name come back lower in the path? Only the chart itself may vouch for such
        a path (a department named like its division): a repeat among units still to be
        created reads as a loop ("Acme / Sales / Acme")."""
        _unit, _deepest, missing = self.resolve_unit(segments)
        existing = len(segments) - len(missing)
        seen: set[str] = set()
        for depth, name in enumerate(segments):
            if _fold(name) in seen and depth >= existing:
                return True
            seen.add(_fold(name))
        return False

    def row(self, report: RowReport, segments: list[str], title: str, user: User | None,
            head: bool, acting: bool) -> None:
        unit, deepest, missing = self.resolve_unit(segments)
        post: PostRef = (unit, _fold(title))
        existing = self.post_in.get((unit, _fold(title))) if isinstance(unit, int) else None
        if existing is not None:
            post = existing
        if head:  # one head per unit: the chart's own, and what the file marks
            current = self.chart.head.get(unit) if isinstance(unit, int) else None
            marked = self.heads.get(unit)
            if current is not None and current.id != post:
                report.errors.append(_("This unit already has a head post: %(title)s.",
                                       title=current.title))
            elif existing is not None and current is None:
                report.errors.append(_("This post exists and is not the head of its unit; the "
                                       "import does not change existing posts. Make it the "
                                       "head on the board."))
            elif marked is not None and marked[0] != post:
                report.errors.append(_("Row %(row)d already marks “%(title)s” as the head of "
                                       "this unit.", row=marked[2], title=marked[1]))
        if report.errors:
            return
        if head:
            self.heads.setdefault(unit, (post, title, report.row))
        status = UNCHANGED
        parent: UnitRef | None = deepest
        depth = len(segments) - len(missing)
        for key, name in missing:
            if key not in self.new_units:
                kind = KINDS[depth] if depth < len(KINDS) else "section"
                self.new_units[key] = NewUnit(key, name, kind, parent, self._unit_position(parent))
                self.plan.units.append(self.new_units[key])
                status = NEW_UNITS
            parent, depth = key, depth + 1
        if existing is None:
            planned = self.new_posts.get(post)
            if planned is None:
                planned = NewPost(post, unit, title, head, self._post_position(unit))
                self.new_posts[post] = planned
                self.plan.posts.append(planned)
                status = status if status != UNCHANGED else NEW_POST
            planned.is_head = planned.is_head or head
        if user is not None:
            held = isinstance(post, int) and any(a.user_id == user.id
                                                 for a in self.chart.own.get(post, ()))
            if not held and (post, user.id) not in self.new_holders:
                self.new_holders.add((post, user.id))
                self.plan.holders.append(NewHolder(post, user.id, acting))
                status = status if status != UNCHANGED else NEW_HOLDER
        report.status = status


def require_editor(actor: User) -> None:
    """Importing is changing the chart: the same people as on the board may do it."""
    if not services.can_edit_chart(actor):
        raise PermissionDenied(_("Only administrators and holders of a post that manages the "
                                 "chart may change it."))


def plan_import(actor: User, upload: FileStorage | None) -> ImportPlan:
    """Check an uploaded workbook against the chart; change nothing.

    Problems with the file as a whole raise ValidationError (fields: "file"); problems
    with rows go into the plan's per-row report, and the plan is then not `ok`."""
    require_editor(actor)
    content = _read_upload(upload)
    _check_zip(content)
    columns, rows = _read_sheet(content)
    plan = ImportPlan(filename=(upload.filename or "")[:255],
                      sha256=hashlib.sha256(content).hexdigest(), content=content)

    def cell(values: tuple, key: str):
        index = columns.get(key)
        return values[index] if index is not None else None

    emails = {_text(cell(v, "email")).lower() for _n, v in rows} - {""}
    users = _users_by_email(emails)
    planner = _Planner(plan, charts.load())
    for number, values in rows:
        path, title = _text(cell(values, "unit_path")), _text(cell(values, "post"))
        email = _text(cell(values, "email")).lower()
        report = RowReport(number, path, title, email)
        plan.rows.append(report)
        segments = split_path(path) if path else []
        if not path:
            report.errors.append(_("The unit path is empty."))
        elif any(not s for s in segments):
            report.errors.append(_("A unit in the path has no name (two “ / ” in a row, or one "
                                   "at the start or end)."))
        elif planner.cycle(segments):
            report.errors.append(_("A unit appears twice in its own path (a cycle). If a new "
                                   "sub-unit really has the name of a unit above it, create it "
                                   "on the board first."))
        elif any(len(s) > MAX_NAME for s in segments):
            report.errors.append(_("A unit name is longer than %(n)d characters.", n=MAX_NAME))
        if not title:
            report.errors.append(_("The post title is empty."))
        elif len(title) > MAX_NAME:
            report.errors.append(_("The post title is longer than %(n)d characters.", n=MAX_NAME))
        user = None
        if email:
            user = users.get(email) if len(email) <= MAX_EMAIL else None
            if user is None:
                report.errors.append(_("There is no account with this e-mail."))
            elif not user.is_active:
                report.errors.append(_("The account with this e-mail is deactivated; it cannot "
                                       "hold a post."))
        flags = {}
        for key, label in (("head", _("head")), ("acting", _("acting"))):
            flags[key] = _flag(cell(values, key))
            if flags[key] is None:
                report.errors.append(_("Write “yes” in the column “%(column)s” or leave it "
                                       "empty.", column=label))
        if report.errors:
            report.status = ERROR
            continue
        planner.row(report, segments, title, user, bool(flags["head"]),
                    bool(flags["acting"]) and user is not None)
        if report.errors:
            report.status = ERROR
    return plan


# --- applying it ---------------------------------------------------------------------

def apply_import(actor: User, plan: ImportPlan) -> dict[str, int]:
    """Create what the plan found missing, through the chart's services, all or nothing."""
    if not plan.ok:
        raise ValidationError(_("The file has errors in %(n)d rows; nothing was imported.",
                                n=len(plan.error_rows)))
    require_editor(actor)
    units: dict[tuple[str, ...], int] = {}
    posts: dict[tuple[UnitRef, str], int] = {}

    def unit_id(ref: UnitRef | None) -> int | None:
        return units[ref] if isinstance(ref, tuple) else ref

    try:
        with db.session.begin_nested():  # a failure half-way leaves nothing behind
            for u in plan.units:
                unit = services.create_unit(actor, {"parent_id": unit_id(u.parent), "kind": u.kind,
                                                    "name": u.name, "position": u.position})
                units[u.key] = unit.id
            for p in plan.posts:
                post = services.create_post(actor, {"unit_id": unit_id(p.unit), "title": p.title,
                                                    "is_head": p.is_head, "position": p.position})
                posts[p.key] = post.id
            for h in plan.holders:
                post_id = posts[h.post] if isinstance(h.post, tuple) else h.post
                services.assign(actor, {"post_id": post_id, "user_id": h.user_id,
                                        "acting": h.acting})
            counts = plan.counts
            if plan.changes:
                audit.record(actor, "org.import", "org_unit", None,
                             after={**counts, "file": plan.filename, "sha256": plan.sha256,
                                    "rows": len(plan.rows)})
    finally:
        charts.forget()  # the next reader loads the chart as committed
    return counts
