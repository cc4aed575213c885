"""search_views of the mail."""

from __future__ import annotations
