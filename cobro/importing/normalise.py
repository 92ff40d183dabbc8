"""Normalisers and reference lists for imported values: country, language, time zone,
currency, phone (E.164), e-mail lists, ISO dates, exact money amounts.

Each normaliser takes the raw (stripped, non-empty) text of a cell and returns the stored
value or raises `ValueError` with a message meant for the person who wrote the file.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel import Locale
from babel.core import get_global
from babel.languages import get_official_languages
from babel.numbers import get_currency_precision, list_currencies

from cobro.types import MONEY_SCALE

_NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO"})

# babel lists a territory's zones in no useful order (ES starts with Africa/Ceuta):
# for countries with several zones, the zone of the capital / most populous region.
PRIMARY_ZONES = {
    "AQ": "Antarctica/McMurdo",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CD": "Africa/Kinshasa",
    "CL": "America/Santiago",
    "CY": "Asia/Nicosia",
    "EC": "America/Guayaquil",
    "ES": "Europe/Madrid",
    "FM": "Pacific/Pohnpei",
    "GL": "America/Nuuk",
    "ID": "Asia/Jakarta",
    "KI": "Pacific/Tarawa",
    "KZ": "Asia/Almaty",
    "MH": "Pacific/Majuro",
    "MN": "Asia/Ulaanbaatar",
    "MX": "America/Mexico_City",
    "MY": "Asia/Kuala_Lumpur",
    "PF": "Pacific/Tahiti",
    "PS": "Asia/Gaza",
    "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow",
    "UM": "Pacific/Midway",
    "US": "America/New_York",
    "UZ": "Asia/Tashkent",
}

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONEY_RE = re.compile(rf"[+-]?\d{{1,14}}(?:\.\d{{1,{MONEY_SCALE}}})?")
# a ';'-separated file writes amounts with a decimal comma, optionally grouped by three with
# '.' or a space (Excel's "1.234,56" in Spanish, "1 234,56" in French: U+00A0 / U+202F)
_COMMA_MONEY_RE = re.compile(
    rf"([+-]?)(\d{{1,14}}|\d{{1,3}}(?:([. \u00a0\u202f])\d{{3}})(?:\3\d{{3}})*)"
    rf"(?:,(\d{{1,{MONEY_SCALE}}}))?"
)
_INT_RE = re.compile(r"\+?\d{1,9}")
_EMAIL_RE = re.compile(r"[^@\s;,<>\"]+@[^@\s;,<>\"]+\.[^@\s;,<>\".]{2,}")
# Excel writes TRUE/FALSE in the language of the sheet
_TRUE = frozenset({"true", "1", "yes", "verdadero", "vrai", "wahr", "sí", "si", "oui", "ja"})
_FALSE = frozenset({"false", "0", "no", "falso", "faux", "falsch", "non", "nein"})


@cache
def countries() -> frozenset[str]:
    return frozenset(
        code
        for code in Locale("en").territories
        if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    )


@cache
def languages() -> frozenset[str]:
    return frozenset(code for code in Locale("en").languages if len(code) == 2)


@cache
def currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def country(value: str) -> str:
    code = value.upper()
    if code not in countries():
        raise ValueError(f"unknown country {value!r}: expected an ISO 3166 alpha-2 code like FR")
    return code


def language(value: str) -> str:
    code = value.lower()
    if code not in languages():
        raise ValueError(f"unknown language {value!r}: expected an ISO 639-1 code like fr")
    return code


def currency(value: str) -> str:
    code = value.upper()
    if code not in currencies():
        raise ValueError(f"unknown currency {value!r}: expected an ISO 4217 code like EUR")
    return code


@cache
def _zone_exists(key: str) -> bool:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone(value: str) -> str:
    if not _zone_exists(value):
        raise ValueError(f"unknown time zone {value!r}: expected an IANA name like Europe/Paris")
    return value


@cache
def default_language(country_code: str) -> str:
    """The territory's first official language that has a two-letter code (else English)."""
    for lang in get_official_languages(country_code, de_facto=True):
        if len(lang) == 2:
            return lang
    return "en"


@cache
def default_timezone(country_code: str) -> str:
    if country_code in PRIMARY_ZONES:
        return PRIMARY_ZONES[country_code]
    for zone in get_global("territory_zones").get(country_code, ()):
        if _zone_exists(zone):
            return zone
    return "UTC"


def phone(value: str, country_code: str) -> str:
    """E.164, parsed with the customer's country as the region of national numbers."""
    try:
        number = phonenumbers.parse(value, country_code)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"invalid phone number {value!r}: {exc._msg}") from None
    # Valid, not merely "possible": a number outside the allocated ranges is a typo that
    # would make every SMS reminder fail later.
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"invalid phone number {value!r} for country {country_code}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def emails(value: str) -> str:
    """One or more addresses separated by ';', stored as 'a@x.fr;b@y.fr'."""
    parts = [part.strip() for part in value.split(";")]
    parts = [part for part in parts if part]
    for part in parts:
        if not _EMAIL_RE.fullmatch(part):
            raise ValueError(f"invalid e-mail address {part!r}")
    if not parts:
        raise ValueError("no e-mail address")
    return ";".join(parts)


def iso_date(value: str) -> date:
    if not _DATE_RE.fullmatch(value):
        raise ValueError(f"invalid date {value!r}: expected YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"invalid date {value!r}: no such day") from None


def money(value: str, decimal_comma: bool = False) -> Decimal:
    """Exact amount; `decimal_comma`: as written in a ';'-separated file ("1.234,56")."""
    if decimal_comma:
        return _comma_money(value)
    if not _MONEY_RE.fullmatch(value):
        hint = " (is the file ';'-separated?)" if "," in value else ""
        raise ValueError(
            f"invalid amount {value!r}: expected digits with '.' as decimal separator"
            f" and at most {MONEY_SCALE} decimals{hint}"
        )
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes it
        raise ValueError(f"invalid amount {value!r}") from None


def _comma_money(value: str) -> Decimal:
    found = _COMMA_MONEY_RE.fullmatch(value)
    if found is None:
        raise ValueError(
            f"invalid amount {value!r}: a ';'-separated file writes amounts with a decimal"
            f" comma (1234,56 or 1.234,56), at most {MONEY_SCALE} decimals"
        )
    sign, digits, group, decimals = found.groups()
    if group == "." and decimals is None:
        raise ValueError(
            f"ambiguous amount {value!r} in a ';'-separated file: write {value.replace('.', '')}"
            f" or {value.replace('.', ',')}"
        )
    if group:
        digits = digits.replace(group, "")
    return Decimal(f"{sign}{digits}.{decimals}" if decimals else f"{sign}{digits}")


def decimals(value: Decimal) -> int:
    """Decimals the value needs (trailing zeros do not count: 12.50 needs 1)."""
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


_QUANTA = {n: Decimal(1).scaleb(-n) for n in range(MONEY_SCALE + 1)}


@cache
def minor_units(currency_code: str) -> int:
    """Decimals of the currency (ISO 4217 via babel): EUR 2, JPY 0, KWD 3."""
    return min(int(get_currency_precision(currency_code)), MONEY_SCALE)


def check_minor_units(value: Decimal, currency_code: str) -> Decimal:
    """An amount cannot be more precise than its currency (EUR: cents, JPY: yen)."""
    allowed = minor_units(currency_code)
    if value == value.quantize(_QUANTA[allowed]):  # no finer than the unit (12.50 is cents)
        return value
    needed = decimals(value)
    if needed > allowed:
        unit = "no decimals" if allowed == 0 else f"{allowed} decimal(s) at most"
        raise ValueError(
            f"amount {format(value, 'f')} has {needed} decimals but {currency_code} has {unit}"
        )
    return value


def boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"invalid boolean {value!r}: expected true/false, 1/0 or yes/no")


def integer(value: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise ValueError(f"invalid whole number {value!r}")
    return int(value)


ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# bidirectional overrides and isolates, zero-width marks: they reorder what a page shows
_INVISIBLE = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0xFEFF]
)


def account(value: str) -> str:
    """An account id: letters, digits, `.`, `_`, `-` (64 at most, not starting with `.` or
    `-`, no `..`): it goes into URLs, file names and Temporal workflow ids as is."""
    if not ACCOUNT.fullmatch(value) or ".." in value:
        raise ValueError(
            f"account {value!r} may only have letters, digits, '.', '_' and '-' (64 at "
            "most, not starting with '.' or '-', no '..')"
        )
    return value


def name(value: str) -> str:
    """A display name without control characters: line breaks and tabs become spaces, the
    other control and bidirectional formatting characters go, runs of spaces are one."""
    cleaned = "".join(
        " " if ch in "\r\n\t" else ch
        for ch in value.translate(_INVISIBLE)
        if ch in "\r\n\t" or unicodedata.category(ch) != "Cc"
    )
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise ValueError("the name has nothing but control characters")
    return cleaned
