"""Helpers shared by the CLI modules: one-line errors, running coroutines, talking to Temporal."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

TEMPORAL_CONNECT_TIMEOUT = 10.0
SDK_THREADS_GRACE = 2.0  # at most this long waiting for the SDK's threads to leave Python


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero."""
    one_line = " ".join(message.split())
    err_console.print(f"error: {one_line}", markup=False)
    raise typer.Exit(code)


class TemporalUnreachable(Exception):
    """Temporal could not be reached; the message is the line to print."""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def database_error(exc: BaseException) -> str:
    """A database error as one line: where, and why; never the SQL nor its parameters."""
    from sqlalchemy.exc import DBAPIError

    from cobro.settings import get_settings

    url = safe_url(get_settings().resolved_database_url)
    if not isinstance(exc, DBAPIError):
        return f"database error at {url}: {_first_line(str(exc))}"
    reason = _first_line(str(exc.orig)) or type(exc.orig).__name__
    if exc.statement is None or exc.connection_invalidated:  # no connection to begin with
        return f"cannot reach the database at {url}: {reason}"
    hint = ""
    if "no such table" in reason or type(exc.orig).__name__ == "UndefinedTable":
        hint = " (run `cobro db upgrade`)"
    return f"database error at {url}: {type(exc.orig).__name__}: {reason}{hint}"


def temporal_error(exc: BaseException) -> str:
    from cobro.settings import get_settings

    if isinstance(exc, TemporalUnreachable):
        return str(exc)
    text = " ".join(str(getattr(exc, "message", None) or exc or type(exc).__name__).split())
    reason = re.search(r'message: "([^"]+)"', text)  # the OS error inside tonic's text
    return f"cannot reach Temporal at {get_settings().temporal_address}: " + (
        reason.group(1) if reason else text
    )


def error_line(exc: BaseException) -> str | None:
    """The one line for an error of the database or of Temporal; None for any other error."""
    from sqlalchemy.exc import SQLAlchemyError
    from temporalio.service import RPCError

    if isinstance(exc, SQLAlchemyError):
        return database_error(exc)
    if isinstance(exc, TemporalUnreachable | RPCError):
        return temporal_error(exc)
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return temporal_error(exc)
    return None


def describe(exc: BaseException) -> str:
    """`error_line(exc)`, else the exception's own text (for `fail(f"... failed: ...")`)."""
    return error_line(exc) or str(exc) or type(exc).__name__


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
            f"cannot reach Temporal at {settings.temporal_address}: "
            f"no answer within {TEMPORAL_CONNECT_TIMEOUT:.0f} s"
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
