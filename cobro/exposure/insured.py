"""Is an invoice insured at its due date? The one decision the dunning claim step and the
insurer obligations share, in bulk.

    decisions = insured_on(conn, rules, [(customer_id, due_date), ...])
    decisions[(cid, day)]    # Insured(basis="named"|"unnamed"|"none", policies, amount)

Insured on a day = `cobro.exposure.compute.insured_part` of the customer that day: its named
covers in force (every policy added up), else the first unnamed-buyer ceiling of
`rules/exposure.yaml` that applies to it and whose conditions hold, with the rule facts as of
that day. The covers are read once per chunk of customers and folded per day in Python (in
force exactly as `cobro.rules.facts_sql.cover_in_force` says); the facts are computed only
when an unnamed-buyer policy has a condition, for the customers without a named cover that
day, one `iter_facts` per distinct day (or one in all with `facts_on`: the bulk
obligations read the conditions' facts as of the day they are computed for).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from cobro.exposure.compute import ZERO, CustomerAmounts, ExposureRules, insured_part
from cobro.models import InsurerCover
from cobro.rules.facts_sql import ACTIVE_STATUSES, facts_for_range, iter_facts

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Insured:
    basis: str  # named | unnamed | none
    policies: tuple[str, ...]
    amount: Decimal

    @property
    def insured(self) -> bool:
        return self.basis != "none"


NOT_INSURED = Insured("none", (), ZERO)

_Cover = tuple[bool, str, Decimal | None, str, date | None, date | None]


def _covers(
    conn: Connection, ids: list[int], id_range: tuple[int, int] | None = None
) -> dict[int, list[_Cover]]:
    """The covers of `ids`; with `id_range`, those of every customer in it (one query)."""
    out: dict[int, list[_Cover]] = {}
    chunks = (
        [InsurerCover.customer_id.between(*id_range)]
        if id_range is not None
        else [
            InsurerCover.customer_id.in_(ids[start : start + CHUNK])
            for start in range(0, len(ids), CHUNK)
        ]
    )
    for where in chunks:
        for cid, *row in conn.execute(
            select(
                InsurerCover.customer_id,
                InsurerCover.nominative,
                InsurerCover.policy_id,
                InsurerCover.granted_amount,
                InsurerCover.status,
                InsurerCover.valid_from,
                InsurerCover.valid_until,
            ).where(where)
        ).all():
            out.setdefault(cid, []).append(tuple(row))  # type: ignore[arg-type]
    return out


def _amounts(cid: int, covers: list[_Cover], in_force: tuple[bool, ...]) -> dict[str, Any]:
    named: dict[str, Decimal] = {}
    unnamed: set[str] = set()
    for cover, on in zip(covers, in_force, strict=True):
        if not on:
            continue
        nominative, policy, granted = cover[0], cover[1], cover[2]
        if nominative:
            named[policy] = named.get(policy, ZERO) + (granted or ZERO)
        else:
            unnamed.add(policy)
    out: dict[str, Any] = {"customer_id": cid, "account": ""}
    if named:
        out["named_cover"] = sum(named.values(), ZERO)
        out["named_policies"] = tuple(sorted(named))
    if unnamed:
        out["unnamed_policies"] = frozenset(unnamed)
    return out


def insured_on(
    conn: Connection,
    rules: ExposureRules,
    pairs: Iterable[tuple[int, date]],
    facts_on: date | None = None,
    id_range: tuple[int, int] | None = None,
    facts: Mapping[int, Any] | None = None,
) -> dict[tuple[int, date], Insured]:
    """(customer id, day) -> whether and how the customer is insured that day. The covers in
    force are those of that day; the unnamed-buyer conditions read the rule facts of that
    day, or, with `facts_on`, of that one day for every pair (one facts computation instead
    of one per distinct day: the bulk obligations' choice). `id_range`: every customer of
    the pairs has its id in it (a page of the portfolio): covers and facts are read by that
    range rather than by lists of thousands of ids. `facts`: with `facts_on`, the rule
    facts of the customers as of that day when the caller has them already (the
    classification's page): used instead of reading them again."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    covers = _covers(conn, sorted({cid for cid, _ in wanted}), id_range)
    # the covers in force change only at validity boundaries: one decision per customer and
    # set of covers in force, unless the conditions read the facts of each day
    per_day_facts = rules.needs_facts and bool(rules.unnamed_buyers) and facts_on is None
    amounts: dict[tuple[int, date], dict[str, Any]] = {}
    shared: dict[tuple[int, tuple[bool, ...]], dict[str, Any]] = {}
    # per customer, each cover's status test and validity: in force on a day when its status
    # is one of ACTIVE_STATUSES and the day is within its validity (as `cover_in_force`)
    checks: dict[int, list[tuple[bool, date | None, date | None]]] = {}
    for cid, day in wanted:
        mine = covers.get(cid, [])
        tests = checks.get(cid)
        if tests is None:
            tests = checks[cid] = [
                ((c[3] or "").lower() in ACTIVE_STATUSES, c[4], c[5]) for c in mine
            ]
        in_force = tuple(
            ok and (since is None or since <= day) and (until is None or until >= day)
            for ok, since, until in tests
        )
        if per_day_facts:
            amounts[(cid, day)] = _amounts(cid, mine, in_force)
            continue
        key = (cid, in_force)
        a = shared.get(key)
        if a is None:
            a = shared[key] = _amounts(cid, mine, in_force)
        amounts[(cid, day)] = a
    if rules.needs_facts and rules.unnamed_buyers:
        needing = {}
        for (cid, day), a in amounts.items():
            if "named_cover" not in a:
                needing.setdefault(day, []).append(cid)
        if facts_on is not None:
            wanted_ids = sorted({cid for ids in needing.values() for cid in ids})
            on_day: dict[int, Any] = {}
            if facts is not None and all(cid in facts for cid in wanted_ids):
                on_day = {cid: facts[cid] for cid in wanted_ids}
            elif id_range is not None and 4 * len(wanted_ids) > id_range[1] - id_range[0] + 1:
                on_day.update(facts_for_range(conn, facts_on, *id_range))
            else:
                for batch in iter_facts(conn, facts_on, ids=wanted_ids, batch_size=CHUNK):
                    on_day.update(batch)
            for a in {id(a): a for a in amounts.values()}.values():
                if "named_cover" not in a:
                    a["facts"] = on_day.get(a["customer_id"], {})
        else:
            for day, ids in needing.items():
                for batch in iter_facts(conn, day, ids=ids, batch_size=CHUNK):
                    for cid, facts in batch:
                        amounts[(cid, day)]["facts"] = facts
    decided: dict[int, Insured] = {}
    out: dict[tuple[int, date], Insured] = {}
    for key, a in amounts.items():
        found = decided.get(id(a))
        if found is None:
            amount, basis, policies, _ = insured_part(CustomerAmounts(**a), rules.unnamed_buyers)
            found = NOT_INSURED if basis == "none" else Insured(basis, policies, amount)
            decided[id(a)] = found
        out[key] = found
    return out
