"""`cobro replies ingest|deliverable` on both databases: a message fed by hand is recorded
as the inbound server would (matched here by its sender's and its failed recipient's
address: the samples carry no token of this database), once; an address is allowed again
by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import transaction
from cobro.models import Task
from cobro.settings import get_settings
from tests.helpers.dunning import import_rows

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def customer(use_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")  # recorded without Temporal
    monkeypatch.setenv("COBRO_WEB_SECRET_KEY", "k" * 32)
    get_settings.cache_clear()
    import_rows(tmp_path, "customers", [
        {"account": "S1", "name": "Ferretería Núñez", "country": "ES", "language": "es",
         "email": "pagos@nunez.example"},
    ])  # fmt: skip


def ingest(name: str) -> dict:  # type: ignore[type-arg]
    done = CliRunner().invoke(app, ["replies", "ingest", str(SAMPLES / name), "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout.splitlines()[-1])


def test_ingest_and_deliverable(customer: None) -> None:
    reply = ingest("human_reply.eml")
    assert reply["outcome"] == "reply" and reply["customers"] == ["S1"]
    assert reply["paused_until"] and reply["unsignalled"].keys() == {"S1"}
    assert ingest("human_reply.eml")["outcome"] == "duplicate"
    assert ingest("exchange_ooo.eml")["outcome"] == "unknown", "from an address we do not know"
    bounce = ingest("postfix_bounce.eml")
    assert bounce["outcome"] == "bounced" and bounce["bounced"] == ["pagos@nunez.example"]
    with transaction() as s:
        assert sorted(t.kind for t in s.scalars(select(Task))) == ["fix_address", "reply"]

    runner = CliRunner()
    ok = runner.invoke(app, ["replies", "deliverable", "Pagos@Nunez.example"])
    assert ok.exit_code == 0 and "email allowed again" in ok.output
    again = runner.invoke(app, ["replies", "deliverable", "pagos@nunez.example"])
    assert again.exit_code == 1 and "not marked undeliverable" in again.output
    missing = runner.invoke(app, ["replies", "ingest", "/nonexistent.eml"])
    assert missing.exit_code == 1 and missing.output.startswith("error: /nonexistent.eml")
