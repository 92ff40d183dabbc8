"""Helpers shared by the CLI modules."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero."""
    one_line = " ".join(message.split())
    err_console.print(f"error: {one_line}", markup=False)
    raise typer.Exit(code)


def run_async(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from a command, in a thread of its own: works even when the caller
    (a test, a notebook) already runs an event loop in this thread."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="cobro-cli-async")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
