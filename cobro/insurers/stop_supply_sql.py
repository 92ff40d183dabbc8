"""The stop-supply list from the database, in batches: the rule facts of a page of customers
(`cobro.rules.facts_sql`) with their insurer-obligation facts, then the pure
`cobro.insurers.stop_supply`.

    for entry in iter_stop_supply(conn, as_of, rules): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from sqlalchemy import Connection

from cobro.insurers.obligations_sql import ObligationRules, obligation_facts
from cobro.insurers.stop_supply import StopSupply, stop_supply_entry
from cobro.rules.facts import OBLIGATION_DEFAULTS
from cobro.rules.facts_sql import BATCH_SIZE, customer_id_pages, facts_for_range


def iter_stop_supply(
    conn: Connection, as_of: date, rules: ObligationRules, batch_size: int = BATCH_SIZE
) -> Iterator[StopSupply]:
    """Every customer on the stop-supply list as of `as_of`, in customer id order."""
    for lo, hi in customer_id_pages(conn, batch_size):
        batch = facts_for_range(conn, as_of, lo, hi)
        extra = obligation_facts(conn, as_of, rules, lo=lo, hi=hi)
        for cid, facts in batch:
            facts.update(extra.get(cid, OBLIGATION_DEFAULTS))
            entry = stop_supply_entry(cid, facts, as_of)
            if entry is not None:
                yield entry
