"""The one Temporal connection (`cobro.temporal_client.connect`) to a secured frontend: TLS
with a test CA and a server name, mTLS with a client certificate, a Temporal Cloud API key.
The frontend is the real dev server behind a TLS-terminating proxy (`tests.helpers.tls`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from cobro.errors import TemporalConfigError, error_line
from cobro.settings import Settings, get_settings
from cobro.temporal_client import connect, tls_config
from tests.helpers import ROOT
from tests.helpers.tls import SERVER_NAME, Pki, RefusingFrontend, TlsProxy, make_pki
from worker import run_worker
from workflows.system_check import SystemCheck


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The activities' database (they read it from the settings)."""
    from cobro.db import default_engine

    monkeypatch.setenv("COBRO_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    default_engine.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()
    default_engine.cache_clear()


def _frontend(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def _run_system_check(settings: Settings) -> object:
    """The real worker (`run_worker`) and a client, both through `connect(settings)`."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        client = await connect(settings)
        return await asyncio.wait_for(
            client.execute_workflow(
                SystemCheck.run,
                id=f"check-{uuid.uuid4().hex[:8]}",
                task_queue=settings.temporal_task_queue,
            ),
            60,
        )
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


def _settings(address: str, db_url: str, **kw: object) -> Settings:
    return Settings(
        temporal_address=address,
        temporal_task_queue=f"tls-{uuid.uuid4().hex[:8]}",
        database_url=db_url,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.temporal
async def test_a_workflow_runs_over_tls(
    dev_server_env: WorkflowEnvironment, database: str, pki: Pki
) -> None:
    with TlsProxy(_frontend(dev_server_env), pki.server_context()) as proxy:
        settings = _settings(
            proxy.address,
            database,
            temporal_tls_ca_file=pki.ca_file,
            temporal_tls_server_name=SERVER_NAME,
        )
        report = await _run_system_check(settings)
        assert report.dialect == "sqlite"

        # the same proxy, without our CA or with the wrong name: refused, one clear line
        for wrong, expected in [
            ({"temporal_tls": True}, "UnknownIssuer"),
            ({"temporal_tls_ca_file": pki.ca_file}, "COBRO_TEMPORAL_TLS_SERVER_NAME"),
            ({}, "does it require TLS?"),
        ]:
            bad = Settings(temporal_address=proxy.address, **wrong)  # type: ignore[arg-type]
            with pytest.raises(RuntimeError) as refused:
                await asyncio.wait_for(connect(bad), 20)
            line = _line_with(bad, refused.value)
            assert expected in line, line


def _line_with(settings: Settings, exc: BaseException) -> str:
    """The CLI's one line for `exc`, with `settings` as the process's settings."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in settings.model_dump(exclude_unset=True).items():
            env.setenv(f"COBRO_{key.upper()}", str(value))
        get_settings.cache_clear()
        line = error_line(exc)
    get_settings.cache_clear()
    assert line is not None and "\n" not in line
    return line


@pytest.mark.temporal
async def test_mtls_runs_with_the_client_certificate_and_the_cli_is_refused_without(
    dev_server_env: WorkflowEnvironment, database: str, pki: Pki, tmp_path: Path
) -> None:
    with TlsProxy(_frontend(dev_server_env), pki.server_context(require_client_cert=True)) as p:
        mtls = dict(
            temporal_tls_ca_file=pki.ca_file,
            temporal_tls_server_name=SERVER_NAME,
            temporal_tls_cert_file=pki.client_cert_file,
            temporal_tls_key_file=pki.client_key_file,
        )
        report = await _run_system_check(_settings(p.address, database, **mtls))
        assert report.dialect == "sqlite"

        env = {k: v for k, v in os.environ.items() if not k.startswith("COBRO_")}
        env.update(
            PYTHONPATH=str(ROOT),
            COBRO_VAR_DIR=str(tmp_path / "var"),
            COBRO_DATABASE_URL=database,
            COBRO_TEMPORAL_ADDRESS=p.address,
            COBRO_TEMPORAL_TLS_CA_FILE=str(pki.ca_file),
            COBRO_TEMPORAL_TLS_SERVER_NAME=SERVER_NAME,
        )
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", "from cobro.cli import app; app()", "schedule", "apply"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert cli.returncode == 1, cli
    assert "Traceback" not in cli.stderr and cli.stdout == ""
    lines = cli.stderr.strip().splitlines()
    # the server's TLS alert, or (on a loaded machine, its close won the race) tonic's bare
    # "transport error": either way the line names the settings to fix
    assert lines in (
        [
            f"error: cannot reach Temporal at {p.address}: the server closed the TLS "
            "connection: it requires a client certificate (mTLS): set "
            "COBRO_TEMPORAL_TLS_CERT_FILE and COBRO_TEMPORAL_TLS_KEY_FILE"
        ],
        [
            f"error: cannot reach Temporal at {p.address}: transport error: if the server "
            "requires a client certificate (mTLS), set COBRO_TEMPORAL_TLS_CERT_FILE and "
            "COBRO_TEMPORAL_TLS_KEY_FILE"
        ],
    ), cli.stderr


async def test_the_api_key_is_sent_as_a_bearer_token_over_tls(pki: Pki) -> None:
    """Temporal Cloud: the key goes in the `authorization` metadata of every call, TLS on
    without being asked; a refused key is one line that does not show the key."""
    key = "cobro-cloud-key-" + uuid.uuid4().hex
    settings = Settings(
        temporal_address="127.0.0.1:1",
        temporal_namespace="cobro-prod.a1b2c",
        temporal_api_key=key,
        temporal_tls_ca_file=pki.ca_file,
        temporal_tls_server_name=SERVER_NAME,
    )
    with RefusingFrontend(pki.server_context()) as frontend:
        settings = settings.model_copy(update={"temporal_address": frontend.address})
        with pytest.raises(RuntimeError) as refused:
            await asyncio.wait_for(connect(settings), 20)
    call = frontend.calls[0]
    assert call["authorization"] == f"Bearer {key}"
    assert call[":scheme"] == "https" and call[":authority"] == SERVER_NAME
    line = _line_with(settings, refused.value)
    assert "refused (Unauthenticated)" in line and "COBRO_TEMPORAL_API_KEY" in line
    assert key not in line
    assert key not in repr(settings) + settings.model_dump_json()


def test_tls_settings_become_the_sdk_tls_config(pki: Pki) -> None:
    assert tls_config(Settings()) is False  # the embedded dev server: plain
    assert isinstance(tls_config(Settings(temporal_api_key="k")), TLSConfig)
    tls = tls_config(
        Settings(
            temporal_tls_ca_file=pki.ca_file,
            temporal_tls_server_name="frontend.example",
            temporal_tls_cert_file=pki.client_cert_file,
            temporal_tls_key_file=pki.client_key_file,
        )
    )
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == pki.ca_file.read_bytes()
    assert tls.domain == "frontend.example"
    assert tls.client_cert == pki.client_cert_file.read_bytes()
    assert tls.client_private_key == pki.client_key_file.read_bytes()
    assert tls_config(Settings(temporal_tls=False, temporal_tls_ca_file=pki.ca_file)) is False


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"temporal_tls_cert_file": "c.pem"},
            "COBRO_TEMPORAL_TLS_CERT_FILE is set but COBRO_TEMPORAL_TLS_KEY_FILE is not",
        ),
        ({"temporal_tls_ca_file": "/nonexistent/ca.pem"}, "COBRO_TEMPORAL_TLS_CA_FILE: cannot"),
        ({"temporal_tls_ca_file": "NOT_PEM"}, "is not a PEM file"),
    ],
)
def test_wrong_tls_files_are_one_line_naming_the_setting(
    settings: dict[str, str], message: str, tmp_path: Path
) -> None:
    if settings.get("temporal_tls_ca_file") == "NOT_PEM":
        (tmp_path / "ca.der").write_bytes(b"\x30\x82binary")
        settings = {"temporal_tls_ca_file": str(tmp_path / "ca.der")}
    with pytest.raises(TemporalConfigError) as wrong:
        tls_config(Settings(**settings))  # type: ignore[arg-type]
    assert message in str(wrong.value)
    assert error_line(wrong.value) == str(wrong.value)
