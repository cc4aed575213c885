"""What every module's charts share: the formats served, and a small cache of drawn pictures
keyed by their data, so a chart asked for again (a page reload, PNG after SVG) is not drawn
again. Drawing with matplotlib is the slow part of a chart page."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from flask_babel import gettext as _

from app.core.errors import ValidationError

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


class DrawingCache:
    """Pictures by their data's key (`data.key(fmt)`), the least recently used dropped."""

    def __init__(self, draw: Callable[[object, str], bytes], size: int = 64):
        self._draw, self._size = draw, size
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"renders": 0, "hits": 0}

    def etag(self, data, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValidationError(_("Choose SVG or PNG."))
        return data.key(fmt)[:32]

    def render(self, data, fmt: str) -> bytes:
        """The picture as SVG or PNG bytes, from the cache when the same data was drawn."""
        key = self.etag(data, fmt)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["hits"] += 1
                return self._cache[key]
        out = self._draw(data, fmt)
        with self._lock:
            self.stats["renders"] += 1
            self._cache[key] = out
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return out

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
