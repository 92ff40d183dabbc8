"""A running worker plans and sends with the active rules version: `cobro rules apply` of a
new `dunning.yaml` changes the next contact without a restart, and a broken one is refused
and changes nothing. The rules directory only proposes a candidate once a version is
applied. Time-skipping Temporal server, real capture SMTP/SMS servers, both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged, workflow_id
from cobro.models import Communication, RulesetVersion
from tests.helpers import eventually
from tests.helpers.dunning import (
    TEST_POLICY,
    import_rows,
    point_settings_at,
    pydantic_client,
    running_worker,
)

pytestmark = pytest.mark.temporal

# the pre-due reminder goes by SMS instead of email from the second version on
BY_SMS = TEST_POLICY.replace(
    "{at: -5d, channel: email, template: pre_due}", "{at: -5d, channel: sms, template: due}"
)
BROKEN = TEST_POLICY.replace("{at: +1d, channel: [email, sms]", "{at: +1x, channel: [email, sms]")


def apply(rules: Path, message: str) -> int:
    out = CliRunner().invoke(
        app, ["rules", "apply", str(rules), "--author", "test", "--message", message]
    )
    return out.exit_code


def communications() -> list[tuple[str, str]]:
    with transaction() as s:
        rows = s.execute(
            select(Communication.channel, Communication.template).order_by(Communication.id)
        ).all()
    return [(r[0], r[1]) for r in rows]


def hashes() -> tuple[set[str | None], str]:
    """The rules hashes the contacts recorded, and the active version's."""
    with transaction() as s:
        recorded = set(s.scalars(select(Communication.ruleset_hash)))
        active = s.scalar(select(RulesetVersion.content_hash).where(RulesetVersion.active))
    return recorded, active


async def test_a_running_worker_follows_rules_apply_of_dunning_yaml(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    # its own workflow id: the session's server still has the other database's run sleeping
    account = f"LIVE-{uuid.uuid4().hex[:8]}"
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path)
    rules = tmp_path / "rules"
    assert apply(rules, "first version") == 0
    client = pydantic_client(env)
    day0 = (await env.get_current_time()).date()
    due = day0 + timedelta(days=10)
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": account,
                "name": "Ferretería Núñez SL",
                "country": "ES",
                "language": "es",
                "timezone": "Europe/Madrid",
                "email": "pagos@nunez.example",
                "phone": "+34 612 34 56 78",
            }
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": "L-1",
                "account": account,
                "issue_date": (day0 - timedelta(days=20)).isoformat(),
                "due_date": due.isoformat(),
                "currency": "EUR",
                "amount": "800.00",
            }
        ],
    )
    try:
        await live_life(env, client, queue, account, rules, capture_servers)
    finally:  # a sleeping workflow no worker polls would stop the server skipping time
        await client.get_workflow_handle(workflow_id(account)).terminate("test over")
    first, *due_day = communications()  # the due day's email and SMS go out side by side
    assert first == ("sms", "due") and sorted(due_day) == [("email", "due"), ("sms", "due")]
    recorded, active = hashes()
    assert recorded == {active}, "every contact stores the hash of the rules it was sent under"


async def live_life(env, client, queue, account, rules, capture_servers) -> None:  # type: ignore[no-untyped-def]
    async with running_worker(client, queue):
        await notify(client, [account], FactsChanged("invoices_changed", "import"))
        await env.sleep(timedelta(days=1))  # the workflow has planned with version 1

        # version 2 while the workflow sleeps: the directory changes and is applied
        (rules / "dunning.yaml").write_text(BY_SMS)
        assert apply(rules, "pre-due by SMS") == 0
        await env.sleep(timedelta(days=5))
        await eventually(lambda: len(capture_servers.sms.list()) == 1)
        assert capture_servers.mail.list() == []
        assert communications() == [("sms", "due")]

        # a broken version is refused; editing the directory alone changes nothing either
        (rules / "dunning.yaml").write_text(BROKEN)
        assert apply(rules, "broken") == 1
        await env.sleep(timedelta(days=6))  # due + 1: email + SMS of the active version
        await eventually(lambda: len(capture_servers.mail.list()) == 1)
        await eventually(lambda: len(capture_servers.sms.list()) == 2)
