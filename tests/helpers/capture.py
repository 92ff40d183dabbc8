"""Capture servers for the whole suite: real SMTP + Twilio-compatible HTTP servers on free
loopback ports, storing under the test's tmp_path.

    async def test_x(capture_servers, smtp_config, twilio_config): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from cobro.channels.email import SmtpConfig
from cobro.channels.sms import TwilioConfig
from cobro.devkit.capture import CaptureServers

CAPTURE_ACCOUNT_SID = "AC" + "c0b70" * 6 + "00"
CAPTURE_AUTH_TOKEN = "capture-test-token"
CAPTURE_SMS_FROM = "+15005550006"
CAPTURE_MAIL_FROM = "Cobro Tests <collections@cobro.localhost>"


@pytest.fixture
async def capture_servers(tmp_path: Path) -> AsyncIterator[CaptureServers]:
    """Both capture servers, started on free ports, storing under `tmp_path/capture`."""
    async with CaptureServers(
        storage_dir=tmp_path / "capture",
        account_sid=CAPTURE_ACCOUNT_SID,
        auth_token=CAPTURE_AUTH_TOKEN,
    ) as servers:
        yield servers


@pytest.fixture
def smtp_config(capture_servers: CaptureServers) -> SmtpConfig:
    """`send_email` configuration pointing at the capture SMTP server."""
    return SmtpConfig(
        host="127.0.0.1",
        port=capture_servers.smtp_port,
        mail_from=CAPTURE_MAIL_FROM,
        timeout=10,
    )


@pytest.fixture
def twilio_config(capture_servers: CaptureServers) -> TwilioConfig:
    """`send_sms` configuration pointing the real twilio client at the capture server."""
    return TwilioConfig(
        account_sid=CAPTURE_ACCOUNT_SID,
        auth_token=SecretStr(CAPTURE_AUTH_TOKEN),
        sms_from=CAPTURE_SMS_FROM,
        base_url=capture_servers.base_url,
        timeout=10,
    )
