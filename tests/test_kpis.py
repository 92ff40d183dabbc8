"""KPIs in SQL: worked textbook examples computed by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cobro.db import transaction
from cobro.exposure import DEFAULT_RULES
from cobro.kpis import (
    add_days,
    bucket_labels,
    cei,
    compute_kpis,
    countback_dso,
    countback_months,
    dso,
    months_back,
)
from cobro.models import Customer, InsurerCover, Invoice, Payment, PaymentAllocation

D = Decimal
AS_OF = date(2026, 12, 31)


# ------------------------------------------------------------------ pure formulas, no DB
def test_textbook_formulas() -> None:
    # DSO: receivables 1,300 over credit sales of 1,450 in 90 days: 1300/1450×90 = 80.6896 → 80.69
    assert dso(D(1300), D(1450), 90) == D("80.69")
    # no sales: undefined, never a division by zero
    assert dso(D(1300), D(0), 90) is None
    # CEI: begin 200,000 + sales 600,000 − end 300,000 = 500,000 collected
    #      over 200,000 + 600,000 − current 200,000 = 600,000 collectible → 83.33 %
    assert cei(D(200_000), D(600_000), D(300_000), D(200_000)) == D("83.33")
    # countback: AR 1,000; December sales 400 (31 d) → 600 left; November 350 (30 d) → 250
    # left; October 500 (31 d): 250/500 × 31 = 15.5 → 31 + 30 + 15.5 = 76.50 days
    assert countback_dso(D(1000), [(31, D(400)), (30, D(350)), (31, D(500))]) == D("76.50")
    # receivables older than the horizon: the whole horizon, a lower bound
    assert countback_dso(D(1000), [(31, D(100)), (30, D(100))]) == D("61.00")
    assert countback_dso(D(0), [(31, D(100))]) is None
    assert months_back(date(2026, 12, 31), 1) == date(2026, 11, 30)
    assert months_back(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_back(date(2026, 1, 15), 2) == date(2025, 11, 15)
    assert bucket_labels((30, 60, 90, 120)) == [
        "not due",
        "1-30",
        "31-60",
        "61-90",
        "91-120",
        ">120",
    ]
    assert bucket_labels((15, 45)) == ["not due", "1-15", "16-45", ">45"]


def test_add_is_computed_from_unrounded_figures() -> None:
    # receivables 1,500.04, current 153.05, sales 1,000 over N = 100 days:
    # DSO = 1500.04 / 1000 × 100 = 150.004 → 150.00; best = 153.05 / 1000 × 100 = 15.305 → 15.31
    # ADD = 150.004 − 15.305 = 134.699 → 134.70 (the rounded figures would give 134.69)
    assert dso(D("1500.04"), D(1000), 100) == D("150.00")
    assert dso(D("153.05"), D(1000), 100) == D("15.31")
    assert add_days(D("1500.04"), D("153.05"), D(1000), 100) == D("134.70")
    assert add_days(D(1), D(1), D(0), 100) is None


def test_countback_months_are_calendar_months() -> None:
    # a month end: the current month whole, then whole calendar months (30/31/28 days)
    assert countback_months(date(2026, 11, 30), 3) == [
        (date(2026, 11, 1), date(2026, 11, 30)),
        (date(2026, 10, 1), date(2026, 10, 31)),
        (date(2026, 9, 1), date(2026, 9, 30)),
    ]
    assert countback_months(date(2026, 3, 31), 2) == [
        (date(2026, 3, 1), date(2026, 3, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
    ]
    # mid-month (the stated convention): the month to date, then whole months
    assert countback_months(date(2027, 1, 15), 2) == [
        (date(2027, 1, 1), date(2027, 1, 15)),
        (date(2026, 12, 1), date(2026, 12, 31)),
    ]


# ------------------------------------------------------------------ the worked portfolio
def _customer(s, account: str, **kw) -> Customer:  # type: ignore[no-untyped-def]
    c = Customer(
        account=account, name=f"Name {account}", country="FR", language="fr",
        timezone="Europe/Paris", **kw,
    )  # fmt: skip
    s.add(c)
    s.flush()
    return c


def _invoice(s, c, number, issued, due, amount, open_, currency="EUR") -> Invoice:  # type: ignore[no-untyped-def]
    inv = Invoice(
        number=number, customer_id=c.id, issue_date=issued, due_date=due, currency=currency,
        amount=D(amount), open_amount=D(open_),
    )  # fmt: skip
    s.add(inv)
    s.flush()
    return inv


def _pay(s, c, ref, on, inv, amount) -> None:  # type: ignore[no-untyped-def]
    p = Payment(
        reference=ref, customer_id=c.id, date=on, currency=inv.currency, amount=D(amount),
        unallocated_amount=D(0),
    )  # fmt: skip
    s.add(p)
    s.flush()
    s.add(PaymentAllocation(payment_id=p.id, invoice_id=inv.id, amount=D(amount)))


def _cover(s, c, cover_id, status, granted, valid_until) -> None:  # type: ignore[no-untyped-def]
    s.add(
        InsurerCover(
            insurer="allianz_trade", policy_id="P1", cover_id=cover_id, customer_id=c.id,
            cover_type="permanent", granted_amount=D(granted), currency="EUR", status=status,
            valid_until=valid_until,
        )
    )  # fmt: skip


def seed(engine: Engine) -> None:
    """The portfolio of the worked example (as of 2026-12-31, N = 90 → start 2026-10-02)."""
    with transaction(engine) as s:
        a = _customer(s, "A", discretionary_limit=D(400), discretionary_limit_currency="EUR")
        b = _customer(s, "B")
        c = _customer(s, "C")
        #         number  issued             due                amount open
        _invoice(s, a, "A-1", date(2026, 12, 10), date(2027, 1, 9), "400", "400")  # not due
        _invoice(s, a, "A-2", date(2026, 11, 15), date(2026, 12, 15), "350", "350")  # 16 d late
        b1 = _invoice(s, b, "B-1", date(2026, 10, 15), date(2026, 11, 14), "500", "250")  # 47 d
        _invoice(s, b, "B-2", date(2026, 6, 1), date(2026, 7, 1), "100", "100")  # 183 d late
        c1 = _invoice(s, c, "C-1", date(2026, 12, 20), date(2027, 1, 19), "200", "0")
        c2 = _invoice(s, c, "C-2", date(2026, 9, 1), date(2026, 10, 1), "300", "0")
        _invoice(s, c, "C-3", date(2027, 1, 2), date(2027, 2, 1), "999", "999")  # future
        _invoice(s, c, "C-USD", date(2026, 12, 1), date(2026, 12, 31), "1000", "1000", "USD")
        _pay(s, b, "P1", date(2026, 11, 20), b1, "250")  # B-1 half paid inside the period
        _pay(s, c, "P2", date(2027, 1, 5), c1, "200")  # C-1 paid after as_of: open at as_of
        _pay(s, c, "P3", date(2026, 10, 20), c2, "300")  # C-2 open at start, paid in period
        _cover(s, a, "CV-A", "granted", "300", date(2027, 1, 20))  # in force, expiring
        _cover(s, a, "CV-A-old", "granted", "200", date(2026, 6, 30))  # lapsed but replaced
        _cover(s, b, "CV-B", "granted", "800", date(2026, 12, 1))  # expired, not replaced
        _cover(s, c, "CV-C", "granted", "1000", None)  # in force, open-ended


def test_worked_example(engine: Engine) -> None:
    seed(engine)
    k = compute_kpis(engine, AS_OF, exposure_rules=DEFAULT_RULES)
    assert sorted(k.currencies) == ["EUR", "USD"]  # never summed together
    eur = k.currencies["EUR"]
    # open at as_of: A-1 400 + A-2 350 + B-1 250 + B-2 100 + C-1 (0 + 200 paid 2027-01-05)
    # = 1,300 over 5 invoices; C-2 paid on 2026-10-20, C-3 issued after as_of
    assert eur.receivables == D("1300.0000") and eur.open_invoices == 5
    assert eur.credit_notes == D(0)
    # aging: not due A-1 400 + C-1 200; 1–30 A-2; 31–60 B-1; >120 B-2
    assert eur.aging == {
        "not due": D(600), "1-30": D(350), "31-60": D(250), "61-90": D(0), "91-120": D(0),
        ">120": D(100),
    }  # fmt: skip
    assert eur.current == D(600) and eur.overdue == D(700)
    # % overdue = 700 / 1300 × 100 = 53.846 → 53.85
    assert eur.overdue_pct == D("53.85")
    # credit sales issued in (2026-10-02, 2026-12-31]: A-1 400 + A-2 350 + B-1 500 + C-1 200
    assert eur.credit_sales == D(1450)
    # DSO = 1300 / 1450 × 90 = 80.69; best possible = 600 / 1450 × 90 = 37.24
    assert eur.dso == D("80.69") and eur.best_possible_dso == D("37.24")
    # ADD = 80.69 − 37.24 = 43.45 (= overdue 700 / 1450 × 90 = 43.448)
    assert eur.add == D("43.45")
    # countback: Dec sales 600 (A-1, C-1; 31 d) → 700 left; Nov 350 (A-2; 30 d) → 350 left;
    # Oct 500 (B-1; 31 d): 350/500 × 31 = 21.7 → 31 + 30 + 21.7 = 82.70
    assert eur.countback_dso == D("82.70")
    # beginning AR at 2026-10-02: B-2 100 + C-2 (0 + 300 paid 2026-10-20) = 400
    assert eur.beginning_receivables == D(400)
    # CEI = (400 + 1450 − 1300) / (400 + 1450 − 600) × 100 = 550 / 1250 = 44.00
    assert eur.cei == D("44.00")
    # covered: A min(750, 300) = 300; B no cover in force: 0; C min(200, 1000) = 200 → 500
    # covered share = 500 / 1300 = 38.46 %
    assert eur.covered == D(500) and eur.covered_pct == D("38.46")
    # limits are the exposure engine's (here its defaults: covers in force + own limit):
    # A = cover 300 + own 400 = 700 < used 750: over by 50; B: no cover in force, nothing
    # authorised, 350 used: over by 350. C's exposure is in USD (most of what it owes)
    assert eur.over_limit_customers == 2 and eur.over_limit_excess == D(400)
    assert [(o.account, o.open, o.limit, o.excess) for o in eur.over_limit] == [
        ("B", D(350), D(0), D(350)),
        ("A", D(750), D(700), D(50)),
    ]
    assert [(d.account, d.open, d.overdue, d.limit, d.excess) for d in eur.top_debtors] == [
        ("A", D(750), D(350), D(700), D(50)),
        ("B", D(350), D(350), D(0), D(350)),
        ("C", D(200), D(0), None, None),
    ]
    # covers: CV-A valid until 2027-01-20 ≤ as_of + 30; CV-B lapsed, B has no other cover
    assert (eur.covers_expiring, eur.covers_expiring_amount) == (1, D(300))
    assert (eur.covers_expired, eur.covers_expired_amount) == (1, D(800))

    usd = k.currencies["USD"]
    # USD: 1000 not due (due on as_of), sales 1000 → DSO 1000/1000×90 = 90.00; countback
    # December 1000 ≥ 1000 → 1000/1000 × 31 = 31.00; no cover in USD; CEI undefined
    # (0 + 1000 − 1000) / (0 + 1000 − 1000) → None
    assert (usd.receivables, usd.current, usd.overdue_pct) == (D(1000), D(1000), D("0.00"))
    assert (usd.dso, usd.countback_dso, usd.add, usd.cei) == (D("90.00"), D("31.00"), D(0), None)
    assert usd.covered == D(0) and usd.covered_pct == D("0.00")
    # C in USD: 1000 used, its cover is in EUR: nothing authorised in USD
    assert (usd.over_limit_customers, usd.over_limit_excess) == (1, D(1000))


def seed_credit_notes(engine: Engine) -> None:
    """A textbook portfolio with credit notes (one open, one used), N = 90."""
    with transaction(engine) as s:
        a = _customer(s, "A")
        #                number  issued             due                amount   open
        _invoice(s, a, "I1", date(2026, 11, 10), date(2026, 12, 10), "1000", "1000")
        _invoice(s, a, "I2", date(2026, 10, 5), date(2026, 11, 4), "800", "800")
        i3 = _invoice(s, a, "I3", date(2026, 9, 20), date(2026, 10, 20), "600", "0")
        _invoice(s, a, "CN1", date(2026, 11, 20), date(2026, 11, 20), "-250", "-200")
        _invoice(s, a, "CN2", date(2026, 10, 31), date(2026, 10, 31), "-100", "0")
        _invoice(s, a, "I4", date(2026, 12, 5), date(2027, 1, 4), "300", "300")
        _pay(s, a, "P1", date(2026, 10, 25), i3, "600")


def test_credit_notes_are_netted_and_countback_at_a_month_end(engine: Engine) -> None:
    seed_credit_notes(engine)
    eur = compute_kpis(engine, date(2026, 11, 30)).currencies["EUR"]
    # receivables (net) = I1 1,000 + I2 800 + CN1 −200 = 1,600; I3 paid, CN2 used,
    # I4 issued after as_of; the open credit note is −200, 2 invoices are open
    assert (eur.receivables, eur.credit_notes, eur.open_invoices) == (D(1600), D(-200), 2)
    # aging by due date, credit notes included: not due I1 1,000;
    # 1–30: I2 (26 d late) 800 + CN1 (10 d) −200 = 600
    assert eur.aging["not due"] == D(1000) and eur.aging["1-30"] == D(600)
    assert (eur.current, eur.overdue) == (D(1000), D(600))
    # % overdue = 600 / 1,600 = 37.50
    assert eur.overdue_pct == D("37.50")
    # net credit sales in (2026-09-01, 2026-11-30]: 1,000 + 800 + 600 − 250 − 100 = 2,050
    assert eur.credit_sales == D(2050)
    # DSO = 1,600 / 2,050 × 90 = 70.2439 → 70.24; best = 1,000 / 2,050 × 90 = 43.9024 → 43.90
    # ADD = 600 / 2,050 × 90 = 26.3415 → 26.34
    assert (eur.dso, eur.best_possible_dso, eur.add) == (D("70.24"), D("43.90"), D("26.34"))
    # countback at the month end 2026-11-30, calendar months:
    #   November (30 d): I1 1,000 − CN1 250 = 750 ≤ 1,600 → 850 left, 30 days
    #   October  (31 d): I2 800 − CN2 100 = 700 ≤ 850 → 150 left, 30 + 31 = 61 days
    #   September (30 d): I3 600 > 150 → 150 / 600 × 30 = 7.5 → 68.50
    # (rolling months back from the 30th would count (10-30, 11-30] as 31 days: 66.17)
    assert eur.countback_dso == D("68.50")
    # CEI: nothing issued by the period start (begin AR 0):
    # (0 + 2,050 − 1,600) / (0 + 2,050 − 1,000) × 100 = 450 / 1,050 = 42.857 → 42.86
    assert (eur.beginning_receivables, eur.cei) == (D(0), D("42.86"))


def test_countback_in_mid_month(engine: Engine) -> None:
    seed_credit_notes(engine)
    eur = compute_kpis(engine, date(2026, 12, 15)).currencies["EUR"]
    # receivables = I1 1,000 + I2 800 + CN1 −200 + I4 300 = 1,900
    assert eur.receivables == D(1900)
    # countback at 2026-12-15 (mid-month: December to date counts 15 days):
    #   December 1–15 (15 d): I4 300 → 1,600 left, 15 days
    #   November (30 d): 750 → 850 left, 45 days
    #   October (31 d): 700 → 150 left, 76 days
    #   September (30 d): 150 / 600 × 30 = 7.5 → 83.50
    assert eur.countback_dso == D("83.50")
    # DSO: net sales in (2026-09-16, 2026-12-15]: I2 800 + I1 1,000 + I4 300 − 250 − 100
    # = 1,750 (I3 was issued 09-20: + 600 = 2,350) → 1,900 / 2,350 × 90 = 72.7659 → 72.77
    assert eur.credit_sales == D(2350) and eur.dso == D("72.77")


def test_an_invoice_open_now_and_paid_after_as_of_counts_once(engine: Engine) -> None:
    """X: 100, 60 paid after as_of, 40 still open → 100 open at as_of, one invoice.
    Y: 100 paid in two payments after as_of → 100 open at as_of, one invoice.
    Z: paid before as_of → closed. The open amounts and the later allocations are read from
    two different places; each invoice is counted once all the same."""
    with transaction(engine) as s:
        c = _customer(s, "X")
        x = _invoice(s, c, "X", date(2026, 11, 1), date(2026, 12, 1), "100", "40")
        y = _invoice(s, c, "Y", date(2026, 11, 2), date(2027, 1, 2), "100", "0")
        z = _invoice(s, c, "Z", date(2026, 11, 3), date(2026, 12, 3), "70", "0")
        _pay(s, c, "P1", date(2027, 1, 10), x, "60")
        _pay(s, c, "P2", date(2027, 1, 11), y, "30")
        _pay(s, c, "P3", date(2027, 1, 12), y, "70")
        _pay(s, c, "P4", date(2026, 12, 20), z, "70")
    eur = compute_kpis(engine, AS_OF).currencies["EUR"]
    assert (eur.open_invoices, eur.receivables) == (2, D(200))
    assert eur.aging["not due"] == D(100) and eur.aging["1-30"] == D(100)
    assert eur.overdue == D(100)  # X, due 2026-12-01
    assert [(d.account, d.open, d.overdue) for d in eur.top_debtors] == [("X", D(200), D(100))]
    # at the period start (2026-10-02) none of them was issued: no beginning receivables
    assert eur.beginning_receivables == D(0)
    # after every payment only X's 40 is left
    later = compute_kpis(engine, date(2027, 2, 1)).currencies["EUR"]
    assert (later.open_invoices, later.receivables) == (1, D(40))


def test_as_of_in_the_past_and_options(engine: Engine) -> None:
    seed(engine)
    # as of 2026-10-31: B-1 open 250 + 250 paid on 2026-11-20 = 500 (due 11-14: not due);
    # B-2 100 (122 d late: >120); C-2 paid 10-20: 0; A-*, C-1, USD not issued yet
    k = compute_kpis(engine, date(2026, 10, 31), currency="EUR")
    assert list(k.currencies) == ["EUR"]
    eur = k.currencies["EUR"]
    assert eur.receivables == D(600) and eur.aging["not due"] == D(500)
    assert eur.aging[">120"] == D(100)
    # sales in (2026-08-02, 2026-10-31]: C-2 300 + B-1 500 = 800 → DSO 600/800 × 90 = 67.50
    assert eur.credit_sales == D(800) and eur.dso == D("67.50")
    # custom buckets and period: 15/45 days, N = 30 (sales issued after 2026-12-01)
    k = compute_kpis(engine, AS_OF, buckets=(45, 15), period_days=30)
    eur = k.currencies["EUR"]
    assert k.buckets == ["not due", "1-15", "16-45", ">45"]
    # A-2 16 d late → 16–45: 350; B-1 47 d + B-2 183 d → >45: 250 + 100 = 350
    assert eur.aging == {"not due": D(600), "1-15": D(0), "16-45": D(350), ">45": D(350)}
    # sales: A-1 400 + C-1 200 = 600; DSO = 1300 / 600 × 30 = 65.00
    assert eur.credit_sales == D(600) and eur.dso == D("65.00")
    with pytest.raises(ValueError):
        compute_kpis(engine, AS_OF, buckets=())
    assert compute_kpis(engine, date(2020, 1, 1)).currencies == {}


def test_cli_json_contract_and_errors(use_database: str) -> None:
    from cobro.cli import app
    from cobro.db import default_engine

    seed(default_engine())
    runner = CliRunner()
    out = runner.invoke(app, ["kpis", "--as-of", "2026-12-31", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["as_of"] == "2026-12-31" and data["period_days"] == 90
    eur = data["currencies"]["EUR"]
    assert {
        "receivables", "aging", "dso", "countback_dso", "best_possible_dso", "add", "cei",
        "overdue_pct", "covered", "covered_pct", "over_limit", "top_debtors",
        "covers_expired", "covers_expiring",
    } <= set(eur)  # fmt: skip
    assert (
        eur["dso"] == "80.69"
        and eur["cei"] == "44.00"
        and Decimal(eur["receivables"]) == Decimal("1300")
    )
    assert data["currencies"]["USD"]["cei"] is None
    assert eur["open_invoices"] == 5 and isinstance(eur["open_invoices"], int)
    assert eur["top_debtors"][0]["account"] == "A"

    only = runner.invoke(app, ["kpis", "--as-of", "2026-12-31", "--currency", "usd", "--json"])
    assert only.exit_code == 0 and list(json.loads(only.output)["currencies"]) == ["USD"]

    table = runner.invoke(app, ["kpis", "--as-of", "2026-12-31"])
    assert table.exit_code == 0, table.output
    assert "80.69" in table.output and "EUR" in table.output and "USD" in table.output

    bad = runner.invoke(app, ["kpis", "--as-of", "31/12/2026"])
    assert bad.exit_code == 1
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--as-of" in lines[0] and "YYYY-MM-DD" in lines[0]
