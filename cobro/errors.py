"""One line for an error of the database or of Temporal, for a person: where, and why;
never the SQL, its parameters or a password. Used by the CLI, the pages and the actions."""

from __future__ import annotations

import re


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
