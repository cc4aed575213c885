"""Due-time jobs of the mail."""

from __future__ import annotations
