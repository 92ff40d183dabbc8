"""The dunning facts' digest (pure): the same facts give the same digest whatever order the
rows come in; any fact the planner reads changes it; and who must be signalled."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from cobro.dunning.digest import CHANGED, NOT_RUNNING, DunningFacts, fact_digest, why_signal


def facts(**changes: object) -> DunningFacts:
    base = DunningFacts(
        account="K1",
        customer_id=1,
        customer={
            "account": "K1",
            "country": "FR",
            "timezone": "Europe/Paris",
            "language": "fr",
            "email": "ap@k1.example",
            "phone": "+33612345678",
            "opt_out_email": False,
            "opt_out_sms": False,
            "segment": "retail",
        },
        invoices=[
            {
                "number": "F1",
                "due_date": date(2026, 12, 1),
                "open_amount": Decimal("100.0000"),
                "disputed": False,
            },
            {
                "number": "F2",
                "due_date": date(2026, 12, 15),
                "open_amount": Decimal("50.0000"),
                "disputed": False,
            },
        ],
        pauses=[],
        covers=[{"cover_id": "X1", "status": "granted", "granted_amount": Decimal("1000")}],
        risk_class="low",
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_same_facts_same_digest_whatever_the_row_order() -> None:
    one = facts()
    other = facts(invoices=list(reversed(one.invoices)))
    assert fact_digest(one, "p1") == fact_digest(other, "p1")
    assert len(fact_digest(one, "p1")) == 64


def test_decimal_scale_does_not_count() -> None:
    """PostgreSQL gives 100.0000, another path 100: the same amount."""
    one = facts()
    other = facts(invoices=[{**one.invoices[0], "open_amount": Decimal("100")}, one.invoices[1]])
    assert fact_digest(one, "p") == fact_digest(other, "p")


def _invoice(index: int, **changes: object) -> list[dict[str, object]]:
    rows = [dict(r) for r in facts().invoices]
    rows[index].update(changes)
    return rows


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"invoices": _invoice(0, open_amount=Decimal("60"))}, id="partial payment"),
        pytest.param({"invoices": _invoice(1, due_date=date(2026, 12, 31))}, id="due date"),
        pytest.param({"invoices": _invoice(0, disputed=True)}, id="disputed"),
        pytest.param({"invoices": facts().invoices[:1]}, id="an invoice paid"),
        pytest.param(
            {"pauses": [{"id": 1, "kind": "promise", "until": date(2026, 12, 20)}]},
            id="promise",
        ),
        pytest.param({"risk_class": "high"}, id="risk class"),
        pytest.param({"covers": []}, id="cover gone"),
        pytest.param(
            {"customer": {**facts().customer, "opt_out_sms": True}}, id="opt-out from SMS"
        ),
        pytest.param({"customer": {**facts().customer, "email": None}}, id="address removed"),
        pytest.param({"customer": {**facts().customer, "timezone": "UTC"}}, id="time zone"),
    ],
)
def test_every_planner_fact_changes_the_digest(changed: dict[str, object]) -> None:
    assert fact_digest(facts(**changed), "p") != fact_digest(facts(), "p")


def test_the_policy_is_part_of_the_digest() -> None:
    assert fact_digest(facts(), "policy-v1") != fact_digest(facts(), "policy-v2")


@pytest.mark.parametrize(
    ("stored", "has_open", "running", "expected"),
    [
        ("d", True, True, None),  # nothing new: leave it alone
        ("old", True, True, CHANGED),
        (None, True, True, CHANGED),  # never signalled through digests yet
        ("d", True, False, NOT_RUNNING),  # the workflow ended or the server is new
        ("old", True, False, CHANGED),
        ("old", False, True, CHANGED),  # the last invoice paid: the workflow may close
        ("old", False, False, None),  # nothing open, no workflow: nothing to start
        (None, False, False, None),
        ("d", False, True, None),
    ],
)
def test_who_is_signalled(
    stored: str | None, has_open: bool, running: bool, expected: str | None
) -> None:
    assert why_signal("d", stored, has_open, running) == expected
