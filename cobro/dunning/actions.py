"""A planned dunning action as it crosses the Temporal boundary.

No `from __future__ import annotations` here: pydantic (our Temporal data converter)
resolves these annotations inside the workflow sandbox, where string annotations fail.
"""

from dataclasses import dataclass, field
from datetime import datetime

from cobro.dunning.schedule import PlannedAction


@dataclass
class ActionSpec:
    """One planned action as it crosses the Temporal boundary (JSON-friendly)."""

    account: str
    kind: str  # email | sms | task | claim | declare
    step_index: int
    policy: str
    invoices: list[str]
    idempotency_key: str
    at: datetime
    template: str | None = None
    note: str | None = None
    assignee_role: str | None = None
    # invoice -> the step it reaches with this action (a grouped contact mixes levels);
    # absent in histories recorded before grouping: every invoice reaches `step_index`
    levels: dict[str, int] = field(default_factory=dict)
    # "not_insured": the task that replaces a claim; "instalment": the reminder of a payment
    # plan's instalment (`step_index` is the instalment; it moves no invoice's level)
    reason: str | None = None

    @property
    def is_instalment(self) -> bool:
        return self.reason == "instalment"

    def level_of(self, number: str) -> int:
        return self.levels.get(number, self.step_index)

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
            levels=dict(action.levels),
            reason=action.reason,
        )
