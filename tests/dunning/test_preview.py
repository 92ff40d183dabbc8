"""`cobro dunning preview`: the next contact rendered exactly as the delivery would render it
(same renderer, same instant), email and SMS of one window, nothing written or sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.dunning.actions import ActionSpec
from cobro.dunning.messages import render_reminder
from cobro.dunning.preview import next_contact
from cobro.dunning.store import current_plan, load_customer_facts
from cobro.models import Communication
from tests.helpers.dunning import TEST_POLICY, import_rows


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_database: str) -> Path:
    from cobro.settings import get_settings
    from tests.helpers import RULES

    directory = tmp_path / "rules"
    directory.mkdir()
    for name in ("risk_classes.yaml", "alerts.yaml"):
        (directory / name).write_text((RULES / name).read_text())
    (directory / "dunning.yaml").write_text(TEST_POLICY)
    monkeypatch.setenv("COBRO_RULES_DIR", str(directory))
    get_settings.cache_clear()
    return directory


def seed(tmp_path: Path, due_in_days: int) -> None:
    today = datetime.now(UTC).date()
    import_rows(tmp_path, "customers", [
        {"account": "P1", "name": "Ferretería Núñez SL", "country": "ES", "language": "es",
         "timezone": "Europe/Madrid", "email": "pagos@nunez.example", "phone": "+34612345678"},
    ])  # fmt: skip
    import_rows(tmp_path, "invoices", [
        {"number": "FN-1", "account": "P1", "issue_date": (today - timedelta(days=30)).isoformat(),
         "due_date": (today + timedelta(days=due_in_days)).isoformat(), "currency": "EUR",
         "amount": "1359.36"},
    ])  # fmt: skip


def test_preview_shows_the_next_email_and_sms_as_rendered_for_sending(
    rules: Path, tmp_path: Path
) -> None:
    seed(tmp_path, due_in_days=-1)  # due yesterday: the +1d email and SMS are next
    out = CliRunner().invoke(app, ["dunning", "preview", "--customer", "P1", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [c["channel"] for c in data["contacts"]] == ["email", "sms"]
    email, sms = data["contacts"]
    assert email["template"] == "due" and email["step_at"] == "+1d"
    assert email["recipient"] == "pagos@nunez.example" and sms["recipient"] == "+34612345678"
    assert email["language"] == "es" and "FN-1" in email["text"] and email["html"]
    assert "1359,36" in email["text"].replace("\u00a0", " ").replace(".", "")

    # exactly what the delivery renders for the same action at the same instant
    with transaction() as s:
        facts = load_customer_facts(s, "P1")
        preview = next_contact(facts, datetime.fromisoformat(data["computed_at"]))
        planned = current_plan(facts, preview.computed_at)
        action = next(a for a in planned.plan.actions if a.kind == "email")
        spec = ActionSpec.from_planned("P1", action)
        rendered = render_reminder(spec, facts, preview.contacts[0].at)
    assert (rendered.subject, rendered.text, rendered.html) == (
        email["subject"], email["text"], email["html"],
    )  # fmt: skip

    text = CliRunner().invoke(app, ["dunning", "preview", "--customer", "P1"])
    assert text.exit_code == 0 and "Subject:" in text.output and "== sms due" in text.output
    with transaction() as s:
        assert s.scalar(select(func.count()).select_from(Communication)) == 0


def test_preview_as_of_a_date_and_errors(rules: Path, tmp_path: Path) -> None:
    seed(tmp_path, due_in_days=20)
    later = (datetime.now(UTC).date() + timedelta(days=16)).isoformat()  # 4 days before due
    out = CliRunner().invoke(
        app, ["dunning", "preview", "--customer", "P1", "--as-of", later, "--json"]
    )
    assert out.exit_code == 0, out.output
    assert [c["template"] for c in json.loads(out.output)["contacts"]] == ["pre_due"]
    bad = CliRunner().invoke(app, ["dunning", "preview", "--customer", "P1", "--as-of", "x"])
    assert bad.exit_code == 1 and "--as-of" in bad.output
    unknown = CliRunner().invoke(app, ["dunning", "preview", "--customer", "NOPE"])
    assert unknown.exit_code == 1 and "unknown customer" in unknown.output


def test_preview_reads_the_rules_of_the_database_it_was_given(
    rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_database: str
) -> None:
    """The dashboard's next-contact preview plans with the rules in force on the database it
    reads the customer from, even when the process's default database is another one (the
    web app created with its own engine, as `cobro dev` and the benches do)."""
    from cobro.db import default_engine, make_engine
    from cobro.settings import get_settings
    from cobro.web.queries import next_contact as page_preview

    seed(tmp_path, due_in_days=-1)
    engine = make_engine(use_database)
    monkeypatch.setenv("COBRO_DATABASE_URL", f"sqlite:///{tmp_path / 'unmigrated.db'}")
    get_settings.cache_clear()
    default_engine.cache_clear()
    shown = page_preview(engine, "P1")
    assert shown is not None, "the preview failed on the default database's missing tables"
    assert [c.channel for c in shown.contacts] == ["email", "sms"]
    engine.dispose()
    default_engine().dispose()
    default_engine.cache_clear()
