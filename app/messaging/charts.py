"""The weekly trend of the mail analytics (sent and received per week) drawn with matplotlib.

As the chart drawing does: `Figure` on the Agg canvas (never pyplot), rendering serialised by
a lock, SVG with text kept as text and no date in either format, so equal data give equal
bytes. Pictures are cached in this process by a key of exactly what is drawn (format, title,
week labels, the two series, the legend's words); the same key is the picture's ETag.
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
from matplotlib.ticker import MaxNLocator

from app.core.charts import DrawingCache

DPI = 110
SENT_COLOR = "#0d6efd"
RECEIVED_COLOR = "#adb5bd"
RC = {"svg.fonttype": "none", "svg.hashsalt": "mail-trend", "text.hinting": "no_hinting"}

_render_lock = threading.Lock()


@dataclass(frozen=True)
class Trend:
    """What the picture shows; its words are already in the reader's language."""

    title: str
    labels: tuple[str, ...]
    sent: tuple[int, ...]
    received: tuple[int, ...]
    sent_label: str
    received_label: str

    def key(self, fmt: str) -> str:
        return hashlib.sha256(repr((fmt, self.title, self.labels, self.sent, self.received,
                                    self.sent_label, self.received_label)).encode()).hexdigest()


def trend(title: str, labels, sent, received) -> Trend:
    return Trend(title, tuple(labels), tuple(sent), tuple(received), _("Sent"), _("Received"))


# Drawn once per distinct data; `stats` counts renders and cache hits.
_drawings = DrawingCache(lambda data, fmt: _draw(data, fmt))
etag, render, clear_cache, stats = (_drawings.etag, _drawings.render, _drawings.clear,
                                    _drawings.stats)


def _draw(data: Trend, fmt: str) -> bytes:
    n = len(data.labels)
    with _render_lock, warnings.catch_warnings():
        # a name in a script the bundled font lacks is drawn as boxes, not an error
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig = Figure(figsize=(max(5.0, min(12.0, 1.2 + 0.45 * n)), 2.8), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        xs = range(n)
        width = 0.4
        ax.bar([x - width / 2 for x in xs], data.received, width, color=RECEIVED_COLOR,
               label=data.received_label)
        ax.bar([x + width / 2 for x in xs], data.sent, width, color=SENT_COLOR, label=data.sent_label)
        ax.set_title(data.title, fontsize=9, loc="left", parse_math=False)
        ax.set_xticks(list(xs))
        step = max(1, n // 13)  # no more than about 13 labels
        ax.set_xticklabels([lab if i % step == 0 else "" for i, lab in enumerate(data.labels)],
                           fontsize=7, rotation=0 if n <= 13 else 45)
        ax.tick_params(axis="y", labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0, top=max(1, *data.sent, *data.received) * 1.1)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        out = io.BytesIO()
        with matplotlib.rc_context(RC):
            fig.savefig(out, format=fmt, dpi=DPI,
                        metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return out.getvalue()
