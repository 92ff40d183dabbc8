"""The cached money formatter writes exactly what Babel's format_currency writes."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from babel.numbers import format_currency, format_decimal

from cobro.formatting import amount, money, percent
from cobro.money_format import WHOLE_PATTERN, decimal_format, money_format

LOCALES = [
    "en", "fr", "es", "de", "it", "pl", "pt", "nl", "de_CH", "fr_CH", "en_IN", "hi", "ar",
    "ja", "sv", "fi", "cs", "ru", "tr", "he", "fa", "bn", "sw", "en_US", "es_MX", "fr_CA",
]  # fmt: skip
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "PLN", "INR", "KWD", "CLF", "BHD", "XYZ"]


def _amounts() -> list[Decimal]:
    rnd = random.Random(17)
    fixed = ["0", "-0", "0.005", "0.015", "0.025", "-0.005", "1", "-1", "0.5", "1.5", "2.5"]
    fixed += ["999.995", "1000", "1234.5", "-1234.56", "12345678.9", "100000", "0.0001"]
    fixed += ["1E+3", "1.000", "123456789012345678.125", "-0.0049", "7.0E-10", "999999.999"]
    out = [Decimal(x) for x in fixed]
    for _ in range(300):
        digits = rnd.randint(0, 12)
        places = rnd.randint(0, 6)
        value = Decimal(rnd.randint(-(10**digits), 10**digits)).scaleb(-places)
        out.append(value)
    return out


AMOUNTS = _amounts()


@pytest.mark.parametrize("locale", LOCALES)
def test_same_text_as_babel(locale: str) -> None:
    for currency in CURRENCIES:
        fmt = money_format(locale, currency)
        whole = money_format(locale, currency, whole=True)
        for value in AMOUNTS:
            assert fmt(value) == format_currency(value, currency, locale=locale), (value, currency)
            assert whole(value) == format_currency(
                value, currency, locale=locale, format=WHOLE_PATTERN, currency_digits=False
            ), (value, currency)


def test_non_finite_amounts_go_to_babel() -> None:
    for text in ("Infinity", "-Infinity"):
        value = Decimal(text)
        assert money_format("fr", "EUR")(value) == format_currency(value, "EUR", locale="fr")


def test_money_uses_it() -> None:
    assert money(Decimal("1234.5"), "EUR", "fr") == "1\u202f234,50\xa0€"
    assert money(Decimal("50000"), "EUR", "en", whole=True) == "€50,000"
    assert money(12.345, "USD", "en") == format_currency(Decimal("12.345"), "USD", locale="en")


@pytest.mark.parametrize("locale", LOCALES)
def test_amounts_same_text_as_babel(locale: str) -> None:
    for pattern in ("#,##0", "#,##0.0", "#,##0.00", "#,##0.000", "0.00", "#,##,##0.00"):
        fmt = decimal_format(locale, pattern)
        for value in AMOUNTS:
            assert fmt(value) == format_decimal(value, format=pattern, locale=locale), (
                value,
                pattern,
            )


def test_amount_and_percent_use_it() -> None:
    assert amount(Decimal("1234.5"), "de") == "1.234,50"
    assert percent(Decimal("12.25"), "fr") == "12,2 %"
