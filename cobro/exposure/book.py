"""The whole portfolio's exposure, computed once (batches of set-based queries, see
`cobro.exposure.sql`) and read by every figure that says "limit", "over limit" or "usage":
the portfolio tiles and `cobro kpis`, the customers list and its over-limit filter, the limit
review, the API and the CSV exports. `cobro exposure` prints the same `Exposure` rows.

    book = portfolio_exposures(engine, as_of)            # the active rules/exposure.yaml
    book.over_limit_totals()["EUR"]                      # OverLimit(customers=3, excess=...)
    book.get(customer_id).available
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, Engine

from cobro.exposure.compute import ZERO, Exposure, ExposureRules
from cobro.exposure.sql import iter_exposures


@dataclass(frozen=True)
class OverLimit:
    """Customers over their limit in one currency and by how much in total."""

    currency: str | None
    customers: int
    excess: Decimal


@dataclass
class ExposureBook:
    as_of: date
    rows: dict[int, Exposure]  # customer id -> exposure

    def get(self, customer_id: int) -> Exposure | None:
        return self.rows.get(customer_id)

    def over_limit(self, currency: str | None = None) -> list[Exposure]:
        """Customers over limit (of one currency), most over first, then by account."""
        found = [
            e
            for e in self.rows.values()
            if e.over_limit and (currency is None or e.currency == currency)
        ]
        return sorted(found, key=lambda e: (-e.excess, e.account))

    def over_limit_ids(self) -> set[int]:
        return {cid for cid, e in self.rows.items() if e.over_limit}

    def over_limit_totals(self) -> dict[str | None, OverLimit]:
        """currency -> customers over limit and their total excess (currencies with none
        over limit are absent)."""
        counts: dict[str | None, list[Decimal | int]] = {}
        for e in self.rows.values():
            if e.over_limit:
                n = counts.setdefault(e.currency, [0, ZERO])
                n[0] += 1
                n[1] += e.excess
        return {
            c: OverLimit(c, int(n), Decimal(x)) for c, (n, x) in sorted(counts.items(), key=_key)
        }

    def usage_at_least(self, threshold: Decimal) -> list[Exposure]:
        """Customers using more than `threshold` of their limit (0.9 = 90 %), or over it."""
        return [
            e
            for e in self.rows.values()
            if e.over_limit or (e.usage is not None and e.usage > threshold)
        ]


def _key(item: tuple[str | None, object]) -> str:
    return item[0] or ""


def active_rules(engine: Engine | None = None) -> ExposureRules:
    """The active rules version's exposure.yaml (the rules directory until one is applied;
    the defaults when it has no exposure.yaml)."""
    from cobro.exposure.rulefile import rules_of
    from cobro.rules.classify import load_active_ruleset

    return rules_of(load_active_ruleset(engine))


def exposures_of(
    conn: Connection, as_of: date, rules: ExposureRules, ids: Iterable[int] | None = None
) -> ExposureBook:
    """The exposures of every customer (or of `ids`) on one connection. The whole
    portfolio's is computed once per state of the data (`cobro.portfolio_cache`): the
    book is shared, read-only."""
    if ids is None:
        from cobro.portfolio_cache import cached

        return cached(conn, ("exposures", as_of, rules), lambda: _compute(conn, as_of, rules))
    return _compute(conn, as_of, rules, None if ids is None else sorted(set(ids)))


def _compute(
    conn: Connection, as_of: date, rules: ExposureRules, wanted: Sequence[int] | None = None
) -> ExposureBook:
    rows: dict[int, Exposure] = {}
    if wanted is not None and not wanted:
        return ExposureBook(as_of, rows)
    for batch in iter_exposures(conn, as_of, rules, wanted):
        rows.update((e.customer_id, e) for e in batch)
    return ExposureBook(as_of, rows)


def portfolio_exposures(
    engine: Engine,
    as_of: date,
    rules: ExposureRules | None = None,
    ids: Iterable[int] | None = None,
) -> ExposureBook:
    """Every customer's exposure (or that of `ids`) under `rules` (default: the active
    exposure.yaml)."""
    rules = rules if rules is not None else active_rules(engine)
    with engine.connect() as conn:
        return exposures_of(conn, as_of, rules, ids)


__all__ = [
    "ExposureBook",
    "OverLimit",
    "active_rules",
    "exposures_of",
    "portfolio_exposures",
]
