"""Log records for operators: `COBRO_LOG_FORMAT=text` (default) or `json` (one object per
line: time, level, logger, message and, inside an activity or workflow, its workflow id,
run id and the customer account it works for).

No log line carries an e-mail address or a phone number: the senders log Message-IDs, SIDs
and idempotency keys, and `Redact` masks any address or number a library or an error
message still writes (`a***@example.com`, `+33•••••4557`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
# international numbers (Cobro stores E.164), written together or with spaces/dots/dashes
PHONE = re.compile(r"(?<![\w+])\+\d(?:[ .\-]?\d){7,14}(?!\w)")
ACCOUNT = re.compile(r"\bdunning[:-]([A-Za-z0-9_.\-]+?)(?=[:/\s]|$)")


def redact(text: str) -> str:
    """Mask e-mail addresses and phone numbers (the first character and the domain of an
    address, the last 4 digits of a number stay: enough to tell two apart)."""
    if "@" in text:
        text = EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return PHONE.sub(_mask_phone, text)


def _mask_phone(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return f"+{digits[:2]}{'•' * (len(digits) - 6)}{digits[-4:]}"


class Redact(logging.Filter):
    """Masks addresses and numbers in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def temporal_context() -> dict[str, str]:
    """workflow_id, run_id, activity and account of the activity or workflow running here."""
    from temporalio import activity, workflow

    out: dict[str, str] = {}
    if activity.in_activity():
        info = activity.info()
        out = {
            "workflow_id": info.workflow_id or "",
            "run_id": info.workflow_run_id or "",
            "activity": info.activity_type,
        }
    else:
        try:
            winfo = workflow.info()
        except Exception:  # not in a workflow either
            return out
        out = {"workflow_id": winfo.workflow_id, "run_id": winfo.run_id}
    match = ACCOUNT.search(out.get("workflow_id", ""))
    if match:
        out["account"] = match.group(1)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(temporal_context())
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """The root logger for a Cobro process (worker, web, `cobro dev`): one stream handler,
    redacting, in the chosen format."""
    if log_format not in ("text", "json"):
        raise ValueError(f"COBRO_LOG_FORMAT must be text or json, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.addFilter(Redact())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # request headers
