"""A customer imported with five invoices of different ages, under the shipped policies, on
the time-skipping server with the real database (both), the real import and the real capture
SMTP/SMS servers: one email and one SMS in its first window, listing every open invoice, at
the gentlest level it has not received; the next contact no sooner than `min_gap`; no final
notice before a reminder; each invoice's level recorded; the uncovered invoice gets a task,
never a claim."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.calendar import add_days, get_calendar
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.models import (
    Communication,
    Customer,
    InsurerCover,
    InsurerDeclaration,
    Invoice,
    InvoiceStepReached,
    Task,
)
from tests.helpers import RULES, eventually
from tests.helpers.dunning import import_rows, point_settings_at, pydantic_client, running_worker

pytestmark = pytest.mark.temporal
PARIS = ZoneInfo("Europe/Paris")
FR = get_calendar("FR")


async def test_five_invoices_one_contact_per_channel_gentle_catch_up_and_claims(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    shipped = (RULES / "dunning.yaml").read_text(encoding="utf-8")
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path, policy=shipped)
    (tmp_path / "rules" / "insurance.yaml").write_bytes((RULES / "insurance.yaml").read_bytes())
    client = pydantic_client(env)
    start = await env.get_current_time()
    day0 = start.astimezone(PARIS).date()
    ages = {"K1-N": -10, "K1-J": 1, "K1-A": 20, "K1-B": 40, "K1-U": 65}  # days late
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": "K1",
                "name": "Quincaillerie Martin SAS",
                "country": "FR",
                "language": "fr",
                "timezone": "Europe/Paris",
                "email": "compta@martin.example",
                "phone": "06 98 76 54 32",
                "insurer_buyer_id": "84512679",  # the insurer's company id: declarable
            }
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": number,
                "account": "K1",
                "issue_date": (day0 - timedelta(days=late + 30)).isoformat(),
                "due_date": (day0 - timedelta(days=late)).isoformat(),
                "currency": "USD" if number == "K1-B" else "EUR",
                "amount": f"{100 * (i + 1)}.00",
            }
            for i, (number, late) in enumerate(ages.items())
        ],
    )
    # A named cover in force from 50 days ago: K1-U (65 days late) was not covered when due.
    with transaction() as s:
        customer = s.scalar(select(Customer).where(Customer.account == "K1"))
        s.add(
            InsurerCover(
                insurer="allianz_trade",
                policy_id="5012001",
                cover_id="K1-COVER",
                customer_id=customer.id,
                cover_type="permanent",
                nominative=True,
                granted_amount=Decimal("50000"),
                currency="EUR",
                status="granted",
                valid_from=day0 - timedelta(days=50),
            )
        )
    mails, sms = capture_servers.mail, capture_servers.sms

    async with running_worker(client, queue):
        await notify(client, ["K1"], FactsChanged("invoices_changed", "import"))
        handle = client.get_workflow_handle(workflow_id("K1"))

        # The first window: one email and one SMS, nothing else that day.
        first_day = _first_window(start)
        end_of_first = datetime.combine(first_day, datetime.min.time(), PARIS) + timedelta(hours=20)
        await env.sleep(end_of_first - start)
        await eventually(lambda: len(mails.list()) == 1 and len(sms.list()) == 1)
        comms = _communications()
        # the email and the SMS of one window go out side by side: either may be first
        assert sorted((c.channel, c.template) for c in comms) == [("email", "due"), ("sms", "due")]
        first = mails.get(mails.list()[0].id)
        for number in ages:  # the statement lists every open invoice...
            assert number in first.text
        due_block, upcoming_block = first.text.split("Factures non encore échues")
        assert "K1-N" in upcoming_block and "K1-N" not in due_block  # ...not-yet-due apart
        late_u = ages["K1-U"] + (first_day - day0).days  # days late on the day it is sent
        assert "K1-U | échéance" in due_block and f"{late_u} jours de retard" in due_block
        assert "Total échu EUR" in due_block and "Total échu USD" in due_block  # per currency
        assert "malgré" not in first.text.lower()  # nothing was sent before
        levels = _levels()
        # the gentlest unsent level (the due notice; no pre-due after the due date)
        assert {n: levels.get(n) for n in ("K1-J", "K1-A", "K1-B", "K1-U")} == {
            n: [1] for n in ("K1-J", "K1-A", "K1-B", "K1-U")
        }, (start, levels)
        assert levels.get("K1-N", [0]) == [0], (start, levels)  # its pre-due if due by then

        # ~80 days later: the whole sequence, at the policy's pace
        await env.sleep(timedelta(days=100))
        await eventually(_settled)
        await handle.terminate("test over")

    comms = _communications()
    emails = [c for c in comms if c.channel == "email"]
    # no final notice before a reminder was sent
    templates = [c.template for c in emails]
    assert "final_notice" in templates and "reminder" in templates
    assert templates.index("reminder") < templates.index("final_notice")
    # one contact per channel and day, and min_gap (3 business days) between two
    for channel in ("email", "sms"):
        days = [c.day for c in comms if c.channel == channel]
        assert len(days) == len(set(days))
        for earlier, later in itertools.pairwise(days):
            assert later >= add_days(earlier, 3, FR, True), (channel, earlier, later)
    assert len(mails.list()) == len(emails) and len(sms.list()) == len(comms) - len(emails)
    # each invoice climbed its levels one by one (the pre-due notice only before its due date)
    levels = _levels()
    assert levels["K1-N"][:6] == [0, 1, 2, 3, 4, 5]
    for number in ("K1-J", "K1-A", "K1-B", "K1-U"):
        assert levels[number] == [1, 2, 3, 4, 5], number
    # ...and never reached a level before the one below it (every channel of it)
    with transaction() as s:
        reached = s.execute(
            select(
                InvoiceStepReached.invoice_id, InvoiceStepReached.step_index, InvoiceStepReached.at
            )
        ).all()
    spans: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    for invoice, index, at in reached:
        spans[invoice, index].append(at)
    for (invoice, index), ats in spans.items():
        if (invoice, index + 1) in spans:
            assert max(ats) <= min(spans[invoice, index + 1]), (invoice, index)
    # the overdue declarations for the covered invoices only (the EUR policy waits for a
    # collector's approval: a task each); a task for the uncovered one, never a declaration
    with transaction() as s:
        tasks = s.execute(select(Task.kind, Task.note)).all()
        declared = dict(
            s.execute(select(InsurerDeclaration.invoice_number, InsurerDeclaration.status)).all()
        )
    assert declared == {n: "awaiting_approval" for n in ("K1-N", "K1-J", "K1-A", "K1-B")}
    approvals = [note for kind, note in tasks if kind == "declaration"]
    assert len(approvals) == 4 and all("K1-U" not in note for note in approvals)
    assert any("approve the overdue declaration (OVD) of K1-A" in note for note in approvals)
    not_insured = [note for kind, note in tasks if "not insured" in note]
    assert len(not_insured) == 1 and "K1-U" in not_insured[0]


class _Comm:
    def __init__(self, channel: str, template: str, at: datetime) -> None:
        self.channel, self.template = channel, template
        self.day = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(PARIS).date()


def _communications() -> list[_Comm]:
    with transaction() as s:
        rows = s.execute(
            select(Communication.channel, Communication.template, Communication.idempotency_key)
            .where(Communication.status == "sent")
            .order_by(Communication.id)
        ).all()
        when = dict(
            s.execute(
                select(InvoiceStepReached.idempotency_key, InvoiceStepReached.at).where(
                    InvoiceStepReached.channel.in_(["email", "sms"])
                )
            ).all()
        )
    return [_Comm(ch, template, when[key]) for ch, template, key in rows]


def _levels() -> dict[str, list[int]]:
    with transaction() as s:
        rows = s.execute(
            select(Invoice.number, InvoiceStepReached.step_index)
            .join(Invoice, Invoice.id == InvoiceStepReached.invoice_id)
            # levels reached at one instant (the final notice and the "not insured" task
            # that comes with it) in step order
            .order_by(InvoiceStepReached.at, InvoiceStepReached.step_index)
        ).all()
    out: dict[str, list[int]] = defaultdict(list)
    for number, index in rows:
        if index not in out[number]:
            out[number].append(index)
    return dict(out)


def _settled() -> bool:
    levels = _levels()
    return all(levels.get(n, [])[-1:] == [5] for n in ("K1-J", "K1-A", "K1-B", "K1-U", "K1-N"))


def _first_window(start: datetime) -> date:
    """The day of the first send window at or after `start` (09:00-18:00 Paris, business)."""
    local = start.astimezone(PARIS)
    d = local.date() if local.hour < 18 else local.date() + timedelta(days=1)
    while not FR.is_business_day(d):
        d += timedelta(days=1)
    return d
