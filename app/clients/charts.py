"""Pictures of the client base's reports, drawn with matplotlib as PNG or SVG.

As the mail's trend chart does: a `Figure` on the Agg canvas (never pyplot), rendering
serialised by a lock, SVG with text kept as text and no date in either format, so equal data
give equal bytes. Pictures are cached in this process by a key of exactly what is drawn; the
same key is the picture's ETag. A chart is one of three styles:
- "bars": vertical bars per label, one bar per series side by side (manager activity);
- "stacked": vertical bars per label, the series stacked (sales per week or month by group);
- "hbars": horizontal bars, one series, with a note at the end of each bar (the funnel with
  its conversion, reasons with their counts).
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass

import matplotlib
from flask_babel import gettext as _
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from app.core.charts import DrawingCache

STYLES = ("bars", "stacked", "hbars")
DPI = 110
COLORS = ("#0d6efd", "#20c997", "#fd7e14", "#6f42c1", "#d63384", "#ffc107", "#198754",
          "#adb5bd")
RC = {"svg.fonttype": "none", "svg.hashsalt": "client-reports", "text.hinting": "no_hinting"}

_render_lock = threading.Lock()


@dataclass(frozen=True)
class Chart:
    """What a picture shows; its words are already in the reader's language. `series` is
    ((name, values per label), ...); `notes` is a text per label for "hbars"."""

    style: str
    title: str
    labels: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]
    notes: tuple[str, ...] = ()
    unit: str = ""
    integer: bool = True  # whole numbers on the value axis
    colors: tuple[int, ...] = ()  # "hbars": a colour (an index into COLORS) per bar

    def key(self, fmt: str) -> str:
        return hashlib.sha256(repr((fmt, self)).encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return not self.labels or not any(v for _name, values in self.series for v in values)


def chart(style: str, title: str, labels, series, notes=(), unit: str = "",
          integer: bool = True, colors=()) -> Chart:
    if style not in STYLES:
        raise ValueError(style)
    return Chart(style, str(title), tuple(str(x) for x in labels),
                 tuple((str(name), tuple(float(v) for v in values)) for name, values in series),
                 tuple(str(n) for n in notes), str(unit), integer, tuple(int(c) for c in colors))


# Drawn once per distinct data; `stats` counts renders and cache hits.
_drawings = DrawingCache(lambda data, fmt: _draw(data, fmt))
etag, render, clear_cache, stats = (_drawings.etag, _drawings.render, _drawings.clear,
                                    _drawings.stats)


def _size(data: Chart) -> tuple[float, float]:
    n = len(data.labels)
    if data.style == "hbars":
        return 8.0, max(2.4, min(9.0, 1.0 + 0.32 * n))
    return max(5.0, min(12.0, 1.6 + 0.5 * n * max(1, len(data.series)) ** 0.5)), 3.2


def _draw(data: Chart, fmt: str) -> bytes:
    with _render_lock, warnings.catch_warnings():
        # a name in a script the bundled font lacks is drawn as boxes, not an error
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig = Figure(figsize=_size(data), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_title(data.title, fontsize=9, loc="left", parse_math=False)
        if data.empty:
            ax.set_axis_off()
            ax.text(0.5, 0.5, _("Nothing in this period."), ha="center", va="center",
                    fontsize=9, color="#6c757d", transform=ax.transAxes, parse_math=False)
        elif data.style == "hbars":
            _hbars(ax, data)
        else:
            _bars(ax, data)
        fig.tight_layout()
        out = io.BytesIO()
        with matplotlib.rc_context(RC):
            fig.savefig(out, format=fmt, dpi=DPI,
                        metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return out.getvalue()


def _compact(value: float, _pos=None) -> str:
    """1 500 000 as 1.5M, 20 000 as 20k: amounts on an axis without an offset."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _value_axis(axis, data: Chart) -> None:
    if data.integer:
        axis.set_major_locator(MaxNLocator(integer=True))
    else:
        axis.set_major_formatter(FuncFormatter(_compact))


def _bars(ax, data: Chart) -> None:
    n, k = len(data.labels), len(data.series)
    xs = list(range(n))
    if data.style == "stacked":
        bottom = [0.0] * n
        for i, (name, values) in enumerate(data.series):
            ax.bar(xs, values, 0.7, bottom=bottom, color=COLORS[i % len(COLORS)], label=name)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        top = max(bottom, default=0)
    else:
        width = 0.8 / max(1, k)
        for i, (name, values) in enumerate(data.series):
            ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], values, width,
                   color=COLORS[i % len(COLORS)], label=name)
        top = max((v for _n, values in data.series for v in values), default=0)
    ax.set_xticks(xs)
    step = max(1, n // 13)  # no more than about 13 labels
    ax.set_xticklabels([lab if i % step == 0 else "" for i, lab in enumerate(data.labels)],
                       fontsize=7, rotation=0 if n <= 8 else 45,
                       ha="center" if n <= 8 else "right")
    ax.tick_params(axis="y", labelsize=7)
    _value_axis(ax.yaxis, data)
    ax.set_ylim(bottom=0, top=max(1.0, top) * 1.1)
    if data.unit:
        ax.set_ylabel(data.unit, fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    ax.set_axisbelow(True)
    if k > 1 or data.style == "stacked":
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _hbars(ax, data: Chart) -> None:
    n = len(data.labels)
    ys = list(range(n))
    _name, values = data.series[0]
    colors = [COLORS[c % len(COLORS)] for c in data.colors] if len(data.colors) == n \
        else COLORS[0]
    ax.barh(ys, values, 0.6, color=colors)
    ax.set_yticks(ys)
    ax.set_yticklabels(data.labels, fontsize=7)
    ax.invert_yaxis()  # the first label on top
    top = max(values, default=0)
    for y, value, note in zip(ys, values, data.notes or [""] * n, strict=True):
        if note:
            ax.text(value + max(1.0, top) * 0.01, y, note, va="center", fontsize=7,
                    parse_math=False)
    ax.set_xlim(left=0, right=max(1.0, top) * 1.25)
    ax.tick_params(axis="x", labelsize=7)
    _value_axis(ax.xaxis, data)
    if data.unit:
        ax.set_xlabel(data.unit, fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", linewidth=0.4, alpha=0.5)
    ax.set_axisbelow(True)
