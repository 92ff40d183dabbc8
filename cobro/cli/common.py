"""Helpers shared by the CLI modules: one-line errors, running coroutines, talking to Temporal."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from cobro.errors import (  # noqa: F401 (the CLI's modules import them from here)
    TemporalUnreachable,
    database_error,
    describe,
    error_line,
    safe_url,
    temporal_error,
)
from cobro.i18n import gettext as _

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

TEMPORAL_CONNECT_TIMEOUT = 10.0
SDK_THREADS_GRACE = 2.0  # at most this long waiting for the SDK's threads to leave Python


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero."""
    one_line = " ".join(message.split())
    err_console.print(_("error: %(message)s") % {"message": one_line}, markup=False)
    raise typer.Exit(code)


class CobroGroup(TyperGroup):
    """The `cobro` command group: a database or Temporal error in any command becomes one line
    on stderr and exit code 1, instead of a traceback with SQL and parameters."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            line = error_line(exc)
            if line is None:
                raise
            fail(line)


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


async def connect_temporal() -> Client:
    """The Temporal client, or TemporalUnreachable with one line saying where and why."""
    from cobro.settings import get_settings
    from cobro.temporal_client import connect

    settings = get_settings()
    try:
        return await asyncio.wait_for(connect(settings), timeout=TEMPORAL_CONNECT_TIMEOUT)
    except TimeoutError:
        raise TemporalUnreachable(
            _("cannot reach Temporal at %(address)s: no answer within %(seconds)s s")
            % {"address": settings.temporal_address, "seconds": f"{TEMPORAL_CONNECT_TIMEOUT:.0f}"}
        ) from None
    except Exception as exc:
        raise TemporalUnreachable(temporal_error(exc)) from None


def run_with_temporal(work: Callable[[Client], Awaitable[T]]) -> T:
    """Connect to Temporal, run `work(client)` and return its result: the one way every
    command talks to Temporal. Errors reaching Temporal raise TemporalUnreachable.

    It returns only once the SDK's threads have left Python. The SDK completes each call on a
    thread of its Rust runtime, which takes the GIL and calls `loop.call_soon_threadsafe`:
    the loop wakes up while that thread is still inside Python, and can run to the end of the
    command before the thread has taken the GIL back. When the interpreter is finalizing by
    then, CPython ends the thread from inside its GIL guard and aborts the process
    (`Fatal Python error: PyGILState_Release ... finalizing`, exit 134, after the command
    printed its result; temporalio/sdk-python#300)."""

    async def go() -> T:
        return await work(await connect_temporal())

    try:
        return run_async(go)
    finally:
        wait_for_foreign_threads()


def wait_for_foreign_threads(grace: float = SDK_THREADS_GRACE) -> None:
    """Sleep (without the GIL) until no thread that Python did not start runs Python code."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        ours = {t.ident for t in threading.enumerate()}
        if set(sys._current_frames()) <= ours:
            return
        time.sleep(0.002)
