"""Dunning: policies (`rules/dunning.yaml`), business calendars and the pure planner.

    from cobro.dunning import load_policies_file, plan, DunningCustomer, InvoiceState, Pause
    rules = load_policies_file("rules/dunning.yaml")
    policy = rules.select({"risk_class": "low"})        # or the rules engine's matcher
    p = plan(customer, invoices, policy, now, pauses)    # DunningPlan
    p.due, p.next_wakeup, p.to_json()

See `cobro.dunning.schedule` for the planning rules (levels, stale steps, grouping, keys).
"""

from cobro.dunning.calendar import (
    BusinessCalendar,
    Calendar,
    SendWindow,
    get_calendar,
    next_send_instant,
    parse_window,
    window_opening,
)
from cobro.dunning.policy import (
    DunningPolicy,
    DunningRulesFile,
    DunningStep,
    PolicyError,
    format_offset,
    load_policies,
    load_policies_file,
    parse_offset,
    simple_match,
)
from cobro.dunning.schedule import (
    DroppedChannel,
    DunningCustomer,
    DunningPlan,
    InvoiceState,
    Pause,
    PlannedAction,
    SkippedStep,
    as_of_instant,
    idempotency_key,
    plan,
)

__all__ = [
    "BusinessCalendar",
    "Calendar",
    "DroppedChannel",
    "DunningCustomer",
    "DunningPlan",
    "DunningPolicy",
    "DunningRulesFile",
    "DunningStep",
    "InvoiceState",
    "Pause",
    "PlannedAction",
    "PolicyError",
    "SendWindow",
    "SkippedStep",
    "as_of_instant",
    "format_offset",
    "get_calendar",
    "idempotency_key",
    "load_policies",
    "load_policies_file",
    "next_send_instant",
    "parse_offset",
    "parse_window",
    "plan",
    "simple_match",
    "window_opening",
]
