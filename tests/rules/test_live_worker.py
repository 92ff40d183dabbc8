"""A running worker picks up `cobro rules apply` without a restart: the next Classify run on
the same worker uses the new active version; a broken file is refused and the next run still
uses the last good version. Real dev Temporal server, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.models import GradeHistory, RiskAssessment
from cobro.rules.classify import load_active_ruleset
from cobro.settings import get_settings
from tests.helpers.dunning import pydantic_client, running_worker
from tests.helpers.rules import RISK_CLASSES, seed, write_rules
from workflows.classify import Classify, ClassifyInput, ClassifyResult

STRICTER = RISK_CLASSES.replace("grade >= 8", "grade >= 5")
BROKEN = RISK_CLASSES.replace("grade >= 8", "grade >= 5 and")


async def classify(client: Client, queue: str) -> ClassifyResult:
    return await client.execute_workflow(
        Classify.run,
        ClassifyInput(batch_size=2, notify_dunning=False, send_digest=False),
        id=f"classify-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )


def class_of(account_id: int) -> str:
    with transaction() as s:
        return (
            s.query(RiskAssessment.risk_class)
            .filter(RiskAssessment.customer_id == account_id)
            .order_by(RiskAssessment.assessed_at.desc(), RiskAssessment.id.desc())
            .limit(1)
            .scalar()
        )


@pytest.mark.temporal
async def test_running_worker_uses_each_newly_applied_version(
    dev_server_env: WorkflowEnvironment,
    use_database: str,
    tmp_path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = f"rules-live-{uuid.uuid4().hex[:8]}"
    base = write_rules(tmp_path / "base")
    monkeypatch.setenv("COBRO_RULES_DIR", str(base))
    monkeypatch.setenv("COBRO_TEMPORAL_TASK_QUEUE", queue)
    get_settings.cache_clear()
    ids = seed(default_engine(), datetime.now(UTC).date())
    with transaction() as s:  # A is graded 6: low under the base rules, critical if 5+
        s.add(
            GradeHistory(
                customer_id=ids["A"], insurer="x", grade=6, graded_on=datetime.now(UTC).date()
            )
        )
    runner = CliRunner()
    client = pydantic_client(dev_server_env)

    async with running_worker(client, queue):
        first = await classify(client, queue)
        assert class_of(ids["A"]) == "low"
        assert first.ruleset_hash == load_active_ruleset().hash

        applied = runner.invoke(
            app,
            [
                "rules",
                "apply",
                str(write_rules(tmp_path / "v2", STRICTER)),
                "--author",
                "ana",
                "--message",
                "grade 5+ is critical",
            ],
        )
        assert applied.exit_code == 0, applied.output
        v2 = load_active_ruleset().hash
        assert v2 != first.ruleset_hash

        second = await classify(client, queue)  # same worker, no restart
        assert second.ruleset_hash == v2
        assert second.transitions == {"low -> critical": 1}
        assert class_of(ids["A"]) == "critical"

        refused = runner.invoke(
            app,
            [
                "rules",
                "apply",
                str(write_rules(tmp_path / "v3", BROKEN)),
                "--author",
                "bob",
                "--message",
                "oops",
            ],
        )
        assert refused.exit_code == 1
        assert "risk_classes.yaml:" in refused.output and "Traceback" not in refused.output
        assert load_active_ruleset().hash == v2

        third = await classify(client, queue)
        assert third.ruleset_hash == v2
        assert third.changes == 0
        assert class_of(ids["A"]) == "critical"
