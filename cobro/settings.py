"""Runtime settings, read from `COBRO_*` environment variables.

Secrets are `SecretStr`: they print as `**********` and never reach logs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    temporal_http_port: int = Field(7243, description="`cobro dev`: the Temporal HTTP API")
    temporal_metrics_port: int = Field(
        7244, description="`cobro dev`: the Temporal dev server's Prometheus /metrics"
    )
    # a secured cluster (self-hosted with TLS/mTLS) or Temporal Cloud (mTLS or an API key)
    temporal_tls: bool | None = Field(
        None,
        description="TLS to the Temporal frontend; default: on when a CA file, a client "
        "certificate or an API key is set",
    )
    temporal_tls_ca_file: Path | None = Field(
        None,
        description="PEM file: the CA that signed the server's certificate (default: "
        "the system's roots)",
    )
    temporal_tls_server_name: str | None = Field(
        None,
        description="name the server's certificate must carry (also sent as SNI), when "
        "it differs from the address's host",
    )
    temporal_tls_cert_file: Path | None = Field(
        None, description="PEM file: the client certificate, for mTLS"
    )
    temporal_tls_key_file: Path | None = Field(
        None, description="PEM file: the client certificate's private key, for mTLS"
    )
    temporal_api_key: SecretStr | None = Field(
        None, description="Temporal Cloud API key, sent as a bearer token (turns TLS on)"
    )
    # payloads (workflow and activity inputs and results, signals, queries, failures)
    # encrypted with AES-256-GCM before they reach Temporal; search attributes stay clear
    payload_encryption: Literal["auto", "on", "off"] = Field(
        "auto",
        description="'auto': on when keys are set (payload_keys, payload_keys_file, or "
        "var/payload-keys that `cobro dev` creates); 'on': keys required; 'off'",
    )
    payload_keys: SecretStr | None = Field(
        None,
        description="AES-256 keys as ID=BASE64, comma-separated, oldest first: the last one "
        "encrypts new payloads, every one decrypts",
    )
    payload_keys_file: Path | None = Field(
        None, description="the same keys, one ID=BASE64 a line; default var/payload-keys"
    )
    codec_role: str = Field(
        "viewer", description="the least role that may decode payloads at /codec/decode"
    )
    codec_cors_origins: str = Field(
        "",
        description="origins of the Temporal UI allowed to call /codec (comma-separated); "
        "default: the embedded UI, http://<temporal host>:<temporal_ui_port>",
    )
    worker_max_workflow_tasks: int | None = Field(
        16,
        description="workflow tasks a worker runs at once (SDK default 100): a fresh worker "
        "that takes 100 first activations at once on a small machine sees them all pass the "
        "10 s workflow task timeout, and the server backs off those workflows for minutes",
    )

    worker_metrics_address: str = Field(
        "",
        description="host:port of the worker's Prometheus /metrics (the Temporal SDK's series "
        "and Cobro's cobro_*), e.g. 0.0.0.0:9464; empty: none (one per worker process)",
    )
    worker_health_address: str = Field(
        "",
        description="host:port of the worker's /healthz (alive) and /readyz (polling, "
        "database and Temporal reachable), e.g. 0.0.0.0:9465; empty: none",
    )
    worker_drain_seconds: float = Field(
        30.0,
        description="on SIGTERM the worker stops polling and lets running activities "
        "finish for up to this long before it exits",
    )
    log_format: str = Field("text", description="text or json (one object per line)")
    metrics_token: str | None = Field(
        None, description="bearer token the dashboard's /metrics wants; unset: open"
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(
        False,
        description="require STARTTLS (without it, STARTTLS is still used whenever the "
        "relay offers it; AUTH is never sent over a plain connection)",
    )
    smtp_tls_ca_file: Path | None = Field(
        None, description="PEM file: the CA of the relay's certificate (default: the system's)"
    )
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
        "http://127.0.0.1:8026",
        description="Twilio API base URL; empty means real Twilio; unset: the capture "
        "server, http://127.0.0.1:<capture_http_port>",
    )
    sms_from: str = "+15005550006"
    whatsapp_from: str = Field(
        "whatsapp:+14155238886",
        description="the WhatsApp sender, `whatsapp:+<E.164>` (Twilio's sandbox number by "
        "default; in production the business number approved for WhatsApp)",
    )

    insurer_base_url: str = Field(
        "http://127.0.0.1:8027",
        description="insurer API: `production`, `uat` (Allianz Trade's hosts) or a URL",
    )
    insurer_api_key: SecretStr = SecretStr("dev-api-key")
    insurer_environment: str | None = Field(
        None, description="`production` or `uat` paths for a URL base (default production)"
    )
    insurer_policies: str = Field(
        "", description="policies to sync: BUSINESS_UNIT:POLICY_ID[:EXTENSION_ID], comma-separated"
    )
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
    team_language: str = Field(
        "en", description="the language of the emails to the team: en, es, fr or de"
    )

    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="where providers reach our webhooks; unset: http://<web_host>:<web_port> "
        "(127.0.0.1 for a wildcard host)",
    )
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    web_warm_seconds: float = Field(
        30,
        description="how often the dashboard checks whether today's portfolio figures must be "
        "computed again in the background (PostgreSQL; 0: only when someone asks)",
    )
    web_secret_key: SecretStr | None = Field(
        None, description="signs session cookies; default: a random key kept in var/"
    )
    web_session_hours: int = 8
    portal_secret_key: SecretStr | None = Field(
        None,
        description="signs the customers' self-service links; default: the web secret key",
    )
    portal_link_days: int = Field(
        60, description="a self-service link works this many days (the one in messages too)"
    )
    portal_paid_wait_days: int = Field(
        5,
        description="after 'I have paid' on the self-service page, reminders wait this many "
        "business days for the payment to arrive",
    )
    portal_promise_max_days: int = Field(
        30, description="a promise to pay made on the self-service page: at most this far ahead"
    )
    portal_requests_per_minute: int = Field(
        30, description="requests one self-service link may make per minute (then 429)"
    )
    portal_pay_url_template: str | None = Field(
        None,
        description="the 'pay online' button of the self-service page: the payment "
        "provider's URL with {account}, {amount}, {currency} (e.g. "
        "https://pay.example.com/c/{account}?amount={amount}); none: no button",
    )
    capture_http_port: int = 8026
    reply_domain: str = Field(
        "reply.cobro.localhost",
        description="customers' replies and bounces come back to reply+<token>@ and "
        "bounce+<token>@ this domain (its MX points at `cobro replies serve`); empty: no "
        "Reply-To, replies are only threaded by In-Reply-To",
    )
    reply_pause_days: int = Field(
        5,
        description="a customer's own email reply pauses its reminders this many business "
        "days (its country's calendar), with a task to answer it",
    )
    inbound_smtp_host: str = Field(
        "127.0.0.1", description="`cobro replies serve` / `cobro dev`: the inbound SMTP server"
    )
    inbound_smtp_port: int = Field(
        8028, description="the inbound SMTP server's port (`cobro dev`: loopback)"
    )

    @model_validator(mode="after")
    def follow_ports(self) -> Settings:
        """The URLs left unset follow the port settings: the Twilio API is the capture
        server's (`capture_http_port`), the public URL the dashboard's (`web_host`,
        `web_port`). Call it again after `model_copy(update=...)` of a port."""
        host = "127.0.0.1" if self.web_host in ("", "0.0.0.0", "::") else self.web_host
        derived = {
            "twilio_base_url": f"http://127.0.0.1:{self.capture_http_port}",
            "public_base_url": f"http://{host}:{self.web_port}",
        }
        for name, url in derived.items():
            if name not in self.model_fields_set:
                object.__setattr__(self, name, url)  # still unset: follows the next copy too
        return self

    @property
    def temporal_sync_queue(self) -> str:
        """The insurer sync, classification and the system check run on a task queue of
        their own, never queued behind the day's contacts on `temporal_task_queue`."""
        return sync_queue(self.temporal_task_queue)

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


DEV_SECRETS = {"twilio_auth_token": "dev-token", "insurer_api_key": "dev-api-key"}


class InsecureSettings(ValueError):
    """Development secrets on a public https deployment; the message is one line."""


def default_secrets(settings: Settings) -> list[str]:
    """The settings (as environment variables) still at their development defaults."""
    found = [
        f"COBRO_{name.upper()}"
        for name, dev in DEV_SECRETS.items()
        if getattr(settings, name).get_secret_value() == dev
    ]
    if settings.web_secret_key is None or not settings.web_secret_key.get_secret_value():
        found.append("COBRO_WEB_SECRET_KEY")
    return found


def check_secrets(settings: Settings) -> None:
    """Refuse to start on an https public URL (a real deployment) with a development
    secret: the defaults are public, in this repository."""
    if not settings.public_base_url.startswith("https://"):
        return
    found = default_secrets(settings)
    if found:
        raise InsecureSettings(
            f"COBRO_PUBLIC_BASE_URL is https ({settings.public_base_url}) but "
            f"{', '.join(found)} {'is' if len(found) == 1 else 'are'} not set to a secret "
            "of your own (development default or missing): set "
            f"{'it' if len(found) == 1 else 'them'}"
        )


def sync_queue(task_queue: str) -> str:
    return f"{task_queue}-sync"


def _project_dir(name: str) -> Path:
    """`./<name>` when the current directory has one, else the one shipped with Cobro."""
    local = Path(name)
    return local if local.is_dir() else Path(__file__).resolve().parent.parent / name


@lru_cache
def get_settings() -> Settings:
    return Settings()
