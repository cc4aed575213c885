"""The board drawn as a picture (SVG or PNG) with matplotlib, cached by what it shows.

Divisions stand side by side as columns under their company (or under the unit zoomed
into); departments and sections are stacked inside each column; every box lists its
posts and who holds them ("vacant — held by ..." when a post is held from above).

Matplotlib is used through `Figure` and the Agg canvas directly (never pyplot, so no
global figure state and no GUI backend); rendering is serialised by a lock because
matplotlib's font cache is not thread-safe. Pictures are cached in this process by
(format, unit, language, a hash of the chart's content), at most 32 of them.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import matplotlib
from flask_babel import get_locale
from flask_babel import gettext as _
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from app.core.errors import NotFound, ValidationError
from app.orgchart import chart as charts
from app.orgchart.models import Unit

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
CACHE_SIZE = 32

FONT = 6.0  # points
TITLE_FONT = 7.0
LINE = FONT * 1.25 / 72  # inches per text line (drawn with linespacing 1.2)
TITLE_LINE = TITLE_FONT * 1.45 / 72
COLUMN = 2.7  # inches
GAP = 0.12
PAD = 0.06
INDENT = 0.12
MARGIN = 0.2
MAX_LINES_PER_POST = 3
MAX_PIXELS = 16_000  # per side of a PNG
DPI = 110
PALETTE = ("#e7f0fa", "#fdf0e1", "#e8f5ea", "#f6e8f4", "#fcf7dc", "#e6f4f4", "#efeaf8", "#f3ede6")
EDGE = "#6c757d"
TOP_FILL = "#dfe3e8"

# SVG keeps text as text (searchable, small) and stable ids; unhinted glyphs draw a large
# PNG about twice as fast and look the same at this size.
RC = {"svg.fonttype": "none", "svg.hashsalt": "org-chart", "text.hinting": "no_hinting"}

_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cache_lock = threading.Lock()
_render_lock = threading.Lock()
stats = {"renders": 0, "hits": 0}


@dataclass
class Box:
    x: float
    y: float
    width: float
    title: str
    lines: list[str]
    fill: str
    bold_edge: bool = False

    @property
    def height(self) -> float:
        return 2 * PAD + TITLE_LINE + len(self.lines) * LINE


@dataclass
class Layout:
    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    links: list[tuple[float, float, float, float]] = field(default_factory=list)


def fingerprint(chart: charts.Chart) -> str:
    """A hash of everything the drawing shows: units, posts, holders and their names."""
    h = hashlib.sha256()
    for u in sorted(chart.units.values(), key=lambda u: u.id):
        h.update(repr(("u", u.id, u.parent_id, u.kind, u.name, u.number, u.position)).encode())
    for p in sorted(chart.posts.values(), key=lambda p: p.id):
        h.update(repr(("p", p.id, p.unit_id, p.title, p.is_head, p.position)).encode())
    for post_id in sorted(chart.own):
        for a in chart.own[post_id]:
            h.update(repr(("a", a.id, a.post_id, a.user_id, a.user.name, a.acting)).encode())
    return h.hexdigest()


def render(fmt: str, unit_id: int | None = None) -> bytes:
    """The board (or the unit `unit_id` and everything below it) as SVG or PNG bytes."""
    if fmt not in FORMATS:
        raise ValidationError(_("Choose SVG or PNG."))
    chart = charts.load()
    if unit_id is not None and unit_id not in chart.units:
        raise NotFound(_("No such unit."))
    key = (fmt, unit_id, str(get_locale() or "en"), fingerprint(chart))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            stats["hits"] += 1
            return _cache[key]
    data = _draw(fmt, layout(chart, unit_id))
    with _cache_lock:
        stats["renders"] += 1
        _cache[key] = data
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# --- layout -----------------------------------------------------------------------------

def _title(unit: Unit) -> str:
    return f"{unit.number} · {unit.name}" if unit.number else unit.name


def _post_lines(chart: charts.Chart, unit: Unit, width: float) -> list[str]:
    chars = max(12, int((width - 2 * PAD) * 72 / (FONT * 0.58)))
    lines: list[str] = []
    for post in chart.unit_posts.get(unit.id, []):
        holding = chart.holding(post)
        names = ", ".join(u.name for u in holding.users)
        if holding.from_post is None and names:
            acting = {a.user_id for a in chart.own.get(post.id, []) if a.acting}
            names = ", ".join(u.name + (" " + _("(acting)") if u.id in acting else "")
                              for u in holding.users)
            text = f"{post.title}: {names}"
        elif names:
            text = f"{post.title}: " + _("vacant — held by %(names)s", names=names)
        else:
            text = f"{post.title}: " + _("vacant")
        wrapped = textwrap.wrap(text, chars, subsequent_indent="  ") or [""]
        if len(wrapped) > MAX_LINES_PER_POST:
            wrapped = wrapped[:MAX_LINES_PER_POST]
            wrapped[-1] = wrapped[-1][: chars - 1] + "…"
        lines.extend(wrapped)
    return lines


def _subtree(chart: charts.Chart, unit: Unit) -> list[tuple[Unit, int]]:
    """The unit's descendants in board order with their depth below it (1, 2, ...)."""
    out: list[tuple[Unit, int]] = []
    seen = {unit.id}
    stack = [(u, 1) for u in reversed(chart.children.get(unit.id, []))]
    while stack:
        u, depth = stack.pop()
        if u.id in seen:
            continue
        seen.add(u.id)
        out.append((u, depth))
        stack.extend((c, depth + 1) for c in reversed(chart.children.get(u.id, [])))
    return out


def layout(chart: charts.Chart, unit_id: int | None = None) -> Layout:
    """Where every box goes, in inches from the top left corner."""
    tops = [chart.units[unit_id]] if unit_id is not None else chart.roots()
    boxes: list[Box] = []
    links: list[tuple[float, float, float, float]] = []
    if not tops:
        empty = Box(MARGIN, MARGIN, COLUMN, _("The chart is empty."), [], TOP_FILL)
        return Layout(COLUMN + 2 * MARGIN, empty.height + 2 * MARGIN, [empty])
    x = MARGIN
    top_boxes: list[tuple[Box, list[Unit], float]] = []
    for top in tops:
        columns = chart.children.get(top.id, [])
        span = max(1, len(columns)) * (COLUMN + GAP) - GAP
        box = Box(x, MARGIN, span, _title(top), _post_lines(chart, top, span), TOP_FILL, True)
        top_boxes.append((box, columns, x))
        boxes.append(box)
        x += span + 2 * GAP
    band = max(b.height for b, _c, _x in top_boxes)
    column_top = MARGIN + band + 2 * GAP
    bottom = column_top
    for n, (top_box, columns, x0) in enumerate(top_boxes):
        for i, division in enumerate(columns):
            cx = x0 + i * (COLUMN + GAP)
            fill = PALETTE[(n + i) % len(PALETTE)]
            y = column_top
            head = Box(cx, y, COLUMN, _title(division), _post_lines(chart, division, COLUMN), fill, True)
            boxes.append(head)
            links.append((cx + COLUMN / 2, top_box.y + top_box.height, cx + COLUMN / 2, y))
            y += head.height + GAP
            for unit, depth in _subtree(chart, division):
                indent = min(depth - 1, 4) * INDENT
                width = COLUMN - indent
                box = Box(cx + indent, y, width, _title(unit), _post_lines(chart, unit, width), fill)
                boxes.append(box)
                y += box.height + GAP
            bottom = max(bottom, y)
    width = x - 2 * GAP + MARGIN
    return Layout(width, bottom - GAP + MARGIN, boxes, links)


# --- drawing ------------------------------------------------------------------------------

def _draw(fmt: str, plan: Layout) -> bytes:
    dpi = max(20, min(DPI, int(MAX_PIXELS / max(plan.width, plan.height))))
    with _render_lock, warnings.catch_warnings():
        # a name in a script the bundled font lacks is drawn as boxes, not an error
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig = Figure(figsize=(plan.width, plan.height), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, plan.width)
        ax.set_ylim(plan.height, 0)
        ax.axis("off")
        for x0, y0, x1, y1 in plan.links:
            ax.plot([x0, x1], [y0, y1], color=EDGE, linewidth=0.5)
        for box in plan.boxes:
            ax.add_patch(Rectangle((box.x, box.y), box.width, box.height, facecolor=box.fill,
                                   edgecolor=EDGE, linewidth=0.9 if box.bold_edge else 0.5))
            ax.text(box.x + PAD, box.y + PAD, box.title, fontsize=TITLE_FONT, fontweight="bold",
                    va="top", ha="left", parse_math=False, clip_on=False)
            if box.lines:
                ax.text(box.x + PAD, box.y + PAD + TITLE_LINE, "\n".join(box.lines),
                        fontsize=FONT, va="top", ha="left", linespacing=1.2, parse_math=False)
        out = io.BytesIO()
        with matplotlib.rc_context(RC):
            # no date in the file: equal charts give equal bytes
            fig.savefig(out, format=fmt, dpi=dpi,
                        metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return out.getvalue()
