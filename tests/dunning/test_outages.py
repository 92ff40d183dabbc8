"""Exactly once through the outages a fault run found (issue 17 item 4), while three worker
processes are SIGKILLed at random as in test_email_once_kill.py:

- the Temporal dev server (a process of this test's own, SQLite file) SIGKILLed in the
  middle of the sends and started again on the same file 10 s later;
- the SMTP relay unreachable for 30 s (a TCP relay of this test's own in front of the
  capture server stops listening and drops every open connection, then comes back).

Afterwards every Message-ID and every SMS was captured exactly once, none missing, nothing
sent after a payment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cobro.devkit.devstack import TemporalDevServer
from tests.dunning.test_email_once_kill import CaptureProcess, capture_process, run_kill_test
from tests.helpers import free_port

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.serial]
__all__ = ["capture_process"]  # the fixture, used by name

CONTACTS = int(os.environ.get("COBRO_OUTAGE_CONTACTS", "60"))
TEMPORAL_DOWN_S = 10.0
SMTP_DOWN_S = 30.0


class TcpRelay:
    """Forwards 127.0.0.1:port to the capture SMTP server; `down()` closes the listening
    socket and every open connection (a relay that is gone), `up()` listens again on the
    same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self.writers -= {writer, up_writer}


async def test_exactly_once_when_the_temporal_server_is_killed_and_restarted(
    capture_process: CaptureProcess,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    server = TemporalDevServer(tmp_path / "temporal", address, free_port())
    await asyncio.to_thread(server.start)
    restarted: list[float] = []

    async def outage() -> None:
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)  # ours, by its PID's group
        await asyncio.to_thread(server.process.wait, 10)
        t = time.monotonic()
        await asyncio.sleep(TEMPORAL_DOWN_S)
        await asyncio.to_thread(server.start)  # the same SQLite file: the same workflows
        restarted.append(time.monotonic() - t)

    try:
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        env = SimpleNamespace(client=client)  # what run_kill_test reads of an environment
        stats = await run_kill_test(
            env,  # type: ignore[arg-type]
            capture_process,
            tmp_path,
            monkeypatch,
            outage=outage,
            prefix="T",
            contacts=CONTACTS,
            min_kills=1,  # the server's kill is the point; 60 contacts may leave no time for 3
        )
    finally:
        server.stop()
    assert restarted and restarted[0] >= TEMPORAL_DOWN_S
    assert stats["outage_started_at_captured"] < 2 * CONTACTS  # in the middle of the sends


async def test_exactly_once_when_the_smtp_relay_is_down_for_30_s(
    dev_server_env: WorkflowEnvironment,
    capture_process: CaptureProcess,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = TcpRelay(capture_process.smtp_port)
    await relay.up()
    down: list[float] = []

    async def outage() -> None:
        await relay.down()
        t = time.monotonic()
        await asyncio.sleep(SMTP_DOWN_S)
        await relay.up()
        down.append(time.monotonic() - t)

    try:
        stats = await run_kill_test(
            dev_server_env,
            capture_process,
            tmp_path,
            monkeypatch,
            outage=outage,
            prefix="M",
            contacts=CONTACTS,
            worker_env={"COBRO_SMTP_PORT": str(relay.port)},
            min_kills=1,
        )
    finally:
        if relay.server is not None:
            await relay.down()
    assert down and down[0] >= SMTP_DOWN_S
    assert stats["outage_started_at_captured"] < 2 * CONTACTS
