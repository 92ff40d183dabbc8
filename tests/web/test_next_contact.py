"""The customer file shows the next contact (when, channels, step) with a preview rendered as
the customer will get it; the API and `cobro dunning preview` give the same; the timeline
reads as sentences. Both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cobro.cli import app
from tests.helpers import RULES
from tests.helpers.dunning import TEST_POLICY, import_rows
from tests.helpers.web import csrf_of, logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def dunning_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_database: str) -> None:
    from cobro.settings import get_settings

    directory = tmp_path / "rules"
    directory.mkdir()
    for name in ("risk_classes.yaml", "alerts.yaml"):
        (directory / name).write_text((RULES / name).read_text())
    (directory / "dunning.yaml").write_text(TEST_POLICY)
    monkeypatch.setenv("COBRO_RULES_DIR", str(directory))
    get_settings.cache_clear()


def test_customer_file_shows_and_previews_the_next_contact(
    dunning_rules: None, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    import_rows(tmp_path, "customers", [
        {"account": "NC1", "name": "Müller & Söhne GmbH", "country": "DE", "language": "de",
         "timezone": "Europe/Berlin", "email": "buchhaltung@mueller.example",
         "phone": "+4915112345678"},
    ])  # fmt: skip
    import_rows(tmp_path, "invoices", [
        {"number": "R-77", "account": "NC1", "issue_date": (today - timedelta(days=30)).isoformat(),
         "due_date": (today - timedelta(days=1)).isoformat(), "currency": "EUR", "amount": "250"},
    ])  # fmt: skip
    client = logged_in(engine, db_url)
    page = client.get("/customers/NC1")
    assert page.status_code == 200
    assert 'id="next-contact"' in page.text
    assert "by email and sms, step +1d (due) for 1 invoice(s)" in page.text
    preview = client.get("/customers/NC1/next-contact")
    assert preview.status_code == 200
    assert "buchhaltung@mueller.example" in preview.text and "R-77" in preview.text
    assert 'sandbox=""' in preview.text  # the HTML part only inside a sandboxed iframe

    api = client.get("/api/customers/NC1/next-contact").json()
    cli = CliRunner().invoke(app, ["dunning", "preview", "--customer", "NC1", "--json"])
    assert cli.exit_code == 0, cli.output
    from_cli = json.loads(cli.output)
    assert [c["channel"] for c in api["contacts"]] == ["email", "sms"]
    assert [(c["subject"], c["text"]) for c in api["contacts"]] == [
        (c["subject"], c["text"]) for c in from_cli["contacts"]
    ]
    assert client.get("/api/customers/NOBODY/next-contact").status_code == 404

    token = csrf_of(client, "/customers/NC1")
    client.post("/customers/NC1/pause", data={"reason": "called, pays Friday", "csrf_token": token})
    page = client.get("/customers/NC1")
    assert "Reminders paused" in page.text and "dunning.paused" not in page.text
    events = client.get("/api/customers/NC1").json()["timeline"]
    assert any(e["kind"] == "dunning.paused" and e["title"] == "Reminders paused" for e in events)
