"""Secrets come from the environment and never show in output."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.settings import Settings, get_settings


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBRO_SMTP_PASSWORD", "smtp-s3cret")
    monkeypatch.setenv("COBRO_TWILIO_AUTH_TOKEN", "twilio-s3cret")
    monkeypatch.setenv("COBRO_INSURER_API_KEY", "insurer-s3cret")
    settings = Settings()
    dumped = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("smtp-s3cret", "twilio-s3cret", "insurer-s3cret"):
        assert secret not in dumped
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "smtp-s3cret"


def test_db_upgrade_hides_the_database_password(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    url = pg_url.replace("postgres@", "postgres:db-s3cret@")  # trust auth ignores it
    monkeypatch.setenv("COBRO_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "db-s3cret" not in result.output and "***" in result.output


def test_db_upgrade_error_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBRO_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert result.output.startswith("error: database upgrade failed:")
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [[], ["db"], ["db", "upgrade"], ["dev"], ["worker"]])
def test_help_is_helpful(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
