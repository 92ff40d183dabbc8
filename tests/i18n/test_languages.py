"""The team's language outside the dashboard: the CLI speaks COBRO_LANG (else LANG), the
digest email the team's COBRO_TEAM_LANGUAGE; Babel's negotiation of Accept-Language;
amounts and dates per locale through `cobro.formatting` (one implementation)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.classify import DigestInput, send_classification_digest
from cobro import formatting
from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.i18n import current_locale, environment_locale, negotiate, using
from cobro.models import TeamNotification
from cobro.rules.classify import classify_portfolio
from cobro.rules.ruleset import Ruleset
from cobro.settings import get_settings
from tests.helpers.rules import DAY1, seed, write_rules


def _plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("es-ES,es;q=0.9,en;q=0.8", "es"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-CH, fr;q=0.9, de;q=0.8", "fr"),
        ("pt-BR, de-AT;q=0.7, fr;q=0.5", "de"),
        ("fr;q=0.2, es;q=0.8", "es"),
        ("ja, zh-CN;q=0.9", None),
        ("", None),
        ("*;q=0,;;,es;q=abc", None),
    ],
)
def test_accept_language_negotiation(header: str, wanted: str | None) -> None:
    assert negotiate(header) == wanted


def test_the_environment_decides_the_cli_language(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COBRO_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert environment_locale() == "en"
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert environment_locale() == "de"
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert environment_locale() == "en"
    monkeypatch.setenv("COBRO_LANG", "fr")
    assert environment_locale() == "fr" and current_locale() == "fr"
    with using("es"):
        assert current_locale() == "es"
    assert current_locale() == "fr"


@pytest.mark.parametrize(
    ("locale", "money", "day", "pct"),
    [
        ("en", "€1,359.36", "2026-01-05", "12.5 %"),
        ("es", "1.359,36 €", "5/1/2026", "12,5 %"),
        ("fr", "1 359,36 €", "05/01/2026", "12,5 %"),
        ("de", "1.359,36 €", "05.01.2026", "12,5 %"),
    ],
)
def test_money_dates_and_numbers_per_locale(locale: str, money: str, day: str, pct: str) -> None:
    with using(locale):  # the current language, as the dashboard and the CLI set it
        assert _plain(formatting.money(Decimal("1359.36"), "EUR")) == money
        assert formatting.day(date(2026, 1, 5)) == day
        assert formatting.moment(datetime(2026, 1, 5, 9, 3)) == f"{day} 09:03"
        assert formatting.percent(Decimal("12.5")) == pct


def test_the_cli_speaks_cobro_lang(use_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cobro.cli import app
    from tests.test_kpis import seed as seed_kpis

    seed_kpis(default_engine())
    runner = CliRunner()
    english = runner.invoke(app, ["kpis", "--as-of", "2026-12-31"])
    assert english.exit_code == 0 and "receivables (net)" in english.output
    monkeypatch.setenv("COBRO_LANG", "es")
    spanish = runner.invoke(app, ["kpis", "--as-of", "2026-12-31"])
    assert spanish.exit_code == 0, spanish.output
    out = _plain(spanish.output)
    assert "Indicadores a 31/12/2026" in out and "cuentas por cobrar (netas)" in out
    assert "1.300,00 €" in out and "80,69 d" in out
    bad = runner.invoke(app, ["kpis", "--as-of", "31/12/2026"])
    assert bad.exit_code == 1 and "no es una fecha (AAAA-MM-DD)" in bad.output
    monkeypatch.setenv("COBRO_LANG", "de")
    bad = runner.invoke(app, ["kpis", "--as-of", "31/12/2026"])
    assert "Fehler: --as-of: '31/12/2026' ist kein Datum" in bad.output


@pytest.fixture
def spanish_team(capture_servers: CaptureServers, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COBRO_SMTP_PORT", str(capture_servers.smtp_port))
    monkeypatch.setenv("COBRO_TEAM_LANGUAGE", "es")
    get_settings.cache_clear()
    yield capture_servers
    get_settings.cache_clear()


async def test_the_digest_goes_to_the_team_in_its_language(
    use_database: str, tmp_path: Path, spanish_team: CaptureServers
) -> None:
    seed(default_engine())
    rs = Ruleset.load(write_rules(tmp_path / "rules"))
    classify_portfolio(default_engine(), rs, now=DAY1)
    assert await send_classification_digest(DigestInput(DAY1, rs.hash)) == "sent"
    with transaction() as s:
        row = s.query(TeamNotification).one()
        subject, body = row.subject, row.body
    assert subject.startswith("Clasificación de Cobro: 3 cliente(s) clasificado(s) (3 bajo)")
    assert "Primera clasificación: 3 cliente(s) clasificado(s)" in body
    assert "  bajo: 3\n" in body and "Alertas nuevas: 1" in body
    assert "Name B has 100,00\xa0€ overdue" in body  # the alert stored in the team's money
    assert f"Clasificación del {formatting.day(DAY1, 'es')} " in body
    assert len(spanish_team.mail.list()) == 1


def test_the_operators_messages_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    from cobro.cli import app
    from tests.helpers import ROOT

    runner = CliRunner()
    monkeypatch.setenv("COBRO_LANG", "en")
    english = runner.invoke(app, ["rules", "test", str(ROOT / "rules")])
    assert english.exit_code == 0 and " example(s) passed hash=" in english.output
    for lang, words in (
        ("es", " ejemplo(s) superado(s) hash="),
        ("fr", " exemple(s) réussi(s) hash="),
        ("de", " Beispiel(e) bestanden hash="),
    ):
        monkeypatch.setenv("COBRO_LANG", lang)
        out = runner.invoke(app, ["rules", "test", str(ROOT / "rules")])
        assert out.exit_code == 0 and words in out.output, out.output


def test_a_refusal_speaks_the_users_language() -> None:
    from cobro.web.auth import require

    class Viewer:
        role = "viewer"

    class Req:
        class state:
            user = Viewer()

    from starlette.exceptions import HTTPException

    for lang, text in (
        ("en", "needs the collector role (you are viewer)"),
        ("es", "requiere el rol gestor de cobros (su rol es consulta)"),
    ):
        with using(lang), pytest.raises(HTTPException) as refused:
            require(Req(), "collector")  # type: ignore[arg-type]
        assert refused.value.detail == text
