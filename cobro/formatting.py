"""The one way Cobro writes money, amounts and JSON values, for people and for machines.

money(Decimal("1234.56"), "EUR", "fr")   -> "1 234,56 €"  (Babel, CLDR spacing)
money(Decimal("50000"), "EUR", whole=True) -> "€50,000"
amount(Decimal("1234.5"))                -> "1,234.50"    (no currency: table cells)
jsonable({"due": date(2026, 1, 5), "amount": Decimal("12.5")})
                                         -> {"due": "2026-01-05", "amount": "12.50"}
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, format_decimal

DEFAULT_LOCALE = "en"
CENTS = Decimal("0.01")


def money(amount: Any, currency: str, locale: str = DEFAULT_LOCALE, *, whole: bool = False) -> str:
    """An amount with its currency, in the locale's way; `whole` drops the cents."""
    value = Decimal(str(amount))
    if whole:
        return format_currency(
            value, currency, locale=locale, format="¤#,##0", currency_digits=False
        )
    return format_currency(value, currency, locale=locale)


def amount(value: Any, locale: str = DEFAULT_LOCALE, digits: int = 2) -> str:
    """A plain number with grouping and `digits` decimals (no currency)."""
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return format_decimal(Decimal(str(value)), format=pattern, locale=locale)


def decimal_text(value: Decimal) -> str:
    """Exact decimal text, at least to the cent: 12.5 -> "12.50", 0.12345 -> "0.12345"."""
    short = value.normalize()
    if short.as_tuple().exponent > -2:  # type: ignore[operator]
        short = value.quantize(CENTS)
    return format(short, "f")


def jsonable(value: Any) -> Any:
    """JSON-ready: dates as ISO text, Decimals as exact text, containers walked."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
