"""A customer's whole dunning life on the time-skipping server, with the real database,
the real capture SMTP/SMS servers and the real import: pre-due email, due email + SMS,
partial payment, promise to pay, broken promise (escalation + task), payment in full."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.dunning.store import pause_customer
from cobro.models import Communication, Customer, DunningPause, Task, TimelineEvent
from tests.helpers import eventually
from tests.helpers.dunning import import_rows, point_settings_at, pydantic_client, running_worker

pytestmark = pytest.mark.temporal


async def test_full_dunning_life(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path)
    client = pydantic_client(env)
    start = await env.get_current_time()
    day0 = start.date()
    due = day0 + timedelta(days=10)
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": "LIFE1",
                "name": "Boulangerie Dupont SARL",
                "country": "FR",
                "language": "fr",
                "timezone": "Europe/Paris",
                "email": "compta@dupont.example",
                "phone": "06 12 34 56 78",
            }
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": "F-A",
                "account": "LIFE1",
                "issue_date": (day0 - timedelta(days=20)).isoformat(),
                "due_date": due.isoformat(),
                "currency": "EUR",
                "amount": "1000.00",
            },
            {
                "number": "F-B",
                "account": "LIFE1",
                "issue_date": (day0 - timedelta(days=20)).isoformat(),
                "due_date": due.isoformat(),
                "currency": "EUR",
                "amount": "500.00",
            },
        ],
    )
    mails = capture_servers.mail
    sms = capture_servers.sms

    async with running_worker(client, queue):
        await notify(client, ["LIFE1"], FactsChanged("invoices_changed", "import"))
        handle = client.get_workflow_handle(workflow_id("LIFE1"))

        # -5d: one pre-due email for both invoices, in French, inside the Paris window
        await env.sleep(timedelta(days=6))
        await eventually(lambda: len(mails.list()) == 1)
        assert len(sms.list()) == 0
        assert _communications() == [("email", "pre_due", "fr", "sent")]

        # partial payment of F-A: it stays open and keeps its own level
        import_rows(
            tmp_path,
            "payments",
            [
                {
                    "reference": "P1",
                    "account": "LIFE1",
                    "date": (day0 + timedelta(days=6)).isoformat(),
                    "currency": "EUR",
                    "amount": "400.00",
                    "invoice": "F-A",
                }
            ],
        )
        await notify(client, ["LIFE1"], FactsChanged("payment_received", "P1"))

        # +1d: due email + SMS, both invoices grouped
        await env.sleep(timedelta(days=6))
        await eventually(lambda: len(mails.list()) == 2 and len(sms.list()) == 1)
        due_mail = mails.get(mails.list()[0].id)
        assert "F-A" in due_mail.text and "F-B" in due_mail.text
        assert "600" in due_mail.text  # F-A's remaining open amount

        # promise to pay until due+3; it is broken: escalation + task
        with transaction() as s:
            customer = s.scalar(select(Customer).where(Customer.account == "LIFE1"))
            pause_customer(s, customer, "promise", "will pay", "test", due + timedelta(days=3))
        await notify(client, ["LIFE1"], FactsChanged("promise_to_pay", "until due+3"))
        await env.sleep(timedelta(days=3))
        assert len(mails.list()) == 2, "no reminder while the promise holds"
        await env.sleep(timedelta(days=5))
        await eventually(lambda: len(mails.list()) == 3)
        with transaction() as s:
            statuses = s.scalars(select(DunningPause.status)).all()
            tasks = s.scalars(select(Task.source_key)).all()
            kinds = s.scalars(select(TimelineEvent.kind)).all()
        assert statuses == ["broken"]
        assert any(k.startswith("promise-broken") for k in tasks)
        assert "promise.broken" in kinds

        # payment in full: the workflow completes, nothing more is sent
        import_rows(
            tmp_path,
            "payments",
            [
                {
                    "reference": "P2",
                    "account": "LIFE1",
                    "date": (due + timedelta(days=8)).isoformat(),
                    "currency": "EUR",
                    "amount": "1100.00",
                    "invoice": "",
                }
            ],
        )
        await notify(client, ["LIFE1"], FactsChanged("payment_received", "P2"))
        result = await handle.result()
        assert result["stage"] == "closed"
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.COMPLETED
        if os.environ.get("COBRO_RECORD_HISTORY"):  # refresh tests/histories/ for replay tests
            history = await handle.fetch_history()
            Path(os.environ["COBRO_RECORD_HISTORY"]).write_text(history.to_json())
        await env.sleep(timedelta(days=40))

    assert len(mails.list()) == 3 and len(sms.list()) == 1
    comms = _communications()
    # the email and SMS of one step go out side by side: in either order
    steps = ["pre_due", "due", "reminder"]
    assert sorted(((c[0], c[1]) for c in comms), key=lambda c: (steps.index(c[1]), c[0])) == [
        ("email", "pre_due"),
        ("email", "due"),
        ("sms", "due"),
        ("email", "reminder"),
    ]
    assert all(c[2] == "fr" and c[3] == "sent" for c in comms)
    for summary in mails.list():
        assert summary.message_id  # derived from the idempotency key
    assert len({m.message_id for m in mails.list()}) == 3


def _communications() -> list[tuple[str, str, str | None, str]]:
    with transaction() as s:
        rows = s.execute(
            select(
                Communication.channel,
                Communication.template,
                Communication.language,
                Communication.status,
            ).order_by(Communication.id)
        ).all()
    return [tuple(r) for r in rows]
