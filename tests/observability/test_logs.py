"""Log lines never carry a customer's address or number; JSON lines parse."""

from __future__ import annotations

import io
import json
import logging

import pytest

from cobro.observability.logs import JsonFormatter, Redact, configure_logging, redact


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("email to ap276@customer276.example refused", "email to a***@customer276.example refused"),
        ("Cobro <collections@cobro.localhost>", "Cobro <c***@cobro.localhost>"),
        ("sms to=+12015556200 key=dunning:C1", "sms to=+12•••••6200 key=dunning:C1"),
        ("call +33 6 72 94 05 57 today", "call +33•••••0557 today"),
        # not numbers of anyone: left alone
        ("run 12345678-1234-5678-1234-567812345678", "run 12345678-1234-5678-1234-567812345678"),
        ("total 1 234 567,89 EUR on 20261202", "total 1 234 567,89 EUR on 20261202"),
        ("key=dunning:C00292:standard:s1:email:2f5f5bbac2112fb7", None),
    ],
)
def test_redact(raw: str, shown: str | None) -> None:
    assert redact(raw) == (raw if shown is None else shown)


def test_a_record_is_redacted_and_json_parses() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(Redact())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("not sent to %s: %s", "ap@client.example", "550 no such user")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(out.getvalue())
    assert entry["level"] == "warning" and entry["logger"] == "tests.observability.json"
    assert entry["message"] == "not sent to a***@client.example: 550 no such user"
    assert "workflow_id" not in entry  # outside any activity or workflow


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        configure_logging("xml")
