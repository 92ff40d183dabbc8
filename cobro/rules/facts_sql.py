"""The documented facts (`cobro.rules.facts`) of every customer, computed in bulk SQL.

    for batch in iter_facts(conn, as_of=date(2026, 11, 23)):      # all customers, by id pages
        for customer_id, facts in batch: ...
    facts = facts_by_customer(conn, as_of, ids=[3, 7])               # a few customers

A batch of customers costs a fixed number of set-based queries (customers, open invoices,
covers, the latest two grades, the latest two risk assessments, payment behaviour, broken
promises), whatever its size: never one round trip per customer. The same SQL runs on
SQLite and PostgreSQL; date differences and money (scaled integers on SQLite, see
`cobro.types`) go through SQLAlchemy's typed expressions or are finished in Python, so both
databases give identical facts.

Definitions (as of the date `as_of`, the evaluation day):

* open invoice: `open_amount > 0`; `outstanding` = their sum, `open_invoices` their count;
* `overdue_amount`: open invoices with `due_date < as_of`; `max_days_overdue`: days since
  the due date of the oldest of them (0 if none); `disputed_amount`: open and disputed;
* active cover: status granted / partially granted / active / reduced, `valid_from` null or
  ≤ as_of, `valid_until` null or ≥ as_of; `cover_amount` = sum of their granted amounts
  (null without an active cover); `cover_expires_in_days` = days to the earliest
  `valid_until` of an active cover (null if open-ended or without cover);
* `cover_status`: `active` (`reduced` if an active cover is partially granted or reduced),
  otherwise the state of the customer's latest cover (requested, refused, cancelled,
  expired), `none` without any cover;
* `total_limit`, `over_limit`, `limit_usage` are the exposure engine's (authorised, used >
  authorised, used / authorised: `rules/exposure.yaml`, `cobro.exposure`), set by
  `cobro.exposure.sql.fill_limit_facts` over these facts; here they stay null / false;
* `grade` / `previous.grade`: the latest two rows of grade_history graded on or before
  as_of (any insurer);
* `avg_days_late`: over the payment allocations of payments dated in the 12 months up to
  as_of, the mean of max(0, payment date − invoice due date), 2 places (null if none);
* `broken_promises`: promises to pay (dunning_pauses kind=promise) with status broken that
  ended (or were created) in the 90 days up to as_of;
* `risk_class` / `previous.risk_class`: the latest two stored risk assessments (the
  classification service shifts them: see `cobro.rules.classify`);
* `previous.cover_amount`, `previous.overdue_amount`, `previous.max_days_overdue`: the
  values at the customer's last classification run (`customer_fact_snapshots`, written by
  `cobro.rules.classify` when they change); null before the first run;
* the insurer-obligation facts (`days_to_declaration_deadline`, `stop_supply`, ...;
  `OBLIGATION_DEFAULTS`) start at their no-obligation value here, `stop_supply_list` at
  what the covers say (`cobro.rules.facts.on_stop_supply_list`); `cobro.rules.classify`
  fills them in from `cobro.insurers.obligations_sql.obligation_facts` (they depend on the
  insurance decision, which reads these facts: computing them here would be circular).

Amounts are summed whatever their currency (one currency per account is assumed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement

from cobro.models import (
    Customer,
    CustomerFactSnapshot,
    DunningPause,
    GradeHistory,
    InsurerCover,
    Invoice,
    Payment,
    PaymentAllocation,
    RiskAssessment,
)
from cobro.rules.facts import OBLIGATION_DEFAULTS, on_stop_supply_list
from cobro.types import Money

BATCH_SIZE = 5000
PAYMENT_WINDOW_DAYS = 365
PROMISE_WINDOW_DAYS = 90

ZERO = Decimal("0.0000")
_DAYS = Decimal("0.01")

#: insurer cover status -> cover_status fact, for covers that are in force
ACTIVE_STATUSES = {
    "granted": "active",
    "active": "active",
    "partially_granted": "reduced",
    "reduced": "reduced",
}
#: insurer cover status -> cover_status fact, for covers that are not in force
INACTIVE_STATUSES = {
    "requested": "requested",
    "pending": "requested",
    "refused": "refused",
    "declined": "refused",
    "cancelled": "cancelled",
    "withdrawn": "cancelled",
    "suspended": "cancelled",  # no cover while suspended: counted as withdrawn
    "terminated": "cancelled",
    "expired": "expired",
}

Facts = dict[str, Any]


SNAPSHOT_MONEY = ("cover_amount", "overdue_amount")
SNAPSHOT_INT = ("max_days_overdue",)


def snapshot_of(facts: Facts) -> dict[str, Any]:
    """The facts kept for the next run's `previous.*` (JSON: money as exact strings)."""
    out: dict[str, Any] = {}
    for key in SNAPSHOT_MONEY:
        value = facts.get(key)
        out[key] = None if value is None else str(value)
    for key in SNAPSHOT_INT:
        value = facts.get(key)
        out[key] = None if value is None else int(value)
    return out


def previous_from_snapshot(stored: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in SNAPSHOT_MONEY:
        value = stored.get(key)
        out[f"previous.{key}"] = None if value is None else Decimal(value)
    for key in SNAPSHOT_INT:
        value = stored.get(key)
        out[f"previous.{key}"] = None if value is None else int(value)
    return out


def cover_in_force(cover: Any, as_of: date) -> ColumnElement[bool]:
    """SQL: `cover` (InsurerCover or an alias of it) is in force on as_of."""
    return and_(
        func.lower(cover.status).in_(list(ACTIVE_STATUSES)),
        or_(cover.valid_from.is_(None), cover.valid_from <= as_of),
        or_(cover.valid_until.is_(None), cover.valid_until >= as_of),
    )


def days_between(conn: Connection, later: Any, earlier: Any) -> ColumnElement[int]:
    """Whole days from `earlier` to `later` (two DATE expressions), on either database."""
    if conn.dialect.name == "sqlite":
        return cast(func.julianday(later) - func.julianday(earlier), Integer)
    return cast(later - earlier, Integer)


def _in_batch(column: Any, ids: Sequence[int] | None, lo: int, hi: int) -> ColumnElement[bool]:
    if ids is not None:
        return column.in_(ids)
    return and_(column >= lo, column <= hi)


def _batch_facts(
    conn: Connection, as_of: date, ids: Sequence[int] | None, lo: int, hi: int
) -> list[tuple[int, Facts]]:
    facts: dict[int, Facts] = {}
    customers = conn.execute(
        select(
            Customer.id,
            Customer.account,
            Customer.name,
            Customer.country,
            Customer.segment,
        )
        .where(_in_batch(Customer.id, ids, lo, hi))
        .order_by(Customer.id)
    ).all()
    for cid, account, name, country, segment in customers:
        facts[cid] = {
            "name": name,
            "account": account,
            "country": country,
            "segment": segment,
            "grade": None,
            "previous.grade": None,
            "cover_status": "none",
            "cover_amount": None,
            "previous.cover_amount": None,
            "cover_expires_in_days": None,
            "total_limit": None,
            "outstanding": ZERO,
            "overdue_amount": ZERO,
            "previous.overdue_amount": None,
            "disputed_amount": ZERO,
            "max_days_overdue": 0,
            "previous.max_days_overdue": None,
            "over_limit": False,
            "limit_usage": None,
            "currency": None,
            "avg_days_late": None,
            "broken_promises": 0,
            "open_invoices": 0,
            "last_payment_date": None,
            "today": as_of,
            "risk_class": None,
            "previous.risk_class": None,
            **OBLIGATION_DEFAULTS,
            "stop_supply_list": False,
        }
    if not facts:
        return []

    # open invoices: amounts and the oldest overdue due date
    overdue = Invoice.due_date < as_of
    _money_zero = literal(ZERO, Money())
    invoices = conn.execute(
        select(
            Invoice.customer_id,
            func.sum(Invoice.open_amount),
            func.sum(case((overdue, Invoice.open_amount), else_=_money_zero)),
            func.sum(case((Invoice.disputed, Invoice.open_amount), else_=_money_zero)),
            func.min(case((overdue, Invoice.due_date), else_=None)),
            func.count(),
        )
        .where(
            _in_batch(Invoice.customer_id, ids, lo, hi),
            Invoice.open_amount > literal_column("0"),  # inlined: the open invoices' index
        )
        .group_by(Invoice.customer_id)
    ).all()
    for cid, outstanding, overdue_amount, disputed, oldest_due, count in invoices:
        f = facts.get(cid)
        if f is None:
            continue
        f["outstanding"] = outstanding
        f["overdue_amount"] = overdue_amount
        f["disputed_amount"] = disputed
        f["open_invoices"] = count
        if oldest_due is not None:
            f["max_days_overdue"] = (as_of - oldest_due).days

    # covers: one row per cover (a handful per customer), folded in Python
    covers = conn.execute(
        select(
            InsurerCover.customer_id,
            InsurerCover.status,
            InsurerCover.granted_amount,
            InsurerCover.valid_from,
            InsurerCover.valid_until,
        )
        .where(_in_batch(InsurerCover.customer_id, ids, lo, hi))
        .order_by(
            InsurerCover.customer_id,
            func.coalesce(InsurerCover.decision_date, InsurerCover.request_date),
            InsurerCover.id,
        )
    ).all()
    cover_state: dict[int, dict[str, Any]] = {}
    for cid, status, granted, valid_from, valid_until in covers:
        st = cover_state.setdefault(cid, {"amount": None, "expires": None, "status": "none"})
        status = (status or "").lower()
        in_force = (
            status in ACTIVE_STATUSES
            and (valid_from is None or valid_from <= as_of)
            and (valid_until is None or valid_until >= as_of)
        )
        if in_force:
            st["amount"] = (st["amount"] or ZERO) + (granted or ZERO)
            if valid_until is not None and (st["expires"] is None or valid_until < st["expires"]):
                st["expires"] = valid_until
            if st["status"] != "reduced":
                st["status"] = ACTIVE_STATUSES[status]
        elif st["amount"] is None:  # no cover in force so far: the latest one tells
            if status in ACTIVE_STATUSES:  # granted but not (or no longer) valid
                st["status"] = "expired" if valid_until and valid_until < as_of else "requested"
            else:
                st["status"] = INACTIVE_STATUSES.get(status, "none")
    for cid, st in cover_state.items():
        f = facts.get(cid)
        if f is None:
            continue
        f["cover_status"] = st["status"]
        f["stop_supply_list"] = on_stop_supply_list(f)
        f["cover_amount"] = st["amount"]
        if st["amount"] is not None and st["expires"] is not None:
            f["cover_expires_in_days"] = (st["expires"] - as_of).days

    # the latest two grades per customer
    ranked = (
        select(
            GradeHistory.customer_id.label("cid"),
            GradeHistory.grade.label("grade"),
            func.row_number()
            .over(
                partition_by=GradeHistory.customer_id,
                order_by=(GradeHistory.graded_on.desc(), GradeHistory.id.desc()),
            )
            .label("rn"),
        )
        .where(_in_batch(GradeHistory.customer_id, ids, lo, hi), GradeHistory.graded_on <= as_of)
        .subquery()
    )
    for cid, grade, rn in conn.execute(
        select(ranked.c.cid, ranked.c.grade, ranked.c.rn).where(ranked.c.rn <= 2)
    ).all():
        if cid in facts:
            facts[cid]["grade" if rn == 1 else "previous.grade"] = grade

    # the latest two risk assessments per customer
    ranked_ra = (
        select(
            RiskAssessment.customer_id.label("cid"),
            RiskAssessment.risk_class.label("risk_class"),
            func.row_number()
            .over(
                partition_by=RiskAssessment.customer_id,
                order_by=(RiskAssessment.assessed_at.desc(), RiskAssessment.id.desc()),
            )
            .label("rn"),
        )
        .where(_in_batch(RiskAssessment.customer_id, ids, lo, hi))
        .subquery()
    )
    for cid, risk_class, rn in conn.execute(
        select(ranked_ra.c.cid, ranked_ra.c.risk_class, ranked_ra.c.rn).where(ranked_ra.c.rn <= 2)
    ).all():
        if cid in facts:
            facts[cid]["risk_class" if rn == 1 else "previous.risk_class"] = risk_class

    # payment behaviour: days late of the allocations of the last 12 months
    # (allocations carry copies of their payment's date and their invoice's customer and
    # due date: one index range per batch, no join)
    a = PaymentAllocation
    late = days_between(conn, a.payment_date, a.due_date)
    late_or_zero = case((late > 0, late), else_=literal(0))
    window_start = as_of - timedelta(days=PAYMENT_WINDOW_DAYS)
    for cid, total, count in conn.execute(
        select(a.customer_id, func.sum(late_or_zero), func.count())
        .where(
            _in_batch(a.customer_id, ids, lo, hi),
            a.payment_date > window_start,
            a.payment_date <= as_of,
        )
        .group_by(a.customer_id)
    ).all():
        if cid in facts and count:
            facts[cid]["avg_days_late"] = (Decimal(int(total)) / count).quantize(_DAYS)

    for cid, last_date in conn.execute(
        select(Payment.customer_id, func.max(Payment.date))
        .where(_in_batch(Payment.customer_id, ids, lo, hi), Payment.date <= as_of)
        .group_by(Payment.customer_id)
    ).all():
        if cid in facts:
            facts[cid]["last_payment_date"] = last_date

    # promises to pay broken in the last 90 days
    since = datetime.combine(as_of - timedelta(days=PROMISE_WINDOW_DAYS), time(), UTC)
    until = datetime.combine(as_of + timedelta(days=1), time(), UTC)
    when = func.coalesce(DunningPause.ended_at, DunningPause.created_at)
    for cid, count in conn.execute(
        select(DunningPause.customer_id, func.count())
        .where(
            _in_batch(DunningPause.customer_id, ids, lo, hi),
            DunningPause.kind == "promise",
            DunningPause.status == "broken",
            or_(
                and_(DunningPause.ended_at.is_not(None), DunningPause.ended_at >= since),
                and_(DunningPause.ended_at.is_(None), DunningPause.created_at >= since),
            ),
            when < until,
        )
        .group_by(DunningPause.customer_id)
    ).all():
        if cid in facts:
            facts[cid]["broken_promises"] = count

    # the facts of the last classification run (`previous.*`)
    for cid, stored in conn.execute(
        select(CustomerFactSnapshot.customer_id, CustomerFactSnapshot.facts).where(
            _in_batch(CustomerFactSnapshot.customer_id, ids, lo, hi)
        )
    ).all():
        if cid in facts:
            facts[cid].update(previous_from_snapshot(stored))

    return list(facts.items())


def customer_id_pages(conn: Connection, batch_size: int = BATCH_SIZE) -> Iterator[tuple[int, int]]:
    """(first id, last id) of consecutive pages of `batch_size` customers (keyset paging)."""
    last = 0
    while True:
        ids = list(
            conn.scalars(
                select(Customer.id)
                .where(Customer.id > last)
                .order_by(Customer.id)
                .limit(batch_size)
            )
        )
        if not ids:
            return
        yield ids[0], ids[-1]
        last = ids[-1]


def iter_facts(
    conn: Connection,
    as_of: date,
    ids: Sequence[int] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Iterator[list[tuple[int, Facts]]]:
    """Batches of (customer id, facts) ordered by id: every customer, or only `ids`."""
    if ids is not None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), batch_size):
            chunk = wanted[start : start + batch_size]
            yield _batch_facts(conn, as_of, chunk, 0, 0)
        return
    for lo, hi in customer_id_pages(conn, batch_size):
        yield _batch_facts(conn, as_of, None, lo, hi)


def facts_for_range(conn: Connection, as_of: date, lo: int, hi: int) -> list[tuple[int, Facts]]:
    """Facts of the customers whose id is in [lo, hi] (one page, for batch activities)."""
    return _batch_facts(conn, as_of, None, lo, hi)


def facts_by_customer(
    conn: Connection, as_of: date, ids: Sequence[int] | None = None
) -> dict[int, Facts]:
    """Every customer's facts (or those of `ids`) as a dict keyed by customer id."""
    out: dict[int, Facts] = {}
    for batch in iter_facts(conn, as_of, ids):
        out.update(batch)
    return out
