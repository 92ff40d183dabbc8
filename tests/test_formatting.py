"""decimal_text and jsonable: the fast paths write what the first definitions wrote."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

from cobro.formatting import _decimal_text, decimal_text, jsonable


def _outcome(value: Decimal) -> object:
    try:
        return decimal_text(value), None
    except Exception as exc:  # the same error as the first definition
        return None, type(exc)


def _first(value: Decimal) -> object:
    try:
        return _decimal_text(value), None
    except Exception as exc:
        return None, type(exc)


def test_decimal_text_as_first_written() -> None:
    rnd = random.Random(5)
    fixed = ["0", "-0", "0.0000", "1", "1.5", "1.50", "100", "1E+3", "1E-7", "-12.345"]
    fixed += ["0.10", "123456789.123456789", "5E+30", "0.005", "NaN", "-Infinity"]
    values = [Decimal(x) for x in fixed]
    values += [
        Decimal(rnd.randint(-(10**9), 10**9)).scaleb(-rnd.randint(-3, 8)) for _ in range(20000)
    ]
    for value in values:
        assert _outcome(value) == _first(value), value
    assert decimal_text(Decimal("12.5")) == "12.50"
    assert decimal_text(Decimal("0.12345")) == "0.12345"


class _Text(str):
    pass


def test_jsonable() -> None:
    value = {
        "a": 1,
        "b": "x",
        "c": None,
        "d": Decimal("1.5"),
        "e": date(2026, 1, 2),
        "f": True,
        "g": [1, Decimal("2")],
        "h": {"x": Decimal("-0")},
        "i": 1.5,
        "j": (1, 2),
        "k": datetime(2026, 1, 1, tzinfo=UTC),
        "l": _Text("t"),
    }
    assert jsonable(value) == {
        "a": 1,
        "b": "x",
        "c": None,
        "d": "1.50",
        "e": "2026-01-02",
        "f": True,
        "g": [1, "2.00"],
        "h": {"x": "-0.00"},
        "i": 1.5,
        "j": [1, 2],
        "k": "2026-01-01T00:00:00+00:00",
        "l": "t",
    }
