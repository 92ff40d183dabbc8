"""The classification digest: built from what one run wrote, sent once per run to the
collections team through the real capture SMTP server, never twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update

from activities.classify import DigestInput, send_classification_digest
from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.models import Customer, GradeHistory, TeamNotification
from cobro.rules.classify import classify_portfolio
from cobro.rules.digest import build_digest
from cobro.rules.ruleset import Ruleset
from cobro.settings import get_settings
from tests.helpers.rules import DAY1, add_invoice, seed, write_rules


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
    # the first run classified everyone: counted per class, not listed as changes
    assert digest.first == [("low", 3)] and digest.transitions == []
    assert [(g.severity, [a.account for a in g.top]) for g in digest.alerts] == [("warning", ["B"])]


def _portfolio(engine, n: int) -> None:  # type: ignore[no-untyped-def]
    """n customers: every 5th graded 9 (critical), every one with an overdue invoice whose
    amount grows with its number (the largest balances last)."""
    with transaction(engine) as s:
        for i in range(1, n + 1):
            c = Customer(
                account=f"K{i:03d}", name=f"Kunde {i}", country="DE", language="de",
                timezone="Europe/Berlin",
                # within a limit of their own (without one, all they owe is over limit)
                discretionary_limit=Decimal(10000), discretionary_limit_currency="EUR",
            )  # fmt: skip
            s.add(c)
            s.flush()
            if i % 5 == 0:
                s.add(GradeHistory(customer_id=c.id, insurer="x", grade=9, graded_on=DAY1.date()))
            add_invoice(s, c.id, f"K{i:03d}-1", DAY1.date() - timedelta(days=10), f"{100 * i}")


def test_the_digest_of_a_first_run_is_a_summary(use_database: str, tmp_path: Path) -> None:
    engine = default_engine()
    _portfolio(engine, 60)
    rs = Ruleset.load(write_rules(tmp_path / "rules"))
    report = classify_portfolio(engine, rs, now=DAY1)
    # the first classification is a change from "unclassified": became_critical fires
    assert report.classes == {"critical": 12, "low": 48}
    assert sum(a.name == "became_critical" for a in report.alerts) == 12

    digest = build_digest(None, DAY1, rs.hash, "http://x", rs.classifier.names)
    text = digest.text()
    # counts per class (in the rules' order), no list of 60 "changes"
    assert digest.first == [("critical", 12), ("low", 48)] and digest.transitions == []
    assert "First classification: 60 customer(s) classified" in text
    assert "  critical: 12\n  low: 48\n" in text
    assert "Risk class changes" not in text and "(none)" not in text
    # counts per severity and per alert, the top 10 of each severity (largest balance first)
    assert "  critical (12): became_critical 12\n" in text
    assert "  warning (60): overdue 60\n" in text
    critical = next(g for g in digest.alerts if g.severity == "critical")
    assert [a.account for a in critical.top] == [f"K{i:03d}" for i in range(60, 10, -5)]
    assert critical.top[0].message == "Kunde 60 is now critical (was unclassified)"
    assert "    ... and 2 more on the dashboard" in text
    assert "    ... and 50 more on the dashboard" in text
    assert text.count("    - [") == 20
    assert digest.subject == (
        "Cobro classification: 60 customer(s) classified (12 critical), "
        "12 critical alert(s), 60 warning alert(s)"
    )


def test_a_later_run_lists_its_changes(use_database: str, tmp_path: Path) -> None:
    engine = default_engine()
    ids = seed(engine)
    rs = Ruleset.load(write_rules(tmp_path / "rules"))
    classify_portfolio(engine, rs, now=DAY1)
    with transaction(engine) as s:
        s.add(GradeHistory(customer_id=ids["A"], insurer="x", grade=9, graded_on=DAY1.date()))
    later = DAY1.replace(hour=9)
    classify_portfolio(engine, rs, now=later)
    digest = build_digest(None, later, rs.hash, "http://x")
    text = digest.text()
    assert digest.first == [] and "First classification" not in text
    assert "Risk class changes: 1 customer(s)\n  low -> critical: 1\n    - A Name A\n" in text
    assert "  critical (1): became_critical 1\n" in text
    assert "- [became_critical] A Name A: Name A is now critical (was low)" in text
    assert digest.subject == ("Cobro classification: 1 risk class change(s), 1 critical alert(s)")
