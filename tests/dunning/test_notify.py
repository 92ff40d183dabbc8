"""Imports wake the dunning workflows (signal-with-start); an unreachable Temporal server
never loses the import, it says how to catch up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.settings import get_settings
from tests.helpers.dunning import write_csv

CUSTOMERS = [
    {"account": "N1", "name": "Notify One", "country": "FR"},
    {"account": "N2", "name": "Notify Two", "country": "ES"},
]
INVOICES = [
    {
        "number": "NF-1",
        "account": "N1",
        "issue_date": "2026-01-01",
        "due_date": "2026-02-01",
        "currency": "EUR",
        "amount": "10.00",
    }
]


@pytest.mark.temporal
async def test_import_signals_with_start_each_account(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = dev_server_env.client.service_client.config.target_host
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", address)
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", "notify-test-no-worker")
    get_settings.cache_clear()
    runner = CliRunner()

    async def cobro(*args: str):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(runner.invoke, app, list(args))  # its own event loop

    result = await cobro("import", "customers", str(write_csv(tmp_path / "c.csv", CUSTOMERS)))
    assert result.exit_code == 0, result.output
    assert "2 workflow(s) notified" in result.output
    result = runner.invoke(
        app, ["import", "invoices", str(write_csv(tmp_path / "i.csv", INVOICES))]
    )
    assert result.exit_code == 0 and "1 workflow(s) notified" in result.output
    for account in ("N1", "N2"):
        handle = dev_server_env.client.get_workflow_handle(f"dunning-{account}")
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("test over")
    again = await cobro("import", "invoices", str(tmp_path / "i.csv"))
    assert "notified" not in again.output, "a no-op re-import wakes nobody"


def test_unreachable_temporal_keeps_the_import(
    use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app, ["import", "customers", str(write_csv(tmp_path / "c.csv", CUSTOMERS))]
    )
    assert result.exit_code == 0
    assert "customers: 2 rows" in result.output
    assert "cobro dunning sync" in result.output
