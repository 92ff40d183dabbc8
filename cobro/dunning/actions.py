"""A planned dunning action as it crosses the Temporal boundary.

No `from __future__ import annotations` here: pydantic (our Temporal data converter)
resolves these annotations inside the workflow sandbox, where string annotations fail.
"""

from dataclasses import dataclass
from datetime import datetime

from cobro.dunning.schedule import PlannedAction


@dataclass
class ActionSpec:
    """One planned action as it crosses the Temporal boundary (JSON-friendly)."""

    account: str
    kind: str  # email | sms | task | claim
    step_index: int
    policy: str
    invoices: list[str]
    idempotency_key: str
    at: datetime
    template: str | None = None
    note: str | None = None
    assignee_role: str | None = None

    @classmethod
    def from_planned(cls, account: str, action: PlannedAction) -> "ActionSpec":
        return cls(
            account=account,
            kind=action.kind,
            step_index=action.step_index,
            policy=action.policy,
            invoices=list(action.invoices),
            idempotency_key=action.idempotency_key,
            at=action.at,
            template=action.template,
            note=action.note,
            assignee_role=action.assignee_role,
        )
