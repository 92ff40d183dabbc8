"""Claims on SQLite and PostgreSQL through the real connector and the loopback simulator: a
claim is only for an insured invoice whose OVD the insurer registered; it is filed once even
when an attempt was killed between the POST and its record; an acknowledged claim is asked
for the insurer's decision once a day; a refusal is recorded with a task; payments after the
indemnity are recoveries, the insurer's share to pass on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers import claims as pure
from cobro.insurers import claims_sql as store
from cobro.insurers import declarations_sql
from cobro.insurers.claiming import follow_claims
from cobro.insurers.declaring import file_pending
from cobro.models import InsurerClaim, Invoice, Payment, PaymentAllocation, Task, TimelineEvent
from tests.helpers.insurers import connector
from tests.insurers.test_declarations_sql import TODAY, _customer, _run, _seed

D = Decimal
NOW = datetime.now(UTC)


async def _declared(engine: Engine, sim: InsurerSimulator, *numbers: str) -> None:
    """The OVDs of `numbers` (customer A) registered by the insurer."""
    with transaction(engine) as s:
        store_rows = declarations_sql.queue_overdues(s, _customer(s, "A"), list(numbers), TODAY)
        references = [r.client_reference for r in store_rows]
    async with connector(sim) as insurer:
        await file_pending(references, insurer, _run, poll_interval=0.02)


def _claim(engine: Engine, reference: str) -> InsurerClaim:
    with transaction(engine) as s:
        row = s.scalar(select(InsurerClaim).where(InsurerClaim.client_reference == reference))
        s.expunge(row)
        return row


async def test_only_an_insured_declared_invoice_is_claimed(
    engine: Engine, use_database: str
) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        await _declared(engine, sim, "A1")
        with transaction(engine) as s:
            declarations_sql.queue_overdues(s, _customer(s, "E"), ["E1"], TODAY)  # approval
        refusals = {}
        for number in ("U1", "A2", "E1", "NOPE"):
            with pytest.raises(store.ClaimError) as caught, transaction(engine) as s:
                store.file_claim(s, number, "carol", TODAY)
            refusals[number] = str(caught.value)
        with transaction(engine) as s:
            row = store.file_claim(s, "A1", "carol", TODAY)
            assert (row.status, row.claimed_amount, row.insured_percent) == ("queued", 800, 85)
    assert "not insured" in refusals["U1"]
    assert "never declared" in refusals["A2"]
    assert "awaiting approval, not registered" in refusals["E1"]
    assert refusals["NOPE"] == "no invoice 'NOPE'"
    assert sim.claim_counts()["claims"] == 0  # nothing sent before the connector runs


async def test_filed_once_after_a_kill_then_refused(engine: Engine, use_database: str) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        await _declared(engine, sim, "A1")
        with transaction(engine) as s:
            store.file_claim(s, "A1", "carol", TODAY)
            customer_id = _customer(s, "A").id
        ref = pure.client_reference("A1")
        async with connector(sim) as insurer:
            # an attempt killed after the insurer received the POST, before its record
            filing = await _run(store.begin_filing, ref)
            await insurer.file_claim(pure.request(filing.claim))
            lines = await follow_claims([ref], insurer, _run, NOW, poll_interval=0.02)
            assert lines == [f"{ref}: acknowledged (K00000001), decision awaited"]
            assert await _run(store.pending_references, customer_id, NOW) == []
            later = NOW + store.CHECK_EVERY
            assert await _run(store.pending_references, customer_id, later) == [ref]
            assert await _run(store.next_check_at, customer_id) == later
            sim.decide_claim(ref, indemnify=False, reason="the debt was disputed")
            lines = await follow_claims([ref], insurer, _run, later, poll_interval=0.02)
        assert lines == [f"{ref}: refused (the debt was disputed)"]
        counts = sim.claim_counts()
        assert (counts["received"], counts["claims"]) == (2, 1)
        claim = _claim(engine, ref)
        assert (claim.status, claim.reason, claim.attempts) == (
            "refused", "the debt was disputed", 2,
        )  # fmt: skip
        with engine.connect() as conn:
            kinds = list(conn.scalars(
                select(TimelineEvent.kind).where(TimelineEvent.kind.like("claim.%"))
                .order_by(TimelineEvent.id)
            ))  # fmt: skip
            notes = list(conn.scalars(select(Task.note).where(Task.kind == "claim")))
        assert kinds == ["claim.queued", "claim.filed", "claim.acknowledged", "claim.refused"]
        assert notes == [
            "the insurer refused the claim for A1: the debt was disputed; decide on legal action"
        ]


async def test_payments_after_the_indemnity_are_recoveries(
    engine: Engine, use_database: str
) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        await _declared(engine, sim, "A1")
        with transaction(engine) as s:
            store.file_claim(s, "A1", "carol", TODAY)
            customer_id = _customer(s, "A").id
        ref = pure.client_reference("A1")
        async with connector(sim) as insurer:
            await follow_claims([ref], insurer, _run, NOW, poll_interval=0.02)
            sim.decide_claim(ref, amount=680.0, on=TODAY)
            await follow_claims([ref], insurer, _run, NOW, poll_interval=0.02)
    assert _claim(engine, ref).indemnified_amount == D(680)

    def pay(reference: str, day, amount: str) -> list[str]:  # type: ignore[no-untyped-def]
        with transaction(engine) as s:
            invoice = s.scalar(select(Invoice).where(Invoice.number == "A1"))
            p = Payment(reference=reference, customer_id=customer_id, date=day,
                        currency="USD", amount=D(amount), unallocated_amount=D(0))  # fmt: skip
            s.add(p)
            s.flush()
            s.add(PaymentAllocation(payment_id=p.id, invoice_id=invoice.id, amount=D(amount)))
            invoice.open_amount -= D(amount)
            s.flush()
            return store.note_recoveries(s, customer_id, NOW)

    assert pay("P0", TODAY, "100") == []  # the day of the indemnity: not a recovery
    assert pay("P1", TODAY + timedelta(days=1), "200") == ["A1: recovery of 200.00 USD"]
    assert pay("P2", TODAY + timedelta(days=2), "40") == ["A1: recovery of 40.00 USD"]
    with transaction(engine) as s:
        assert store.note_recoveries(s, customer_id, NOW) == []  # nothing new
    claim = _claim(engine, ref)
    assert claim.recovered_amount == D(240)
    with engine.connect() as conn:
        [row] = store.claim_rows(conn)
        notes = sorted(conn.scalars(select(Task.note).where(Task.note.like("pass on%"))))
    assert (row["claimed"], row["indemnified"], row["recovered"]) == ("800.00", "680.00", "240.00")
    assert row["recovered_to_insurer"] == "204.00"  # 85 % of 240
    assert notes == [
        "pass on 170.00 USD recovered on A1 to the insurer (claim K00000001, 85% insured)",
        "pass on 34.00 USD recovered on A1 to the insurer (claim K00000001, 85% insured)",
    ]
    assert store.totals([row]) == {
        "USD": {"claimed": "800.00", "indemnified": "680.00", "recovered": "240.00",
                "recovered_to_insurer": "204.00"}
    }  # fmt: skip
