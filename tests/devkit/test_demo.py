"""The demo portfolio as `cobro dev --demo` builds it — the ERP files through the real
import, covers and grades from the insurer simulator through a real sync, then the shipped
rules — has a realistic risk mix, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

from cobro.db import default_engine
from cobro.devkit.demo import load_demo
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.insurers.sync_runner import run_sync
from cobro.rules.classify import classify_portfolio
from cobro.rules.ruleset import Ruleset
from cobro.settings import get_settings
from tests.helpers import RULES
from tests.helpers.insurers import connector

ANCHOR = date(2026, 6, 30)


async def test_the_demo_risk_mix_is_realistic(use_database: str, tmp_path: Path) -> None:
    seed = get_settings().insurer_simulator_seed
    load_demo(tmp_path / "demo", ANCHOR, seed)
    engine = default_engine()
    sim = InsurerSimulator(buyers=300, seed=seed, start_date=ANCHOR)
    async with sim, connector(sim) as insurer:
        await run_sync(engine, insurer, full=True, today=ANCHOR)
    report = classify_portfolio(
        engine, Ruleset.load(RULES), now=datetime.combine(ANCHOR, time(6), UTC)
    )
    share = {k: v / report.evaluated for k, v in report.classes.items()}
    assert report.evaluated == 300
    # a credit manager's portfolio: a few critical accounts, most in the lower classes
    assert 0.05 <= share.get("critical", 0) <= 0.15, report.classes
    lower = share.get("medium", 0) + share.get("watch", 0) + share.get("low", 0)
    assert lower >= 0.6, report.classes
    # and every critical customer got its alert on this first classification
    critical = sum(a.name == "became_critical" for a in report.alerts)
    assert critical == report.classes["critical"]
