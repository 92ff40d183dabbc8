"""Helpers shared by the tests: waiting for effects, free ports, the repository's paths.

Topical helpers live beside this module: `tests.helpers.capture` (capture servers as
fixtures), `tests.helpers.dunning` (settings, workers and CSV rows for dunning tests),
`tests.helpers.importing` (reading back what an import wrote).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"


async def eventually(check: Callable[[], object], timeout: float = 15) -> None:
    """Wait until `check()` is truthy (effects of activities that finish in real time, e.g.
    after a time skip); fail with a clear message after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
