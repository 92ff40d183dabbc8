"""The digest of a customer's dunning facts, and who must be signalled. Pure: no DB, no I/O.

A dunning workflow re-reads its facts each time it plans; a `facts_changed` signal only
tells it to plan *now*. So a signal is needed when the facts differ from those it was last
signalled about, or when the customer has open invoices and no workflow runs. The digest is
a SHA-256 over a canonical JSON text of everything the planner reads:

* the customer row (country, time zone, language, addresses, opt-outs, segment... every
  column but its id and timestamps, so a column added later is covered too);
* its open invoices (every column but ids and timestamps: amounts, due dates, disputed);
* its active and broken pauses and promises;
* its latest risk class, its insurer covers (status, amount, validity);
* the dunning policies in force (one fingerprint for the whole portfolio).

What the workflow writes itself (steps reached, communications, tasks) is not in it: the
workflow knows. `DIGEST_VERSION` is part of the text, so changing what goes in re-signals
every customer once, never silently skips one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

DIGEST_VERSION = 1


@dataclass
class DunningFacts:
    """One customer's facts as read for the digest (plain values, in any order)."""

    account: str
    customer_id: int
    customer: Mapping[str, Any]
    invoices: list[Mapping[str, Any]] = field(default_factory=list)
    pauses: list[Mapping[str, Any]] = field(default_factory=list)
    covers: list[Mapping[str, Any]] = field(default_factory=list)
    risk_class: str | None = None

    @property
    def has_open_invoices(self) -> bool:
        return bool(self.invoices)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    raise TypeError(f"not a fact value: {value!r}")


def _rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Rows as sorted canonical texts: the order the database returned them does not count."""
    return sorted(json.dumps(dict(r), sort_keys=True, default=_plain) for r in rows)


def fact_digest(facts: DunningFacts, policy_fingerprint: str) -> str:
    text = json.dumps(
        {
            "v": DIGEST_VERSION,
            "customer": dict(facts.customer),
            "invoices": _rows(facts.invoices),
            "pauses": _rows(facts.pauses),
            "covers": _rows(facts.covers),
            "risk_class": facts.risk_class,
            "policy": policy_fingerprint,
        },
        sort_keys=True,
        default=_plain,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


CHANGED = "changed"
NOT_RUNNING = "not running"


def why_signal(digest: str, stored: str | None, has_open: bool, running: bool) -> str | None:
    """Why this customer's workflow must be signalled (with start), or None.

    * facts changed and a workflow runs, or could start with something to chase: `changed`;
    * nothing changed, open invoices, no workflow (ended, terminated, a new Temporal
      server): `not running`;
    * no open invoices and no workflow: nothing to start, nobody to tell.
    """
    if not running and not has_open:
        return None
    if digest != stored:
        return CHANGED
    if not running:
        return NOT_RUNNING
    return None
