"""Money and amounts exactly as Babel's `format_currency` / `format_decimal` write them,
with the locale's pattern, symbols and currency read once per (locale, currency, format)
instead of at every amount.

    fmt = money_format("fr", "EUR")          # cached
    fmt(Decimal("1234.5"))                   # -> "1 234,50 €", as format_currency(...)
    money_format("en", "EUR", whole=True)(Decimal("50000"))   # -> "€50,000"
    decimal_format("de", "#,##0.0")(Decimal("12.25"))          # -> "12,2", as format_decimal

`format_currency` looks up the pattern, the currency's digits, symbol and name, the group and
decimal symbols at each call (the classification formats millions of amounts). Here they are
looked up once and the steps of `babel.numbers.NumberPattern.apply` for a plain pattern are
replayed in the same order (sign, normalise, quantize with the current decimal context, group,
fraction, prefix/suffix, quotes), so the text is the same; patterns this does not replay
(scientific, significant digits, `¤¤¤` names, no number) and non-finite amounts go to Babel.
`tests/test_money_format.py` compares both over many amounts, locales and currencies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.numbers import (
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_quantum,
    get_decimal_symbol,
    get_group_symbol,
    parse_pattern,
)

#: the pattern of `whole` amounts (no cents), as `cobro.formatting.money` asks Babel for it
WHOLE_PATTERN = "¤#,##0"
_QUOTED = re.compile(r"'([^']*)'")


def _unquote(text: str) -> str:
    return _QUOTED.sub(lambda m: m.group(1) or "'", text)


class _Plain:
    """One (locale, currency, pattern) of a plain number pattern: `NumberPattern.apply`
    with `decimal_quantization` and the group separator on, numbering system latn."""

    __slots__ = (
        "fallback",
        "frac_max",
        "frac_min",
        "group",
        "gsize",
        "gsize2",
        "int_min",
        "point",
        "prefix",
        "quantum",
        "scale",
        "suffix",
    )

    def __init__(
        self,
        locale: Locale,
        currency: str | None,
        pattern: object,
        currency_digits: bool,
        fallback: Callable[[Decimal], str],
    ) -> None:
        p = pattern
        self.fallback = fallback
        self.scale = p.scale  # type: ignore[attr-defined]
        if currency and currency_digits:
            digits = get_currency_precision(currency)
            self.frac_min, self.frac_max = digits, digits
        else:
            self.frac_min, self.frac_max = p.frac_prec  # type: ignore[attr-defined]
        self.quantum = get_decimal_quantum(self.frac_max)
        self.int_min = p.int_prec[0]  # type: ignore[attr-defined]
        self.gsize, self.gsize2 = p.grouping  # type: ignore[attr-defined]
        self.group = get_group_symbol(locale, numbering_system="latn")
        self.point = get_decimal_symbol(locale, numbering_system="latn")
        symbol = get_currency_symbol(currency, locale) if currency else ""

        def with_currency(text: str) -> str:  # the number holds no ¤: same as on the whole
            if not currency:
                return text
            return text.replace("¤¤", currency.upper()).replace("¤", symbol)

        self.prefix = tuple(with_currency(t) for t in p.prefix)  # type: ignore[attr-defined]
        self.suffix = tuple(with_currency(t) for t in p.suffix)  # type: ignore[attr-defined]

    def __call__(self, value: Decimal) -> str:
        if not value.is_finite():
            return self.fallback(value)
        value = value.scaleb(self.scale)
        negative = int(value.is_signed())
        value = abs(value).normalize()
        a, _, b = f"{value.quantize(self.quantum):f}".partition(".")
        if len(a) < self.int_min:
            a = "0" * (self.int_min - len(a)) + a
        gsize = self.gsize
        grouped = ""
        while len(a) > gsize:
            grouped = self.group + a[-gsize:] + grouped
            a = a[:-gsize]
            gsize = self.gsize2
        number = a + grouped
        b = b or "0"
        low, high = self.frac_min, self.frac_max
        if len(b) < low:
            b += "0" * (low - len(b))
        if not (high == 0 or (low == 0 and int(b) == 0)):
            while len(b) > low and b[-1] == "0":
                b = b[:-1]
            number += self.point + b
        text = self.prefix[negative] + number + self.suffix[negative]
        return _unquote(text) if "'" in text else text


@lru_cache(maxsize=256)
def money_format(locale: str, currency: str, whole: bool = False) -> Callable[[Decimal], str]:
    """Decimal -> text, as `format_currency(value, currency, locale=locale)` (`whole`: with
    format `¤#,##0` and `currency_digits=False`)."""
    parsed = Locale.parse(locale)
    pattern = parse_pattern(WHOLE_PATTERN) if whole else parsed.currency_formats["standard"]

    def babel(value: Decimal) -> str:
        if whole:
            return format_currency(
                value, currency, locale=parsed, format=WHOLE_PATTERN, currency_digits=False
            )
        return format_currency(value, currency, locale=parsed)

    if not _plain(pattern):
        return babel
    return _Plain(parsed, currency, pattern, not whole, babel)


@lru_cache(maxsize=256)
def decimal_format(locale: str, pattern: str) -> Callable[[Decimal], str]:
    """Decimal -> text, as `format_decimal(value, format=pattern, locale=locale)`."""
    parsed = Locale.parse(locale)
    number_pattern = parse_pattern(pattern)

    def babel(value: Decimal) -> str:
        return format_decimal(value, format=pattern, locale=parsed)

    if not _plain(number_pattern) or "¤" in pattern:
        return babel
    return _Plain(parsed, None, number_pattern, False, babel)


def _plain(pattern: Any) -> bool:
    """A pattern `_Plain` replays: no scientific notation, significant digits, currency
    names (`¤¤¤`, their plural depends on the amount) or empty number."""
    return (
        not pattern.exp_prec
        and "@" not in pattern.pattern
        and pattern.number_pattern != ""
        and not any("¤¤¤" in t for t in (*pattern.prefix, *pattern.suffix))
    )
