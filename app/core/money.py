"""Money is an integer of minor units and an ISO currency code; never a float."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import get_currency_precision
from flask_babel import format_currency

# Keeps minor units well inside a signed 64-bit column for any currency.
MAX_MAJOR = Decimal(10) ** 15


def to_minor(amount: Decimal, currency: str) -> int:
    """Major units (e.g. 1234.50 RUB) to minor units (123450), by the currency's precision."""
    return int((Decimal(amount) * 10 ** get_currency_precision(currency)).to_integral_value())


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor) / 10 ** get_currency_precision(currency)


def format_money(minor: int | None, currency: str | None) -> str:
    if minor is None or not currency:
        return ""
    return format_currency(from_minor(minor, currency), currency)
