"""Column types that behave the same on SQLite and PostgreSQL.

Money is exact everywhere: PostgreSQL stores NUMERIC(18, 4); SQLite has no exact decimal
type (NUMERIC columns there hold binary floats), so it stores a scaled integer
(value × 10_000) whose SUMs stay exact. Python code always sees `Decimal`. SQL that
divides money columns on SQLite must cast to REAL or use `money_ratio`-style helpers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator

MONEY_SCALE = 4
FIRST_DAY = date(1900, 1, 1)  # the days Cobro accepts from a person (as-of, pauses, promises)
LAST_DAY = date(2999, 12, 31)
_SCALE_FACTOR = Decimal(10) ** MONEY_SCALE
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(18, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, never float")
        amount = Decimal(value)
        if dialect.name == "sqlite":
            return int((amount * _SCALE_FACTOR).to_integral_value())
        return amount.quantize(_QUANTUM)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _SCALE_FACTOR).quantize(_QUANTUM)
        if type(value) is Decimal:  # what psycopg gives: no copy before quantizing
            return value.quantize(_QUANTUM)
        return Decimal(value).quantize(_QUANTUM)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
