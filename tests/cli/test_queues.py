"""`cobro alerts|tasks|customers ...` on both databases: the same actions as the pages and
the API, JSON output, refusals as one line with exit code 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.models import Alert, Customer
from cobro.queues.tasks import new_task
from cobro.users import create_user

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def runner(use_database: str) -> CliRunner:
    engine = default_engine()
    create_user(engine, "maria", "correct horse battery", "collector")
    create_user(engine, "vic", "correct horse battery", "viewer")
    with transaction(engine) as s:
        c = Customer(account="K1", name="K", country="FR", language="fr", timezone="Europe/Paris")
        s.add(c)
        s.flush()
        for i, severity in enumerate(["critical", "warning", "warning"]):
            s.add(
                Alert(
                    customer_id=c.id,
                    name=f"rule{i}",
                    severity=severity,
                    message=f"m{i}",
                    dedup_key=f"k{i}",
                    ruleset_hash="h" * 64,
                )
            )
        s.add(new_task(s, c.id, "call", "call K1", "collector"))
    return CliRunner()


def _json(runner: CliRunner, *args: str) -> dict:
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def test_alerts_tasks_and_owner_from_the_command_line(runner: CliRunner) -> None:
    listed = _json(runner, "alerts", "list", "--severity", "warning")
    assert listed["total"] == 2
    ids = [str(a["id"]) for a in listed["rows"]]
    acked = runner.invoke(app, ["alerts", "ack", *ids, "--by", "maria"])
    assert acked.exit_code == 0 and acked.output.strip() == "2 alerts acknowledged"
    again = runner.invoke(app, ["alerts", "ack", *ids])
    assert (
        again.exit_code == 1
        and again.output.strip() == "error: the 2 alerts are already acknowledged"
    )
    assert _json(runner, "alerts", "list", "--state", "acknowledged")["total"] == 2
    to_vic = runner.invoke(app, ["alerts", "assign", ids[0], "--to", "vic"])
    assert to_vic.exit_code == 1 and "is a viewer" in to_vic.output
    assert runner.invoke(app, ["alerts", "assign", ids[0], "--to", "maria"]).exit_code == 0
    assert _json(runner, "alerts", "list", "--state", "all", "--assignee", "maria")["total"] == 1

    queue = _json(runner, "tasks", "list", "--view", "queue", "--as", "maria")
    assert [t["note"] for t in queue["rows"]] == ["call K1"]
    task = str(queue["rows"][0]["id"])
    took = runner.invoke(app, ["tasks", "take", task, "--as", "maria"])
    assert took.exit_code == 0 and took.output.strip() == f"task {task} is yours"
    mine = _json(runner, "tasks", "list", "--view", "mine", "--as", "maria")
    assert [t["assignee"] for t in mine["rows"]] == ["maria"]
    assert runner.invoke(app, ["tasks", "done", task, "--by", "maria"]).exit_code == 0

    owned = runner.invoke(app, ["customers", "owner", "K1", "maria", "--by", "boss"])
    assert owned.exit_code == 0 and owned.output.startswith("K1 is now owned by maria")
    assert [
        c["account"] for c in _json(runner, "customers", "list", "--owner", "maria")["rows"]
    ] == ["K1"]
    neither = runner.invoke(app, ["customers", "owner", "K1"])
    assert neither.exit_code == 1 and "--clear" in neither.output
    assert runner.invoke(app, ["customers", "owner", "K1", "--clear"]).exit_code == 0
