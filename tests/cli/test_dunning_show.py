"""`cobro dunning show` prints the workflow's state as sentences, amounts with their currency,
never a Python dict."""

from __future__ import annotations

from cobro.cli.dunning import workflow_lines


def test_a_running_workflow_in_words() -> None:
    state = {
        "workflow_id": "dunning-C1",
        "run_id": "r-1",
        "status": "RUNNING",
        "query": {
            "account": "C1",
            "stage": "reminder",
            "next_at": "2026-12-08T08:00:00+00:00",
            "overdue_amount": 1359.36,
            "risk_class": "high",
            "actions_done": 3,
            "last_outcomes": ["email reminder sent"],
        },
    }
    lines = workflow_lines(state, "EUR")
    assert lines == [
        "workflow dunning-C1: running (run r-1)",
        "  stage reminder; next step at 2026-12-08T08:00:00+00:00; overdue €1,359.36; "
        "risk class high; 3 action(s) done",
        "  last: email reminder sent",
    ]
    assert not any("{" in line for line in lines)


def test_an_unreachable_temporal_keeps_its_message() -> None:
    state = {"workflow_id": "dunning-C1", "status": "Temporal unreachable: connection refused"}
    assert workflow_lines(state, None) == [
        "workflow dunning-C1: Temporal unreachable: connection refused"
    ]
