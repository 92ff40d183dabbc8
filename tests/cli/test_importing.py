"""`cobro import` while Cobro runs: the imported accounts are classified right after the
import, by the same Classify workflow as the daily run (a real dev server and worker, on
SQLite and PostgreSQL): first classifications from "unclassified", alerts, the digest."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine
from cobro.devkit.capture import CaptureServers
from cobro.dunning.signals import workflow_id
from cobro.models import Alert, Customer, RiskAssessment
from cobro.settings import get_settings
from tests.helpers import RULES
from tests.helpers.dunning import (
    TEST_POLICY,
    import_rows,
    pydantic_client,
    running_worker,
    write_csv,
)
from workflows.classify import Classify


async def cobro(*args: str):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def _started(output: str) -> str:
    found = re.search(r"being classified \(workflow (classify-import-[\w-]+)\)", output)
    assert found, output
    return found.group(1)


@pytest.mark.temporal
async def test_an_import_classifies_the_accounts_it_imported(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture_servers: CaptureServers,
) -> None:
    queue = f"import-{uuid.uuid4().hex[:8]}"
    rules = tmp_path / "rules"
    rules.mkdir()
    for shipped in ("risk_classes.yaml", "alerts.yaml"):
        shutil.copy(RULES / shipped, rules / shipped)
    (rules / "dunning.yaml").write_text(TEST_POLICY)
    address = dev_server_env.client.service_client.config.target_host
    for key, value in {
        "COBRO_TEMPORAL_ADDRESS": address,
        "COBRO_TEMPORAL_TASK_QUEUE": queue,
        "COBRO_RULES_DIR": str(rules),
        "COBRO_SMTP_PORT": str(capture_servers.smtp_port),
        "COBRO_COLLECTIONS_TEAM_EMAIL": "team@example.com",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    client: Client = pydantic_client(dev_server_env)
    prefix = f"M{uuid.uuid4().hex[:6]}"
    a, b, old = f"{prefix}A", f"{prefix}B", f"{prefix}OLD"
    # a customer that was there before (imported without the CLI): not in the files below
    import_rows(tmp_path, "customers", [{"account": old, "name": "Old", "country": "FR"}])
    people = [{"account": x, "name": f"Customer {x}", "country": "ES"} for x in (a, b)]
    overdue = date.today() - timedelta(days=120)
    bill = {
        "number": f"{a}-1", "account": a, "issue_date": (overdue - timedelta(30)).isoformat(),
        "due_date": overdue.isoformat(), "currency": "EUR", "amount": "5000.00",
    }  # fmt: skip
    try:
        async with running_worker(client, queue):
            result = await cobro(
                "import", "customers", str(write_csv(tmp_path / "c.csv", people)), "--no-notify"
            )
            assert result.exit_code == 0, result.output
            assert "classification: 2 account(s) being classified" in result.output
            first = await client.get_workflow_handle_for(
                Classify.run, _started(result.output)
            ).result()
            # a first classification: from "unclassified", the imported accounts only
            assert (first.evaluated, first.transitions) == (2, {"unclassified -> low": 2})

            result = await cobro("import", "invoices", str(write_csv(tmp_path / "i.csv", [bill])))
            assert result.exit_code == 0, result.output
            assert "classification: 1 account(s) being classified" in result.output
            second = await client.get_workflow_handle_for(
                Classify.run, _started(result.output)
            ).result()
            assert (second.evaluated, second.transitions) == (1, {"low -> critical": 1})
            assert second.alert_counts.get("became_critical") == 1
            assert second.digest == "sent"
    finally:
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(workflow_id(a)).terminate("test over")

    with default_engine().connect() as conn:
        classes = dict(
            conn.execute(
                select(Customer.account, RiskAssessment.risk_class)
                .join(RiskAssessment, RiskAssessment.customer_id == Customer.id)
                .order_by(RiskAssessment.id)
            ).all()
        )
        assert classes == {a: "critical", b: "low"}  # the older customer was left alone
        message = conn.scalar(select(Alert.message).where(Alert.name == "became_critical"))
        assert message.startswith(f"Customer {a} is now critical (was low)"), message
    subjects = [m.subject for m in capture_servers.mail.list()]
    assert "Cobro classification: 2 customer(s) classified (2 low)" in subjects


def test_without_temporal_the_import_says_how_to_catch_up(
    use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:9")  # nothing listens there
    get_settings.cache_clear()
    people = [{"account": "Z1", "name": "Zeta", "country": "FR"}]
    result = CliRunner().invoke(
        app, ["import", "customers", str(write_csv(tmp_path / "c.csv", people)), "--no-notify"]
    )
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert line.startswith("warning: 1 imported account(s) not classified (")
    assert line.endswith("run `cobro classify` once it is up")
    renamed = [{"account": "Z1", "name": "Zeta SA", "country": "FR"}]
    quiet = CliRunner().invoke(
        app,
        ["import", "customers", str(write_csv(tmp_path / "r.csv", renamed)), "--no-notify",
         "--no-classify"],
    )  # fmt: skip
    assert quiet.exit_code == 0 and "1 updated" in quiet.output
    assert "warning" not in quiet.output
