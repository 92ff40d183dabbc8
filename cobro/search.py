"""Customer search that ignores case and accents, the same on SQLite and PostgreSQL:
"nunez" finds "Ferretería Núñez", "fr 72 139986988" finds VAT FR72139986988.

Every customer row carries `search_text`, its name, account, SIREN, VAT and email folded
(`fold`: lower case, accents and ligatures removed), plus the identifiers without their
spaces and dots (`compact`). Every write path keeps it: the ORM (an event on `Customer`),
the CSV import (its bulk insert and update), the migration that added it (backfill). A
search folds the query the same way and looks for it inside `search_text` (`LIKE`, escaped),
so one condition (`matches`) serves the customers page, the API and `cobro customers list
--search`. On PostgreSQL a trigram index (pg_trgm) answers that `LIKE '%...%'` without
reading every row; SQLite scans the narrow column (see bench/search_bench.py).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import ColumnElement, or_

# letters NFKD does not split into a base letter and an accent
_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i"}
)
_SPACES = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
SEARCH_FIELDS = ("account", "name", "siren", "vat", "email")


def fold(text: str | None) -> str:
    """Lower case without accents, spaces collapsed: "  Ñúñez  SARL" -> "nunez sarl"."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", bare.translate(_LETTERS)).strip()


def compact(text: str | None) -> str:
    """Folded, letters and digits only: "FR 72-139.986.988" -> "fr72139986988"."""
    return _NOT_ALNUM.sub("", fold(text))


def search_text(
    account: str | None,
    name: str | None,
    siren: str | None = None,
    vat: str | None = None,
    email: str | None = None,
) -> str:
    """What a customer is found by, as stored in `customers.search_text`."""
    parts = [fold(account), fold(name), fold(email)]
    for identifier in (siren, vat):
        if identifier:
            parts += [fold(identifier), compact(identifier)]
    return " | ".join(p for p in parts if p)


def search_text_of(values: Any) -> str:
    """`search_text` of a mapping or an object with the customer's fields."""
    get = values.get if isinstance(values, dict) else lambda k: getattr(values, k, None)
    return search_text(*(get(k) for k in SEARCH_FIELDS))


def matches(column: Any, query: str) -> ColumnElement[bool] | None:
    """The condition "the customer is found by `query`" on a `search_text` column; None
    for a query with nothing to look for."""
    folded = fold(query)
    if not folded:
        return None
    condition = column.contains(folded, autoescape=True)
    squeezed = compact(query)
    if len(squeezed) >= 5 and squeezed != folded:  # an identifier typed with spaces or dots
        condition = or_(condition, column.contains(squeezed, autoescape=True))
    return condition
