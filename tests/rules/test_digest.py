"""The classification digest: built from what one run wrote, sent once per run to the
collections team through the real capture SMTP server, never twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from activities.classify import DigestInput, send_classification_digest
from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.models import TeamNotification
from cobro.rules.classify import classify_portfolio
from cobro.rules.digest import build_digest
from cobro.rules.ruleset import Ruleset
from cobro.settings import get_settings
from tests.helpers.rules import DAY1, seed, write_rules


@pytest.fixture
def team_smtp(capture_servers: CaptureServers, monkeypatch: pytest.MonkeyPatch) -> CaptureServers:
    monkeypatch.setenv("COBRO_SMTP_PORT", str(capture_servers.smtp_port))
    monkeypatch.setenv("COBRO_COLLECTIONS_TEAM_EMAIL", "team@example.com, boss@example.com")
    get_settings.cache_clear()
    yield capture_servers
    get_settings.cache_clear()


async def test_one_digest_per_run_even_when_retried(
    use_database: str, tmp_path: Path, team_smtp: CaptureServers
) -> None:
    seed(default_engine())
    rs = Ruleset.load(write_rules(tmp_path / "rules"))
    classify_portfolio(default_engine(), rs, now=DAY1)

    first = await send_classification_digest(DigestInput(DAY1, rs.hash))
    again = await send_classification_digest(DigestInput(DAY1, rs.hash))

    assert (first, again) == ("sent", "already sent")
    mails = team_smtp.mail.list()
    assert len(mails) == 1
    assert set(mails[0].envelope_to) == {"team@example.com", "boss@example.com"}
    with transaction() as s:
        row = s.query(TeamNotification).one()
        assert (row.status, row.provider_id) == ("sent", mails[0].message_id)


async def test_a_claim_left_by_a_killed_worker_is_sent_with_the_same_message_id(
    use_database: str, tmp_path: Path, team_smtp: CaptureServers
) -> None:
    seed(default_engine())
    rs = Ruleset.load(write_rules(tmp_path / "rules"))
    classify_portfolio(default_engine(), rs, now=DAY1)
    assert await send_classification_digest(DigestInput(DAY1, rs.hash)) == "sent"
    # as if the worker died after the SMTP call, before marking the row sent
    with transaction() as s:
        s.execute(update(TeamNotification).values(status="claimed", provider_id=None))

    assert await send_classification_digest(DigestInput(DAY1, rs.hash)) == "sent"

    ids = {m.message_id for m in team_smtp.mail.list()}
    assert len(ids) == 1  # the duplicate carries the same Message-ID: receivers drop it


def test_a_run_that_changed_nothing_has_nothing_to_say(use_database: str, tmp_path: Path) -> None:
    seed(default_engine())
    rs = Ruleset.load(write_rules(tmp_path / "rules"))
    classify_portfolio(default_engine(), rs, now=DAY1)
    later = DAY1.replace(hour=7)
    classify_portfolio(default_engine(), rs, now=later)

    assert build_digest(None, later, rs.hash, "http://x").empty
    digest = build_digest(None, DAY1, rs.hash, "http://x")
    assert [(t.before, t.after, t.count) for t in digest.transitions] == [(None, "low", 3)]
    assert [(sev, [a.account for a in items]) for sev, items in digest.alerts] == [
        ("warning", ["B"])
    ]
