"""Acceptance: a step due on 25 December in France goes out on the next business day at the
window opening in Europe/Paris; a US customer gets it in their own window."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from cobro.dunning.policy import load_policies
from cobro.dunning.schedule import DunningCustomer, InvoiceState, plan

POLICY = load_policies(
    """
policies:
  - name: standard
    calendar: customer
    business_days: false
    send_window: "09:00-18:00"
    steps:
      - {at: +1d, channel: email, template: due}
"""
).policies[0]
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


def _first(customer: DunningCustomer) -> datetime:
    invoice = InvoiceState("F-XMAS", date(2026, 12, 24), "EUR", Decimal("100"))
    return plan(customer, [invoice], POLICY, NOW).actions[0].at


def test_christmas_in_france_moves_to_monday_0900_paris() -> None:
    paris = DunningCustomer("FR1", "Europe/Paris", "FR", "fr", has_email=True)
    # 25 Dec: holiday; 26-27 Dec: weekend -> Monday 28 Dec, 09:00 in Paris (08:00 UTC)
    assert _first(paris) == datetime(2026, 12, 28, 8, 0, tzinfo=UTC)


def test_us_customer_gets_it_in_their_own_window() -> None:
    new_york = DunningCustomer("US1", "America/New_York", "US", "en", has_email=True)
    # US calendar: 25 Dec is a holiday too -> Monday 28 Dec, 09:00 in New York (14:00 UTC)
    assert _first(new_york) == datetime(2026, 12, 28, 14, 0, tzinfo=UTC)
