"""`cobro rules diff` of a changed dunning.yaml: what it would send differently over the next
30 days (contacts by template, customers affected) on the live portfolio; nothing written."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.models import Communication, InvoiceStepReached
from tests.helpers import RULES
from tests.helpers.dunning import TEST_POLICY, import_rows

BY_SMS = TEST_POLICY.replace(
    "{at: -5d, channel: email, template: pre_due}", "{at: -5d, channel: sms, template: due}"
)


def rules_dir(path: Path, policy: str) -> Path:
    path.mkdir()
    for name in ("risk_classes.yaml", "alerts.yaml"):
        shutil.copy(RULES / name, path / name)
    (path / "dunning.yaml").write_text(policy)
    return path


def test_rules_diff_shows_the_contacts_a_dunning_change_would_send_differently(
    use_database: str, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    customers = [
        {"account": a, "name": f"Client {a}", "country": "FR", "email": f"{a}@x.example",
         "phone": "+33612345678"}
        for a in ("D1", "D2", "D3")
    ]  # fmt: skip
    import_rows(tmp_path, "customers", customers)
    invoices = [  # D1, D2: due in 10 days (pre-due ahead); D3: 20 days late (pre-due long past)
        {"number": f"N-{a}", "account": a, "issue_date": (today - timedelta(days=40)).isoformat(),
         "due_date": (today + timedelta(days=d)).isoformat(), "currency": "EUR", "amount": "100"}
        for a, d in (("D1", 10), ("D2", 10), ("D3", -20))
    ]  # fmt: skip
    import_rows(tmp_path, "invoices", invoices)
    runner = CliRunner()
    active = rules_dir(tmp_path / "active", TEST_POLICY)
    assert (
        runner.invoke(
            app, ["rules", "apply", str(active), "--author", "t", "--message", "v1"]
        ).exit_code
        == 0
    )

    proposed = rules_dir(tmp_path / "proposed", BY_SMS)
    out = runner.invoke(app, ["rules", "diff", str(proposed), "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)["dunning"]
    assert d["days"] == 30 and d["evaluated"] == 3
    assert d["customers_affected"] == 2
    assert sorted(c["account"] for c in d["customers"]) == ["D1", "D2"]
    counts = {(c["kind"], c["template"]): (c["current"], c["proposed"]) for c in d["contacts"]}
    assert counts[("email", "pre_due")] == (2, 0)
    assert counts[("sms", "due")][1] - counts[("sms", "due")][0] == 2

    text = runner.invoke(app, ["rules", "diff", str(proposed)])
    assert text.exit_code == 0, text.output
    assert "2 of 3 customer(s) would be contacted differently" in text.output
    assert "email pre_due: 2 -> 0 (-2)" in text.output
    with transaction() as s:  # nothing planned was recorded or sent
        assert s.scalar(select(func.count()).select_from(Communication)) == 0
        assert s.scalar(select(func.count()).select_from(InvoiceStepReached)) == 0
