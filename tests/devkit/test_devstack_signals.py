"""`cobro dev` restarts do not storm: the stack's dunning wake-up over the demo portfolio
starts every workflow once, and a second start with nothing changed signals none (real dev
server, both databases; counted in the workflow histories)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine
from cobro.devkit.demo import load_demo
from cobro.devkit.devstack import _wake_dunning
from cobro.dunning.notify import accounts_with_open_invoices
from cobro.dunning.signals import workflow_id
from cobro.settings import get_settings
from tests.helpers.dunning import signal_counts


@pytest.mark.temporal
async def test_a_restart_with_nothing_new_signals_no_workflow(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = dev_server_env.client
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", f"devstack-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    load_demo(tmp_path / "demo", None, get_settings().insurer_simulator_seed)
    accounts = accounts_with_open_invoices(default_engine())
    assert len(accounts) > 200
    try:
        first = await _wake_dunning(get_settings())
        assert (first.signalled, first.unchanged) == (len(accounts), 0)
        assert set((await signal_counts(client, accounts)).values()) == {1}

        load_demo(tmp_path / "demo", None, get_settings().insurer_simulator_seed)  # a restart
        second = await _wake_dunning(get_settings())
        assert (second.signalled, second.unchanged) == (0, len(accounts))
        assert set((await signal_counts(client, accounts)).values()) == {1}
    finally:
        for account in accounts:
            handle = client.get_workflow_handle(workflow_id(account))
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test over")
