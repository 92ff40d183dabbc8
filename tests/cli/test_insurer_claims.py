"""`cobro insurer declarations [--status pending] [--json]`, `... declarations approve`,
`cobro insurer claim` and `cobro insurer claims [--json]` on SQLite and PostgreSQL: the lists,
the actions through `cobro.insurers.actions`, and one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers import claims_sql, declarations_sql
from cobro.insurers.claiming import follow_claims
from cobro.models import InsurerClaim, InsurerDeclaration
from tests.helpers import free_port as closed_port  # nobody listens
from tests.helpers.insurers import connector
from tests.insurers.test_claims_sql import _declared
from tests.insurers.test_declarations_sql import TODAY, _customer, _run, _seed


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["insurer", *args], terminal_width=200)


@pytest.fixture
def no_temporal(monkeypatch: pytest.MonkeyPatch) -> None:
    from cobro.settings import get_settings

    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()


async def test_declarations_list_and_approve(
    engine: Engine, use_database: str, no_temporal: None
) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        await _declared(engine, sim, "A1")
        with transaction(engine) as s:
            declarations_sql.queue_overdues(s, _customer(s, "E"), ["E1"], TODAY)
    pending = run("declarations", "--status", "pending", "--json")
    assert pending.exit_code == 0, pending.output
    [e1] = json.loads(pending.output)
    assert (e1["invoice"], e1["status"], e1["category"]) == ("E1", "awaiting_approval", "OVD")
    table = run("declarations")
    assert "A1" in table.output and "registered" in table.output
    assert "1 awaiting approval: cobro insurer declarations approve" in table.output

    bad = run("declarations", "--status", "lost")
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert "status 'lost': one of pending, awaiting_approval" in bad.output
    neither = run("declarations", "approve", "--by", "bob")
    assert (
        neither.exit_code == 1 and "either --invoice NUMBER or --declaration ID" in neither.output
    )

    # recorded, then the workflow cannot be told (no Temporal here): said in one line
    done = run("declarations", "approve", "--declaration", str(e1["id"]), "--by", "bob")
    assert done.exit_code == 1 and done.output.count("\n") == 1
    assert "overdue declaration (OVD) of E1 approved" in done.output
    assert "could not be signalled" in done.output
    with engine.connect() as conn:
        status, by = conn.execute(
            select(InsurerDeclaration.status, InsurerDeclaration.approved_by).where(
                InsurerDeclaration.invoice_number == "E1"
            )
        ).one()
    assert (status, by) == ("queued", "bob")
    again = run("declarations", "approve", "--invoice", "E1", "--by", "bob")
    assert again.exit_code == 1
    assert "the overdue declaration of E1 is queued, not awaiting approval" in again.output


async def test_claim_and_the_claims_report(
    engine: Engine, use_database: str, no_temporal: None
) -> None:
    async with InsurerSimulator(buyers=5, seed=3, job_delay_seconds=0.05) as sim:
        _seed(engine, sim)
        await _declared(engine, sim, "A1")
        refused = run("claim", "--invoice", "U1", "--by", "carol")
        assert refused.exit_code == 1 and refused.output.count("\n") == 1
        assert "invoice U1 cannot be claimed: it is not insured" in refused.output
        filed = run("claim", "--invoice", "A1", "--by", "carol")
        assert "claim for A1 (800 USD) queued for the insurer" in filed.output
        with engine.connect() as conn:
            assert conn.scalar(select(InsurerClaim.status)) == "queued"
        now = datetime.now(UTC)
        async with connector(sim) as insurer:
            await follow_claims(["cobro-clm-A1"], insurer, _run, now, poll_interval=0.02)
            sim.decide_claim("cobro-clm-A1", amount=680.0, on=TODAY)
            await follow_claims(["cobro-clm-A1"], insurer, _run, now, poll_interval=0.02)
    report = run("claims", "--json")
    assert report.exit_code == 0, report.output
    data = json.loads(report.output)
    [claim] = data["claims"]
    assert (claim["status"], claim["claimed"], claim["indemnified"]) == (
        "indemnified", "800.00", "680.00",
    )  # fmt: skip
    assert data["totals"]["USD"]["recovered"] == "0.00"
    table = run("claims")
    assert "indemnified" in table.output and "K00000001" in table.output
    assert "USD: claimed 800.00, indemnified 680.00, recovered 0.00" in table.output
    unknown = run("claims", "--customer", "NOPE")
    assert unknown.exit_code == 1 and "no customer 'NOPE'" in unknown.output
    with transaction(engine) as s:
        assert claims_sql.note_recoveries(s, _customer(s, "A").id) == []
