"""Exposure from the database, in batches: hand-computed numbers on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine

from cobro.exposure import ExposureRules, UsedRules
from cobro.exposure.rulefile import rules_of
from cobro.exposure.sql import exposures_for, iter_exposures
from cobro.rules.ruleset import Ruleset
from tests.helpers import RULES
from tests.helpers.exposure import seed

AS_OF = date(2026, 6, 30)
D = Decimal


def _shipped() -> ExposureRules:
    return rules_of(Ruleset.load(RULES))


def test_every_customer_hand_computed(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        got = {e.account: e for e in exposures_for(conn, AS_OF, _shipped(), explain=True)}
    assert list(got) == ["A", "B", "C", "D", "E", "F"]

    a = got["A"]
    assert a.used_parts == {
        "overdue": D("1000.50"),
        "disputed_overdue": D("2000"),
        "not_due": D("3000"),
        "disputed_not_due": D("400"),
        "credit_notes": D("-250"),
    }
    assert a.used == D("6150.50")
    assert (a.insured, a.insured_basis, a.insured_policies) == (D("25000"), "named", ("P1", "P2"))
    assert (a.discretionary, a.discretionary_basis) == (D("5000"), "segment")
    assert (a.authorised, a.available, a.usage_pct) == (D("30000"), D("23849.50"), D("20.50"))
    assert not a.over_limit

    b = got["B"]  # FR, graded 4, 29 days overdue: the unnamed-buyer ceiling applies
    assert (b.insured, b.insured_basis, b.insured_policies) == (D("20000"), "unnamed", ("5012001",))
    assert (b.discretionary, b.discretionary_basis) == (D("500"), "customer")
    assert (b.authorised, b.used, b.available, b.usage_pct) == (
        D("20500"),
        D("800"),
        D("19700"),
        D("3.90"),
    )

    c = got["C"]  # US: the policy does not cover it
    assert (c.insured, c.insured_basis) == (D("0"), "none")
    assert (c.discretionary, c.authorised, c.used, c.usage_pct) == (
        D("20000"),
        D("20000"),
        D("1000"),
        D("5.00"),
    )
    assert any("applies_to" in n and "country='US'" in n for n in c.notes)

    d = got["D"]  # listed as unnamed buyer but grade 8 and 100 days overdue; own limit 0
    assert (d.insured, d.discretionary, d.authorised) == (D("0"), D("0"), D("0"))
    assert (d.used, d.available, d.usage_pct, d.over_limit) == (D("300"), D("-300"), None, True)
    assert "grade=8" in d.notes[0] and "max_days_overdue=100" in d.notes[0]

    e = got["E"]  # US, but the insurer lists it as an unnamed buyer of 5012001
    assert (e.insured, e.insured_basis, e.used, e.usage_pct) == (
        D("20000"),
        "unnamed",
        D("0"),
        D("0.00"),
    )

    f = got["F"]  # a refused named cover: no unnamed-buyer cover either
    assert (f.insured, f.insured_basis, f.authorised, f.over_limit) == (
        D("0"),
        "none",
        D("0"),
        True,
    )
    assert "cover_status='refused'" in f.notes[0]


def test_rules_change_what_counts_as_used(engine: Engine) -> None:
    seed(engine)
    rules = ExposureRules(used=UsedRules(not_yet_due=False, disputed=False))
    with engine.connect() as conn:
        got = {e.account: e for e in exposures_for(conn, AS_OF, rules)}
    assert got["A"].used == D("750.50")  # 1000.50 - 250
    assert got["C"].used == D("0")
    assert got["B"].insured == D("0")  # no unnamed-buyer policy in these rules
    assert got["B"].authorised == D("500")


def test_batches_and_ids_give_the_same_answers(engine: Engine) -> None:
    seed(engine)
    rules = _shipped()
    with engine.connect() as conn:
        whole = exposures_for(conn, AS_OF, rules)
        pages = list(iter_exposures(conn, AS_OF, rules, batch_size=4))
        some = exposures_for(conn, AS_OF, rules, ids=[whole[3].customer_id, whole[1].customer_id])
        chunks = list(
            iter_exposures(conn, AS_OF, rules, ids=[w.customer_id for w in whole], batch_size=2)
        )
    assert [len(p) for p in pages] == [4, 2]
    assert [e for p in pages for e in p] == whole
    assert [e.account for e in some] == ["B", "D"] and some == [whole[1], whole[3]]
    assert [len(c) for c in chunks] == [2, 2, 2] and [e for c in chunks for e in c] == whole


def test_empty_database(engine: Engine) -> None:
    with engine.connect() as conn:
        assert exposures_for(conn, AS_OF, _shipped()) == []
