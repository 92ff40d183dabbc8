"""What an email that came back to us is, from its bytes alone (stdlib `email`, no I/O).

* `bounce` / `delayed`: an RFC 3464 delivery-status notification (`multipart/report;
  report-type=delivery-status`): a recipient with `Action: failed` and a `5.x.x` status is
  a hard bounce (the address is undeliverable); `4.x.x`, or `Action: delayed`, is recorded
  only. The message it is about is the returned one's Message-ID (its `message/rfc822` or
  `text/rfc822-headers` part), else its In-Reply-To/References.
* `auto_reply`: RFC 3834 `Auto-Submitted` other than `no`; `X-Autoreply`,
  `X-Autorespond`, `X-Autoresponder`; `Precedence: auto_reply|bulk|junk`; an empty envelope
  sender (`MAIL FROM:<>`, which RFC 3834 asks of responders) that is not a DSN; or an
  out-of-office subject in English, Spanish, French, German, Italian, Dutch or Portuguese
  ("Automatic reply:", "Réponse automatique :", "Abwesenheitsnotiz", "Fuori ufficio"...).
  A non-RFC-3464 bounce (plain text from MAILER-DAEMON) falls here too: recorded only.
* `human`: anything else. Its `text` is the reply without the quoted original: the lines
  before the first attribution line ("On ... wrote:", "Le ... a écrit :", "El ...
  escribió:", "Am ... schrieb ...:"), "-----Original Message-----" (and its translations),
  an Outlook header block ("From: ...", "De : ...", "Von: ..."), a `____` rule or a `-- `
  signature; quoted `>` lines are dropped. When that leaves nothing (a reply written
  below the quote), the unquoted lines are kept.

A message the parser cannot make sense of still classifies (as `human`, with what text
could be read): nothing here raises on bad input.
"""

from __future__ import annotations

import email.policy
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Literal

Kind = Literal["human", "auto_reply", "bounce", "delayed"]

MAX_TEXT = 4000
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

# out-of-office subjects, folded (no accents, lower case): anywhere in the subject
OOO_PHRASES = (
    "out of office", "out of the office", "automatic reply", "auto reply", "auto-reply",
    "autoreply", "auto response", "autoresponse", "away from the office", "on vacation",
    "respuesta automatica", "fuera de la oficina", "fuera de oficina", "ausencia temporal",
    "reponse automatique", "absent du bureau", "message d'absence", "absence du bureau",
    "automatische antwort", "abwesenheitsnotiz", "abwesenheitsnachricht",
    "automatische abwesenheit", "nicht im buro", "risposta automatica", "fuori ufficio",
    "fuori sede", "assenza dall'ufficio", "automatisch antwoord", "afwezigheidsbericht",
    "buiten kantoor", "niet op kantoor", "resposta automatica", "fora do escritorio",
    "ausencia do escritorio", "mensagem de ausencia",
)  # fmt: skip
# single words that are a marker only as the subject's first word (then ':' or the end)
OOO_WORDS = ("absence", "absent", "ausente", "abwesend", "afwezig", "assente", "ausencia")
_OOO_WORD = re.compile(r"^\W*(" + "|".join(OOO_WORDS) + r")\b\s*(:|-|$)")

_VERBS = r"(wrote|a ecrit|escribio|schrieb|ha scritto|schreef|escreveu)"
_OPENING = re.compile(r"^\s*(on|le|el|am|il|op|em|en)\b")
_ATTRIBUTION = re.compile(r"^\s*(on|le|el|am|il|op|em|en)\b.*\b" + _VERBS + r"\b.*:\s*$")
_WROTE_END = re.compile(r"\b" + _VERBS + r"\s*:\s*$")  # an attribution wrapped on 2 lines
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|message d'origine|mensaje original|urspr[u]ngliche "
    r"nachricht|messaggio originale|oorspronkelijk bericht|mensagem original|forwarded "
    r"message)"
)
_HEADER_BLOCK = re.compile(r"^\s*\**(from|de|von|da|van)\s?\**\s?:\s*\S")
_RULE = re.compile(r"^\s*_{5,}\s*$")


@dataclass(frozen=True)
class Recipient:
    """One recipient of a delivery-status notification."""

    address: str
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # 5.1.1
    diagnostic: str = ""


@dataclass(frozen=True)
class Inbound:
    kind: Kind
    why: str  # what decided the kind, for the timeline and the logs
    message_id: str | None
    sender: str  # the From address (lower case), "" if none
    subject: str
    text: str  # the reply's own words (human), or the DSN's diagnostic
    refers_to: tuple[str, ...] = ()  # our Message-IDs it answers, the most telling first
    recipients: tuple[str, ...] = ()  # To, Cc, Delivered-To, X-Original-To (lower case)
    failed: tuple[Recipient, ...] = field(default=())  # DSN: per-recipient fields

    @property
    def bounced_addresses(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.failed if is_hard(r))


def is_hard(r: Recipient) -> bool:
    return r.action == "failed" and r.status.startswith("5")


def fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in plain if not unicodedata.combining(ch)).lower()


def parse(raw: bytes) -> Message:
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def header(message: Message, name: str) -> str:
    """A header's value as text; "" when absent or undecodable."""
    try:
        value = message.get(name)
    except Exception:  # a header the parser rejects: its raw text
        raw = [v for k, v in message.raw_items() if k.lower() == name.lower()]
        value = raw[0] if raw else None
    if value is None:
        return ""
    return " ".join(str(value).split())


def message_ids(*values: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for found in _MSGID.findall(value or ""):
            if found not in out:
                out.append(found)
    return tuple(out)


def classify(raw: bytes, envelope_from: str | None = None) -> Inbound:
    """The kind of an inbound message; `envelope_from` is SMTP's MAIL FROM when known
    (`""`: the null sender, `<>`)."""
    try:
        found = _classify(parse(raw), envelope_from)
    except Exception as exc:  # the stdlib parser is lenient: this is rare
        text = raw.decode("utf-8", "replace")[:MAX_TEXT]
        found = Inbound("human", f"unreadable message ({type(exc).__name__})", None, "", "", text)
    return _printable(found)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(found: Inbound) -> Inbound:
    """No NUL or other control characters in what is stored (PostgreSQL refuses NUL)."""
    clean = {
        name: _CONTROL.sub("", getattr(found, name))
        for name in ("why", "sender", "subject", "text")
    }
    mid = _CONTROL.sub("", found.message_id) if found.message_id else None
    return replace(found, message_id=mid, **clean)


def _classify(message: Message, envelope_from: str | None) -> Inbound:
    sender = parseaddr(header(message, "From"))[1].lower()
    subject = header(message, "Subject")
    own_id = next(iter(message_ids(header(message, "Message-ID"))), None)
    threads = message_ids(header(message, "In-Reply-To"), header(message, "References"))
    recipients = _recipients(message)
    base = {"message_id": own_id, "sender": sender, "subject": subject, "recipients": recipients}

    report = _delivery_report(message)
    if report is not None:
        failed, original = report
        refers = message_ids(original, *threads)
        hard = [r for r in failed if is_hard(r)]
        if hard:
            why = f"delivery failed: {hard[0].status} {hard[0].address}"
            text = hard[0].diagnostic or why
            return Inbound("bounce", why, text=text[:MAX_TEXT], refers_to=refers,
                           failed=tuple(failed), **base)  # fmt: skip
        soft = next((r for r in failed if r.action in ("failed", "delayed")), None)
        why = f"delivery delayed: {soft.status} {soft.address}" if soft else "delivery report"
        text = (soft.diagnostic if soft else "") or why
        return Inbound("delayed", why, text=text[:MAX_TEXT], refers_to=refers,
                       failed=tuple(failed), **base)  # fmt: skip

    body = _text_of(message)
    auto = _auto_reason(message, subject, envelope_from)
    if auto is not None:
        return Inbound("auto_reply", auto, text=_summary(body), refers_to=threads, **base)
    return Inbound("human", "written by a person", text=reply_text(body), refers_to=threads,
                   **base)  # fmt: skip


def _recipients(message: Message) -> tuple[str, ...]:
    values: list[str] = []
    for name in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"):
        try:
            values.extend(str(v) for v in message.get_all(name) or [])
        except Exception:
            continue
    found = [addr.lower() for _, addr in getaddresses(values) if "@" in addr]
    return tuple(dict.fromkeys(found))


# ----------------------------------------------------------------- RFC 3464 reports


def _delivery_report(message: Message) -> tuple[list[Recipient], str] | None:
    """(the per-recipient fields, the returned message's Message-ID header) of a DSN."""
    if message.get_content_type() != "multipart/report":
        return None
    if (message.get_param("report-type") or "").lower() != "delivery-status":
        return None
    failed: list[Recipient] = []
    original = ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            failed.extend(_status_fields(part))
        elif kind == "message/rfc822" and not original:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                original = header(inner[0], "Message-ID")
        elif kind == "text/rfc822-headers" and not original:
            try:
                text = part.get_content()
            except Exception:
                text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            original = header(HeaderParser().parsestr(text), "Message-ID")
    return failed, original


def _status_fields(part: Message) -> list[Recipient]:
    payload = part.get_payload()
    blocks: list[Message] = []
    if isinstance(payload, list):
        blocks = [b for b in payload if isinstance(b, Message)]
    else:  # some parsers leave it as text: blank-line separated header blocks
        text = str(payload).replace("\r\n", "\n")
        blocks = [HeaderParser().parsestr(chunk) for chunk in text.split("\n\n") if chunk.strip()]
    out = []
    for block in blocks:
        final = header(block, "Final-Recipient") or header(block, "Original-Recipient")
        if not final:
            continue  # the per-message block
        address = final.split(";", 1)[-1].strip().strip("<>").lower()
        status = _STATUS.search(header(block, "Status"))
        out.append(
            Recipient(
                address=address,
                action=header(block, "Action").lower(),
                status=status.group(0) if status else "",
                diagnostic=header(block, "Diagnostic-Code").split(";", 1)[-1].strip(),
            )
        )
    return out


# ----------------------------------------------------------------- RFC 3834 and friends


def _auto_reason(message: Message, subject: str, envelope_from: str | None) -> str | None:
    auto = header(message, "Auto-Submitted").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        value = header(message, name).lower()
        if value and value not in ("no", "false", "0"):
            return f"{name}: {value}"
    precedence = header(message, "Precedence").lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"Precedence: {precedence}"
    folded = fold(subject)
    phrase = next((p for p in OOO_PHRASES if p in folded), None)
    if phrase is not None:
        return f"out-of-office subject ({phrase})"
    word = _OOO_WORD.match(folded)
    if word is not None:
        return f"out-of-office subject ({word.group(1)})"
    if envelope_from is not None and envelope_from.strip("<> ") == "":
        return "empty envelope sender (MAIL FROM:<>)"
    return None


# ----------------------------------------------------------------- the reply's own words


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in ("br", "p", "div", "tr", "li", "blockquote"):
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def _html_text(html: str) -> str:
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return ""
    return "".join(parser.out)


def _content(part: Message) -> str:
    try:
        return str(part.get_content())  # type: ignore[attr-defined]
    except Exception:  # unknown charset or broken transfer encoding: best effort
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _text_of(message: Message) -> str:
    """The message's text/plain part, else its HTML as text."""
    plain = html = None
    for part in message.walk() if message.is_multipart() else [message]:
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = _content(part)
        elif kind == "text/html" and html is None:
            html = _content(part)
    text = plain if plain is not None else _html_text(html or "")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _summary(text: str) -> str:
    return " ".join(text.split())[:MAX_TEXT]


def _cut_at(lines: Iterable[str]) -> list[str]:
    kept = []
    for line in lines:
        folded = fold(line)
        if line.rstrip() == "--" or line == "-- ":
            break
        if _ATTRIBUTION.match(folded) or _ORIGINAL.match(folded) or _RULE.match(line):
            break
        if _WROTE_END.search(folded):
            if kept and _OPENING.match(fold(kept[-1])):
                kept.pop()  # the attribution's first line
            break
        if _HEADER_BLOCK.match(folded):
            break
        kept.append(line)
    return kept


def reply_text(text: str) -> str:
    """The reply without the quoted original (the module's heuristic)."""
    lines = text.split("\n")
    own = [line for line in _cut_at(lines) if not line.lstrip().startswith(">")]
    if not "".join(own).strip():
        own = [line for line in lines if not line.lstrip().startswith(">")]
    return "\n".join(own).strip()[:MAX_TEXT]
