"""Claims in a customer's life on the time-skipping server, both databases, the real worker,
connector and loopback insurer simulator: an insured invoice goes overdue, its OVD is
declared by the dunning `declare` step, a credit manager hands it over (the claim), the
customer's workflow files it once and follows it to the insurer's acknowledgement, asks for
the decision once a day until the insurer indemnifies it; a payment after the indemnity is
a recovery (the insurer's 85 % share to pass on); an uninsured invoice is never declared nor
claimed."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.insurers import claims_sql
from cobro.models import Customer, InsurerClaim, InsurerDeclaration, Task, TimelineEvent
from cobro.settings import get_settings
from tests.helpers import RULES, eventually
from tests.helpers.dunning import import_rows, point_settings_at, pydantic_client, running_worker
from tests.helpers.exposure import add_cover, add_customer
from tests.insurers.test_declarations_life import POLICY, _invoice

pytestmark = pytest.mark.temporal

D = Decimal
REF = "cobro-clm-I1"


def _claim() -> InsurerClaim | None:
    with transaction() as s:
        row = s.scalar(select(InsurerClaim).where(InsurerClaim.client_reference == REF))
        if row is not None:
            s.expunge(row)
        return row


def _status() -> str | None:
    row = _claim()
    return None if row is None else row.status


def _kinds(account: str) -> list[str]:
    with transaction() as s:
        cid = s.scalar(select(Customer.id).where(Customer.account == account))
        return list(
            s.scalars(
                select(TimelineEvent.kind)
                .where(TimelineEvent.customer_id == cid)
                .order_by(TimelineEvent.id)
            )
        )


async def test_claim_indemnified_then_a_recovery(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path, policy=POLICY)
    for shipped in ("insurance.yaml", "exposure.yaml"):  # the USD policy: 85 % insured
        shutil.copy(RULES / shipped, tmp_path / "rules" / shipped)
    client = pydantic_client(env)
    day0 = (await env.get_current_time()).date()
    due = day0 + timedelta(days=2)
    async with InsurerSimulator(buyers=5, seed=4, job_delay_seconds=0.05) as sim:
        monkeypatch.setenv("COBRO_INSURER_BASE_URL", sim.base_url)
        monkeypatch.setenv("COBRO_INSURER_API_KEY", sim.api_key)
        get_settings.cache_clear()
        with transaction() as s:
            ins = add_customer(
                s, "INS", country="US", email="ap@ins.example",
                insurer_buyer_id=sim.portfolio.buyers[0].company_id,
            )  # fmt: skip
            add_cover(
                s, ins, "C-INS", "5012002", "granted", "20000", valid_from=day0 - timedelta(90)
            )
            _invoice(s, ins, "I1", "1000", due)
            uni = add_customer(s, "UNI", country="US", email="ap@uni.example")
            _invoice(s, uni, "U1", "5000", due)
        async with running_worker(client, queue):
            await notify(client, ["INS", "UNI"], FactsChanged("invoices_changed", "import"))
            # before its OVD is registered the invoice cannot be claimed
            with pytest.raises(claims_sql.ClaimError, match="never declared"), transaction() as s:
                claims_sql.file_claim(s, "I1", "carol", day0)
            # the OVD at deadline - 5d (declare-by = due + 45 days, USD policy)
            await env.sleep(timedelta(days=44))
            await eventually(
                lambda: (
                    sim.declaration_counts()["declarations"]["OVD"] == 1
                    and _declared("I1") == "registered"
                ),
                30,
            )
            today = (await env.get_current_time()).date()
            with pytest.raises(claims_sql.ClaimError, match="not insured"), transaction() as s:
                claims_sql.file_claim(s, "U1", "carol", today)  # the uninsured: never claimed
            with transaction() as s:
                claims_sql.file_claim(s, "I1", "carol", today)
            with pytest.raises(claims_sql.ClaimError, match="already claimed"), transaction() as s:
                claims_sql.file_claim(s, "I1", "carol", today)
            await notify(client, ["INS"], FactsChanged("claim_filed", "I1", "carol"))
            await eventually(lambda: _status() == "acknowledged", 30)
            assert sim.claim_counts()["statuses"] == {REF: "Acknowledged"}

            # the insurer decides; the workflow asks again within a day
            decided = today + timedelta(days=1)
            sim.decide_claim(REF, amount=850.0, on=decided)
            await env.sleep(timedelta(days=2))
            await eventually(lambda: _status() == "indemnified", 30)

            # the buyer pays 300 after the indemnity: a recovery, 85 % owed to the insurer
            import_rows(
                tmp_path,
                "payments",
                [
                    {
                        "reference": "P1",
                        "account": "INS",
                        "date": (decided + timedelta(days=2)).isoformat(),
                        "currency": "USD",
                        "amount": "300.00",
                        "invoice": "I1",
                    }
                ],
            )
            await notify(client, ["INS"], FactsChanged("payment_received", "P1"))
            await eventually(lambda: (c := _claim()) is not None and c.recovered_amount > 0, 30)
            await client.get_workflow_handle(workflow_id("INS")).terminate("test over")
            await client.get_workflow_handle(workflow_id("UNI")).terminate("test over")

        counts = sim.claim_counts()
        assert counts["received"] == counts["claims"] == 1  # filed once, no POST repeated
        assert counts["references"] == [REF]
        claim = _claim()
        assert claim is not None
        assert (claim.status, claim.claimed_amount, claim.indemnified_amount) == (
            "indemnified", D(1000), D(850),
        )  # fmt: skip
        assert claim.indemnified_on == decided and claim.insured_percent == D(85)
        assert claim.recovered_amount == D(300)
        [row] = claims_sql.claim_rows(default_engine().connect())
        assert (row["claimed"], row["indemnified"], row["recovered"]) == ("1000.00", "850.00",
                                                                         "300.00")  # fmt: skip
        assert row["recovered_to_insurer"] == "255.00"
        with transaction() as s:
            notes = list(s.scalars(select(Task.note).where(Task.kind == "claim")))
            uninsured = s.scalars(
                select(InsurerDeclaration.invoice_number).where(
                    InsurerDeclaration.invoice_number == "U1"
                )
            ).all()
        assert [n for n in notes if n.startswith("pass on")] == [
            "pass on 255.00 USD recovered on I1 to the insurer (claim K00000001, 85% insured)"
        ]
        kinds = _kinds("INS")
        for kind in ("queued", "filed", "acknowledged", "indemnified", "recovery"):
            assert kinds.count(f"claim.{kind}") == 1, (kind, kinds)
        assert not uninsured
        assert not any(k.startswith(("claim.", "declaration.")) for k in _kinds("UNI"))


def _declared(number: str) -> str | None:
    with transaction() as s:
        return s.scalar(
            select(InsurerDeclaration.status).where(
                InsurerDeclaration.invoice_number == number, InsurerDeclaration.category == "OVD"
            )
        )
