"""Every port of `cobro dev` follows its setting: the Temporal dev server started with chosen
free ports answers on each (gRPC, UI, HTTP API, /metrics), none random; the Twilio base URL
follows `capture_http_port` and the public URL `web_host`/`web_port` unless set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from cobro.devkit.devstack import TemporalDevServer
from cobro.settings import Settings
from tests.helpers import free_port


def test_every_temporal_port_answers_where_the_settings_say(tmp_path: Path) -> None:
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=free_port(),
        temporal_http_port=free_port(),
        temporal_metrics_port=free_port(),
    )
    server = TemporalDevServer(
        tmp_path,
        settings.temporal_address,
        settings.temporal_ui_port,
        settings.temporal_http_port,
        settings.temporal_metrics_port,
    )
    command = server.command()
    for flag, port in [
        ("--http-port", settings.temporal_http_port),
        ("--metrics-port", settings.temporal_metrics_port),
        ("--ui-port", settings.temporal_ui_port),
    ]:
        assert command[command.index(flag) + 1] == str(port)
    server.start()
    try:
        client = asyncio.run(Client.connect(settings.temporal_address))
        assert client.namespace == "default"
        base = "http://127.0.0.1"
        api = httpx.get(f"{base}:{settings.temporal_http_port}/api/v1/namespaces", timeout=10)
        assert api.status_code == 200 and "default" in api.text
        metrics = httpx.get(f"{base}:{settings.temporal_metrics_port}/metrics", timeout=10)
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        ui = httpx.get(f"{base}:{settings.temporal_ui_port}/", timeout=10)
        assert ui.status_code == 200
    finally:
        server.stop()


def test_the_stack_refuses_a_taken_http_port(tmp_path: Path) -> None:
    import socket

    from cobro.devkit.devstack import StackError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TemporalDevServer(tmp_path, f"127.0.0.1:{free_port()}", free_port(), port)
        with pytest.raises(StackError, match=f"port 127.0.0.1:{port} is already in use"):
            server.start()


def test_urls_follow_the_port_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COBRO_TWILIO_BASE_URL", "COBRO_PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COBRO_CAPTURE_HTTP_PORT", "18126")
    monkeypatch.setenv("COBRO_WEB_PORT", "18100")
    settings = Settings()
    assert settings.twilio_base_url == "http://127.0.0.1:18126"
    assert settings.public_base_url == "http://127.0.0.1:18100"
    moved = settings.model_copy(update={"web_port": 18200}).follow_ports()  # `cobro serve --port`
    assert moved.public_base_url == "http://127.0.0.1:18200"
    assert Settings(web_host="0.0.0.0", web_port=9000).public_base_url == "http://127.0.0.1:9000"
    # set explicitly: kept, whatever the ports (empty Twilio URL: the real Twilio)
    monkeypatch.setenv("COBRO_TWILIO_BASE_URL", "")
    monkeypatch.setenv("COBRO_PUBLIC_BASE_URL", "https://cobro.example.com")
    explicit = Settings()
    assert (explicit.twilio_base_url, explicit.public_base_url) == ("", "https://cobro.example.com")
    assert explicit.model_copy(update={"web_port": 1}).follow_ports().public_base_url == (
        "https://cobro.example.com"
    )
