"""One line for an error of the database or of Temporal, for a person: where, and why;
never the SQL, its parameters or a password. Used by the CLI, the pages and the actions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cobro.i18n import gettext as _

if TYPE_CHECKING:
    from cobro.settings import Settings


class TemporalUnreachable(Exception):
    """Temporal could not be reached; the message is the line to print."""


class TemporalConfigError(TemporalUnreachable):
    """The settings of the Temporal connection are wrong (a TLS file, a payload key): the
    message names the setting, and never shows a secret."""


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
        return _("database error at %(url)s: %(reason)s") % {
            "url": url,
            "reason": _first_line(str(exc)),
        }
    reason = _first_line(str(exc.orig)) or type(exc.orig).__name__
    if exc.statement is None or exc.connection_invalidated:  # no connection to begin with
        return _("cannot reach the database at %(url)s: %(reason)s") % {
            "url": url,
            "reason": reason,
        }
    hint = ""
    if "no such table" in reason or type(exc.orig).__name__ == "UndefinedTable":
        hint = _(" (run `cobro db upgrade`)")
    reason = f"{type(exc.orig).__name__}: {reason}{hint}"
    return _("database error at %(url)s: %(reason)s") % {"url": url, "reason": reason}


def temporal_error(exc: BaseException) -> str:
    from cobro.settings import get_settings

    if isinstance(exc, TemporalUnreachable):
        return str(exc)
    settings = get_settings()
    text = " ".join(str(getattr(exc, "message", None) or exc or type(exc).__name__).split())
    reason = _known_reason(text, settings)
    if reason is None:
        found = re.search(r'message: "([^"]+)"', text)  # the OS error inside tonic's text
        reason = found.group(1) if found else text
    return _("cannot reach Temporal at %(address)s: %(reason)s") % {
        "address": settings.temporal_address,
        "reason": reason,
    }


def _known_reason(text: str, settings: Settings) -> str | None:
    """What a TLS or auth failure deep inside tonic's error text means, and which setting to
    fix; None for any other error."""
    refused = re.search(r"InvalidCertificate\((\w+)", text)
    if refused:
        why = refused.group(1).removesuffix("Context")
        hint = {
            "UnknownIssuer": "set COBRO_TEMPORAL_TLS_CA_FILE to the CA that signed it",
            "NotValidForName": "set COBRO_TEMPORAL_TLS_SERVER_NAME to the name it carries",
            "Expired": "it has expired",
        }.get(why, "check COBRO_TEMPORAL_TLS_CA_FILE and COBRO_TEMPORAL_TLS_SERVER_NAME")
        return f"TLS: the server's certificate is not trusted ({why}): {hint}"
    if "InvalidContentType" in text or "CorruptMessage" in text:
        return "TLS: the server does not speak TLS (set COBRO_TEMPORAL_TLS=false)"
    tls_on = settings.temporal_tls
    if tls_on is None:
        tls_on = any((settings.temporal_tls_ca_file, settings.temporal_tls_cert_file))
        tls_on = tls_on or settings.temporal_api_key is not None
    closed = re.search(r"broken pipe|operation was canceled|connection (closed|reset)", text)
    if not tls_on and closed and "after connection" in text:
        return "the server closed the connection: does it require TLS? (COBRO_TEMPORAL_TLS=true)"
    if tls_on and ("close_notify" in text or "UnexpectedEof" in text):
        if settings.temporal_tls_cert_file is None:
            return (
                "the server closed the TLS connection: it requires a client certificate "
                "(mTLS): set COBRO_TEMPORAL_TLS_CERT_FILE and COBRO_TEMPORAL_TLS_KEY_FILE"
            )
        return "the server closed the TLS connection: it refused the client certificate"
    bare = text.strip() == "transport error" or 'message: "transport error"' in text
    if tls_on and settings.temporal_tls_cert_file is None and (bare or closed):
        # the TLS alert of a server that wants a certificate can lose the race with its
        # close: the SDK then reports only this (or, on a loaded machine, that the
        # operation was canceled)
        return (
            "transport error: if the server requires a client certificate (mTLS), set "
            "COBRO_TEMPORAL_TLS_CERT_FILE and COBRO_TEMPORAL_TLS_KEY_FILE"
        )
    denied = re.search(r'code: (Unauthenticated|PermissionDenied), message: "([^"]*)"', text)
    if denied:
        what = "COBRO_TEMPORAL_API_KEY" if settings.temporal_api_key else "the client certificate"
        return f"refused ({denied.group(1)}): {denied.group(2)} (check {what} and the namespace)"
    return None


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
