"""A real deployment's checks: the SQLite file is created 0600 (and its WAL files alike);
development secrets (`dev-token`, `dev-api-key`, no web secret key) are refused at start,
in one line, when the public URL is https — by the dashboard, `cobro serve`, `cobro worker`
and `cobro dev` alike; over http (development) they are fine."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import make_engine, upgrade
from cobro.settings import InsecureSettings, Settings, check_secrets, get_settings
from cobro.web.app import create_app

SECRETS = {
    "twilio_auth_token": SecretStr("a-real-twilio-token"),
    "insurer_api_key": SecretStr("a-real-insurer-key"),
    "web_secret_key": SecretStr("w" * 48),
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_file_is_created_0600(tmp_path: Path) -> None:
    db = tmp_path / "var" / "cobro.db"
    upgrade(f"sqlite:///{db}")  # alembic's own engine: the file exists before it opens it
    assert _mode(db) == 0o600
    other = tmp_path / "other.db"
    engine = make_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x int)"))
        assert _mode(other) == 0o600
        wal = Path(f"{other}-wal")
        assert not wal.exists() or _mode(wal) == 0o600
    engine.dispose()


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("twilio_auth_token", "COBRO_TWILIO_AUTH_TOKEN"),
        ("insurer_api_key", "COBRO_INSURER_API_KEY"),
        ("web_secret_key", "COBRO_WEB_SECRET_KEY"),
    ],
)
def test_each_default_secret_is_refused_over_https(missing: str, named: str) -> None:
    given = {k: v for k, v in SECRETS.items() if k != missing}
    settings = Settings(public_base_url="https://cobro.example.com", **given)  # type: ignore[arg-type]
    with pytest.raises(InsecureSettings) as refused:
        check_secrets(settings)
    message = str(refused.value)
    assert named in message and "\n" not in message
    assert "dev-token" not in message and "dev-api-key" not in message, "never the values"
    check_secrets(Settings(public_base_url="http://127.0.0.1:8000"))  # development: fine
    check_secrets(Settings(public_base_url="https://cobro.example.com", **SECRETS))  # type: ignore[arg-type]


def test_the_dashboard_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(public_base_url="https://cobro.example.com", var_dir=tmp_path)
    with pytest.raises(InsecureSettings, match="COBRO_TWILIO_AUTH_TOKEN, COBRO_INSURER_API_KEY"):
        create_app(settings, make_engine(f"sqlite:///{tmp_path / 'x.db'}"))


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["dev"]])
def test_the_commands_refuse_in_one_line(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COBRO_PUBLIC_BASE_URL", "https://cobro.example.com")
    monkeypatch.setenv("COBRO_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("COBRO_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, command)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("error: COBRO_PUBLIC_BASE_URL is https")
    assert "COBRO_WEB_SECRET_KEY" in line
