"""What the outside world sends the dunning workflows: shared by the CLI/import (senders)
and `workflows/dunning.py` (receiver). Plain dataclasses, so fields can be added safely."""

from __future__ import annotations

from dataclasses import dataclass

WORKFLOW_TYPE = "Dunning"
SIGNAL = "facts_changed"


def workflow_id(account: str) -> str:
    return f"dunning-{account}"


@dataclass
class DunningInput:
    account: str


@dataclass
class FactsChanged:
    """The facts are in the database; this says what changed, for the workflow history.

    kind: invoices_changed, payment_received, dispute_opened, dispute_closed,
    promise_to_pay, promise_cancelled, paused, resumed, policy_changed, risk_class_changed
    """

    kind: str
    detail: str = ""
    actor: str = "system"
