"""Runtime settings, read from `COBRO_*` environment variables.

Secrets are `SecretStr`: they print as `**********` and never reach logs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COBRO_", extra="ignore")

    var_dir: Path = Field(Path("var"), description="working directory of the embedded stack")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file var/cobro.db"
    )

    rules_dir: Path | None = Field(None, description="YAML rules; default ./rules, else shipped")
    templates_dir: Path | None = Field(None, description="message templates; same defaults")
    company_name: str = "Cobro Demo SAS"
    company_email: str = "credit@cobro.localhost"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "cobro"
    temporal_ui_port: int = 8233
    worker_max_workflow_tasks: int | None = Field(
        None, description="workflow tasks a worker runs at once (default: the SDK's 100)"
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    mail_from: str = "Cobro Collections <collections@cobro.localhost>"
    smtp_lookup: str | None = Field(
        "capture",
        description="how to ask the relay whether it accepted a message (by Message-ID) "
        "after a crash: 'capture', 'package.module:factory', or empty (it cannot be asked: "
        "an unconfirmed email becomes 'uncertain', a collector decides)",
    )
    smtp_lookup_url: str | None = Field(
        None,
        description="the capture inbox, for smtp_lookup=capture; default: "
        "http://127.0.0.1:<capture_http_port>",
    )
    email_resend_uncertain: bool = Field(
        False,
        description="resend an email whose acceptance the relay cannot confirm or deny "
        "(may duplicate it); off: hold it as 'uncertain' with a task",
    )

    twilio_account_sid: str = "ACcobro0000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("dev-token")
    twilio_base_url: str | None = Field(
        "http://127.0.0.1:8026", description="Twilio API base URL; empty means real Twilio"
    )
    sms_from: str = "+15005550006"

    insurer_base_url: str = "http://127.0.0.1:8027"
    insurer_api_key: SecretStr = SecretStr("dev-api-key")
    insurer: str = Field("allianz_trade", description="which connector the sync uses")
    insurer_simulator_seed: int = Field(7, description="`cobro dev`: the simulated portfolio")
    sync_time: str = Field("06:30", description="daily insurer sync, HH:MM in sync_timezone")
    sync_timezone: str = "Europe/Paris"
    sync_catchup_window_hours: int = Field(
        24, description="a sync missed while Temporal was down runs if within this window"
    )

    collections_team_email: str = Field(
        "collections-team@cobro.localhost", description="receives the classification digest"
    )

    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="where providers reach our webhooks"
    )
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    web_secret_key: SecretStr | None = Field(
        None, description="signs session cookies; default: a random key kept in var/"
    )
    web_session_hours: int = 8
    capture_http_port: int = 8026

    @property
    def rules_path(self) -> Path:
        return self.rules_dir or _project_dir("rules")

    @property
    def templates_path(self) -> Path:
        return self.templates_dir or _project_dir("templates")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'cobro.db').resolve()}"


def _project_dir(name: str) -> Path:
    """`./<name>` when the current directory has one, else the one shipped with Cobro."""
    local = Path(name)
    return local if local.is_dir() else Path(__file__).resolve().parent.parent / name


@lru_cache
def get_settings() -> Settings:
    return Settings()
