"""No signal storms: `cobro dunning sync` and imports signal a customer's dunning workflow
only when its dunning facts changed (or its workflow is missing), counted in the workflow
histories of a real dev server; an unreachable Temporal server never loses the import.

The workflows' task queue has no worker: a signal lands in the history all the same, and
nothing else moves while the test counts."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.dunning.signals import workflow_id
from cobro.dunning.store import load_customer_facts, pause_customer
from cobro.settings import get_settings
from tests.helpers import RULES
from tests.helpers.dunning import (
    TEST_POLICY,
    import_rows,
    signal_counts,
    signals,
    write_csv,
)


@pytest.fixture
def dev_settings(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Client:
    """`cobro` pointed at the dev server, a task queue nobody polls and rules of its own."""
    address = dev_server_env.client.service_client.config.target_host
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", address)
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", f"notify-{uuid.uuid4().hex[:8]}")
    rules = tmp_path / "rules"
    rules.mkdir()
    for shipped in ("risk_classes.yaml", "alerts.yaml"):
        shutil.copy(RULES / shipped, rules / shipped)
    (rules / "dunning.yaml").write_text(TEST_POLICY)
    monkeypatch.setenv("COBRO_RULES_DIR", str(rules))
    get_settings.cache_clear()
    return dev_server_env.client


async def cobro(*args: str):  # type: ignore[no-untyped-def]
    """The CLI in a thread: it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def customers(accounts: list[str]) -> list[dict[str, str]]:
    return [
        {"account": a, "name": f"Customer {a}", "country": "FR", "email": f"ap@{a}.example"}
        for a in accounts
    ]


def invoice(account: str, number: str, open_amount: str = "100.00") -> dict[str, str]:
    return {
        "number": number,
        "account": account,
        "issue_date": "2026-10-01",
        "due_date": "2026-11-01",
        "currency": "EUR",
        "amount": "100.00",
        "open_amount": open_amount,
    }


async def _terminate(client: Client, accounts: list[str]) -> None:
    for account in accounts:
        handle = client.get_workflow_handle(workflow_id(account))
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")


@pytest.mark.temporal
async def test_a_second_sync_signals_nobody_a_change_signals_its_customer(
    dev_settings: Client, tmp_path: Path
) -> None:
    client = dev_settings
    prefix = f"S{uuid.uuid4().hex[:6]}"
    a, b, c = accounts = [f"{prefix}A", f"{prefix}B", f"{prefix}C"]
    import_rows(tmp_path, "customers", customers(accounts))
    import_rows(tmp_path, "invoices", [invoice(x, f"{x}-1") for x in accounts])
    try:
        first = await cobro("dunning", "sync")
        assert first.exit_code == 0, first.output
        assert "3 dunning workflow(s) signalled or started" in first.output
        assert await signal_counts(client, accounts) == {a: 1, b: 1, c: 1}

        again = await cobro("dunning", "sync")
        assert again.exit_code == 0, again.output
        assert "0 dunning workflow(s) signalled or started" in again.output
        assert "3 unchanged" in again.output
        assert await signal_counts(client, accounts) == {a: 1, b: 1, c: 1}

        # one customer's invoice changes (a partial payment in the ERP): that one only
        import_rows(tmp_path, "invoices", [invoice(b, f"{b}-1", open_amount="40.00")])
        result = await cobro("dunning", "sync")
        assert "1 dunning workflow(s) signalled or started (1 with changed facts" in result.output
        assert await signal_counts(client, accounts) == {a: 1, b: 2, c: 1}

        # a promise to pay recorded for C: C only
        with transaction() as session:
            found = load_customer_facts(session, c)
            assert found is not None
            pause_customer(session, found.customer, "promise", "will pay", "test", None)
        await cobro("dunning", "sync")
        assert await signal_counts(client, accounts) == {a: 1, b: 2, c: 2}

        # a collector's pause always signals (the history says who paused), and is recorded:
        # the next sync does not repeat it
        result = await cobro("dunning", "pause", "--customer", b, "--reason", "on the phone")
        assert result.exit_code == 0, result.output
        assert (await signals(client, b))[-1]["kind"] == "paused"
        assert "0 dunning workflow(s)" in (await cobro("dunning", "sync")).output
        assert await signal_counts(client, accounts) == {a: 1, b: 3, c: 2}

        # A's workflow was terminated: started again although its facts did not change
        await client.get_workflow_handle(workflow_id(a)).terminate("operator")
        result = await cobro("dunning", "sync")
        assert "(0 with changed facts, 1 not running), 2 unchanged" in result.output
        desc = await client.get_workflow_handle(workflow_id(a)).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        assert await signal_counts(client, accounts) == {a: 1, b: 3, c: 2}  # A: a new run

        # a policy change concerns everyone
        rules = get_settings().rules_path / "dunning.yaml"
        rules.write_text(TEST_POLICY.replace("+30d", "+35d"))
        result = await cobro("dunning", "sync")
        assert "3 dunning workflow(s) signalled or started" in result.output
        assert await signal_counts(client, accounts) == {a: 2, b: 4, c: 3}
        kinds = [s["kind"] for s in await signals(client, b)]
        assert kinds == ["invoices_changed", "invoices_changed", "paused", "invoices_changed"]
    finally:
        await _terminate(client, accounts)


@pytest.mark.temporal
async def test_an_import_signals_the_customers_it_changed(
    dev_settings: Client, tmp_path: Path
) -> None:
    client = dev_settings
    prefix = f"I{uuid.uuid4().hex[:6]}"
    a, b, c, d = accounts = [f"{prefix}{x}" for x in "ABCD"]
    import_rows(tmp_path, "customers", customers(accounts))
    import_rows(tmp_path, "invoices", [invoice(x, f"{x}-1") for x in accounts])
    try:
        assert (await cobro("dunning", "sync")).exit_code == 0
        assert await signal_counts(client, accounts) == {a: 1, b: 1, c: 1, d: 1}

        # the file names A, B and C; A gets a new invoice, B's is paid in part, C's is as it was
        rows = [invoice(a, f"{a}-2"), invoice(b, f"{b}-1", "60.00"), invoice(c, f"{c}-1")]
        result = await cobro("import", "invoices", str(write_csv(tmp_path / "i.csv", rows)))
        assert result.exit_code == 0, result.output
        assert "dunning: 2 workflow(s) notified" in result.output
        assert await signal_counts(client, accounts) == {a: 2, b: 2, c: 1, d: 1}
        assert (await signals(client, a))[-1]["kind"] == "invoices_changed"
        assert (await signals(client, a))[-1]["detail"] == "i.csv"

        # a payment settles D's invoice: D's workflow is told (so it can close)
        payment = [
            {
                "reference": f"{d}-P",
                "account": d,
                "date": "2026-11-20",
                "currency": "EUR",
                "amount": "100.00",
                "invoice": f"{d}-1",
            }
        ]
        result = await cobro("import", "payments", str(write_csv(tmp_path / "p.csv", payment)))
        assert result.exit_code == 0, result.output
        assert "dunning: 1 workflow(s) notified" in result.output
        assert await signal_counts(client, accounts) == {a: 2, b: 2, c: 1, d: 2}
        assert (await signals(client, d))[-1]["kind"] == "payment_received"

        # the same files again change nothing and wake nobody
        again = await cobro("import", "invoices", str(tmp_path / "i.csv"))
        assert "notified" not in again.output
        assert (await cobro("dunning", "sync")).output.startswith("0 dunning workflow(s)")
        assert await signal_counts(client, accounts) == {a: 2, b: 2, c: 1, d: 2}
    finally:
        await _terminate(client, accounts)


@pytest.mark.temporal
async def test_import_starts_workflows_only_for_something_to_chase(
    dev_settings: Client, tmp_path: Path
) -> None:
    client = dev_settings
    prefix = f"N{uuid.uuid4().hex[:6]}"
    one, two = f"{prefix}1", f"{prefix}2"
    try:
        result = await cobro(
            "import", "customers", str(write_csv(tmp_path / "c.csv", customers([one, two])))
        )
        assert result.exit_code == 0, result.output
        assert "dunning: 0 workflow(s) notified" in result.output, "nothing open, no workflow"
        result = await cobro(
            "import", "invoices", str(write_csv(tmp_path / "i.csv", [invoice(one, f"{one}-1")]))
        )
        assert result.exit_code == 0 and "1 workflow(s) notified" in result.output
        desc = await client.get_workflow_handle(workflow_id(one)).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        again = await cobro("import", "invoices", str(tmp_path / "i.csv"))
        assert "notified" not in again.output, "a no-op re-import wakes nobody"
    finally:
        await _terminate(client, [one])


def test_unreachable_temporal_keeps_the_import(
    use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app, ["import", "customers", str(write_csv(tmp_path / "c.csv", customers(["U1", "U2"])))]
    )
    assert result.exit_code == 0
    assert "customers: 2 rows" in result.output
    assert "cobro dunning sync" in result.output


@pytest.mark.temporal
async def test_a_server_without_visibility_is_asked_workflow_by_workflow(
    use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time-skipping test server cannot list workflows: a sync asks each customer's
    workflow instead, and still signals nobody the second time. (A server of its own: on
    that server, workflows nobody runs would stall the shared one's time skipping.)"""
    from cobro.db import default_engine
    from cobro.dunning.notify import all_running, notify_changed
    from cobro.dunning.signals import FactsChanged
    from cobro.temporal_support import test_server_path
    from tests.conftest import register_search_attributes
    from tests.helpers.dunning import pydantic_client

    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", f"notify-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path())
    )
    try:
        await register_search_attributes(env.client)
        client = pydantic_client(env)
        assert await all_running(client) is None
        accounts = ["TA", "TB"]
        import_rows(tmp_path, "customers", customers(accounts))
        import_rows(tmp_path, "invoices", [invoice(x, f"{x}-1") for x in accounts])
        change = FactsChanged("invoices_changed", "sync")
        first = await notify_changed(client, default_engine(), change)
        assert sorted(first.changed) == accounts
        second = await notify_changed(client, default_engine(), change)
        assert (second.signalled, second.unchanged) == (0, 2)
        assert await signal_counts(client, accounts) == dict.fromkeys(accounts, 1)
    finally:
        await env.shutdown()
