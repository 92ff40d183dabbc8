"""`column IN (values)` for many values, as each database takes them best."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def one_of(s: Session | Connection, column: Any, values: Sequence[Any]) -> Any:
    """`column IN (values)`; on PostgreSQL `column = ANY(:values)`, one array parameter: a
    page's thousand values in an IN list cost more to render and parse (a cast per
    placeholder, psycopg's placeholder split) than the query takes to run."""
    dialect = s.get_bind().dialect if isinstance(s, Session) else s.dialect
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)
