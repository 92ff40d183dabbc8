"""The one way Cobro writes money, amounts, dates and JSON values, for people and machines.

Every function takes a `locale`; without one, the current language (`cobro.i18n`: the
dashboard user's, the CLI's `COBRO_LANG` / `LANG`), English by default. Texts stored in the
database (timeline summaries, alert messages) pass `locale="en"`: they are English sentences.

money(Decimal("1234.56"), "EUR", "fr")   -> "1 234,56 €"  (Babel, CLDR spacing)
money(Decimal("50000"), "EUR", whole=True) -> "€50,000"
amount(Decimal("1234.5"))                -> "1,234.50"    (no currency: table cells)
money_or_dash(Decimal("1359.36"), "EUR") -> "€1,359.36"   (None -> "—"; no currency: amount)
day(date(2026, 1, 5), "es")              -> "5/1/2026"    (English: ISO "2026-01-05")
moment(datetime(2026, 1, 5, 9, 3), "de")  -> "05.01.2026 09:03"
percent(Decimal("12.5"), "fr")           -> "12,5 %"
jsonable({"due": date(2026, 1, 5), "amount": Decimal("12.5")})
                                         -> {"due": "2026-01-05", "amount": "12.50"}
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from cobro.i18n import DEFAULT_LOCALE, current_locale
from cobro.money_format import decimal_format, money_format

CENTS = Decimal("0.01")


def money(amount: Any, currency: str, locale: str | None = None, *, whole: bool = False) -> str:
    """An amount with its currency, in the locale's way; `whole` drops the cents. Babel's
    `format_currency` text, its pattern read once per locale and currency
    (`cobro.money_format`: the classification formats millions of amounts)."""
    return money_format(locale or current_locale(), currency, whole)(Decimal(str(amount)))


def currency_name(code: str, locale: str | None = None) -> str:
    """A currency as a heading reads: "Euro (EUR)", "US dollar (USD)", "Dólar estadounidense
    (USD)"; an unknown code as it is."""
    from babel.numbers import get_currency_name

    name = get_currency_name(code, locale=locale or current_locale())
    return code if name == code else f"{name[:1].upper()}{name[1:]} ({code})"


def money_or_dash(
    value: Any, currency: str | None, locale: str | None = None, *, dash: str = "—"
) -> str:
    """`money` when there is an amount and a currency, the plain `amount` without a
    currency, `dash` without an amount: every amount the CLI prints goes through here."""
    if value is None:
        return dash
    return money(value, currency, locale) if currency else amount(value, locale)


def amount(value: Any, locale: str | None = None, digits: int = 2) -> str:
    """A plain number with grouping and `digits` decimals (no currency)."""
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return decimal_format(locale or current_locale(), pattern)(Decimal(str(value)))


def percent(value: Any, locale: str | None = None, digits: int = 1) -> str:
    """A percentage already multiplied by 100 (`12.5` -> "12.5 %"), in the locale's digits;
    a space before `%`, as the team's languages write it."""
    return amount(value, locale, digits) + " %"


@lru_cache(maxsize=16)
def _date_pattern(locale: str) -> str:
    """The locale's short numeric date (CLDR) with a four-digit year; English: ISO 8601,
    unambiguous for a team that reads both `01/05` orders."""
    if locale == DEFAULT_LOCALE:
        return "yyyy-MM-dd"
    from babel import Locale

    pattern = Locale.parse(locale).date_formats["short"].pattern
    return pattern.replace("yyyy", "y").replace("yy", "y").replace("y", "yyyy")


def day(value: date | datetime | None, locale: str | None = None, *, dash: str = "—") -> str:
    """A date as the locale writes it in a table: es "5/1/2026", fr "05/01/2026", de
    "05.01.2026", en "2026-01-05"; None -> `dash`."""
    if value is None:
        return dash
    from babel.dates import format_date

    if isinstance(value, datetime):
        value = value.date()
    return format_date(
        value, _date_pattern(locale or current_locale()), locale=locale or current_locale()
    )


def moment(value: datetime | None, locale: str | None = None, *, seconds: bool = False) -> str:
    """A date and a 24-hour time (as stored, UTC): "2026-01-05 09:03", de "05.01.2026 09:03"."""
    if value is None:
        return "—"
    return day(value, locale) + value.strftime(" %H:%M:%S" if seconds else " %H:%M")


def month(value: date, locale: str | None = None) -> str:
    """A month for an axis: "Jan 26", es "ene 26", de "Jan. 26"."""
    from babel.dates import format_date

    return format_date(value, "MMM yy", locale=locale or current_locale())


def day_month(value: date, locale: str | None = None) -> str:
    """A day of a week axis: "05 Jan", fr "05 janv.", de "05 Jan."."""
    from babel.dates import format_date

    return format_date(value, "dd MMM", locale=locale or current_locale())


def decimal_text(value: Decimal) -> str:
    """Exact decimal text, at least to the cent: 12.5 -> "12.50", 0.12345 -> "0.12345"."""
    if not value.is_finite():
        return _decimal_text(value)
    text = format(value.normalize(), "f")  # as many decimals as the exponent says
    dot = text.find(".")
    if dot < 0 or len(text) - dot < 3:  # fewer than 2 decimals: to the cent
        return format(value.quantize(CENTS), "f")
    return text


def _decimal_text(value: Decimal) -> str:
    """`decimal_text` as it was first written (what it does with NaN and infinities)."""
    short = value.normalize()
    if short.as_tuple().exponent > -2:  # type: ignore[operator]
        short = value.quantize(CENTS)
    return format(short, "f")


def jsonable(value: Any) -> Any:
    """JSON-ready: dates as ISO text, Decimals as exact text, containers walked."""
    kind = type(value)
    if kind in _AS_IS:  # the common scalars first (a classification writes millions)
        return value
    if kind is dict:
        return {k: v if type(v) in _AS_IS else jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


_AS_IS = frozenset({str, int, bool, float, type(None)})  # exact types jsonable returns as is
