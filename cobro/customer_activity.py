"""What the customers did and wrote over a period, counted from their timeline: the one
definition the portfolio page, `GET /api/customer-activity` and `cobro portal activity`
share.

* a **visit** is a day a customer's self-service link was opened (`portal.visited`, at most
  one event per link and day);
* an **action** is what a customer did on its page, with itself as actor
  (`customer:<account>`): "I have paid" (a pause), a promise, a dispute, a payment-plan
  request (what follows from one, e.g. an insurer declaration, is not another);
* a **reply** is a message the customer wrote back (an SMS, an email), an **opt-out** an SMS
  STOP, a **bounce** an address the customer's mail server refused for good.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.models import TimelineEvent
from cobro.portal.links import VISITED

VISIT = VISITED
REPLIES = frozenset({"sms.reply", "email.reply"})
OPT_OUTS = frozenset({"sms.opted_out"})
BOUNCES = frozenset({"email.bounced"})
# "portal.plan_requested" was the portal's own record before payment plans existed.
ACTIONS = frozenset(
    {
        "dunning.paused",
        "promise.recorded",
        "dispute.opened",
        "plan.requested",
        "portal.plan_requested",
    }
)
CUSTOMER = "customer"


def is_customer(actor: str) -> bool:
    return actor == CUSTOMER or actor.startswith(CUSTOMER + ":")


@dataclass(frozen=True)
class CustomerActivity:
    since: date  # first day counted
    until: date  # last day counted
    visits: int
    visitors: int  # customers who opened their page
    actions: int
    acting: int  # customers who acted
    replies: int
    opt_outs: int
    bounces: int

    def to_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items()}


def count_activity(
    events: Iterable[tuple[int, str, str]], since: date, until: date
) -> CustomerActivity:
    """`events`: (customer id, kind, actor) of the period's timeline."""
    kinds: Counter[str] = Counter()
    visitors: set[int] = set()
    acting: set[int] = set()
    for customer_id, kind, actor in events:
        if kind == VISIT:
            kinds[VISIT] += 1
            visitors.add(customer_id)
        elif kind in REPLIES or kind in OPT_OUTS or kind in BOUNCES:
            kinds[kind] += 1
        elif kind in ACTIONS and is_customer(actor):
            kinds["action"] += 1
            acting.add(customer_id)
    return CustomerActivity(
        since=since,
        until=until,
        visits=kinds[VISIT],
        visitors=len(visitors),
        actions=kinds["action"],
        acting=len(acting),
        replies=sum(kinds[k] for k in REPLIES),
        opt_outs=sum(kinds[k] for k in OPT_OUTS),
        bounces=sum(kinds[k] for k in BOUNCES),
    )


def customer_activity(engine: Engine | None, until: date, days: int = 30) -> CustomerActivity:
    """The `days` days ending with `until` (UTC days)."""
    since = until - timedelta(days=days - 1)
    start = datetime.combine(since, time(), tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC)
    kinds = sorted({VISIT} | REPLIES | OPT_OUTS | BOUNCES | ACTIONS)
    with transaction(engine) as s:
        rows = s.execute(
            select(TimelineEvent.customer_id, TimelineEvent.kind, TimelineEvent.actor).where(
                TimelineEvent.at >= start,
                TimelineEvent.at < end,
                TimelineEvent.kind.in_(kinds),
            )
        ).all()
    return count_activity(((r[0], r[1], r[2]) for r in rows), since, until)
