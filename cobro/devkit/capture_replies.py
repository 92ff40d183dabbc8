"""Answer a captured email as the customer's side would, over SMTP to the inbound server
(`cobro.replies.inbound_smtp`):

* `human`: the customer's reply, to the Reply-To, `Re:` the subject, In-Reply-To and
  References our Message-ID, the original quoted below ("On ... wrote:");
* `auto`: an out-of-office answer (`Auto-Submitted: auto-replied`, "Automatic reply:");
* `bounce`: the recipient's MTA's RFC 3464 delivery-status notification (5.1.1, user
  unknown) from `MAILER-DAEMON`, to the envelope sender (`MAIL FROM:<>`), with the
  original's headers as `text/rfc822-headers`.

    POST /_capture/mail/{id}/reply   kind=human|auto|bounce [text=...]

Pure builders (`build_reply`) and one send (`deliver`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, localtime, parseaddr

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cobro.devkit.capture_smtp import CapturedMail, MailNotFound, MailStore

log = logging.getLogger("cobro.devkit.capture_replies")

KINDS = ("human", "auto", "bounce")
DEFAULT_TEXT = {
    "human": "Hello, we paid this invoice yesterday by bank transfer. Regards",
    "auto": "I am out of the office until next Monday, with limited access to email.",
    "bounce": "",
}


@dataclass(frozen=True)
class Outgoing:
    envelope_from: str  # "" for a bounce
    envelope_to: str
    message: bytes


def _customer_address(mail: CapturedMail) -> str:
    to = mail.summary.envelope_to or mail.summary.to
    return to[0] if to else "customer@example.com"


def _answer_to(mail: CapturedMail) -> str:
    reply_to = mail.header("Reply-To")
    if reply_to:
        found = [a for _, a in getaddresses([reply_to]) if a]
        if found:
            return found[0]
    return parseaddr(mail.summary.from_)[1] or mail.summary.envelope_from


def build_reply(mail: CapturedMail, kind: str, text: str | None = None) -> Outgoing:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    words = text if text else DEFAULT_TEXT[kind]
    customer = _customer_address(mail)
    domain = customer.rpartition("@")[2] or "example.com"
    original_id = mail.summary.message_id or ""
    message = EmailMessage()
    message["Date"] = format_datetime(localtime())
    message["Message-ID"] = f"<{secrets.token_hex(12)}@{domain}>"
    if kind == "bounce":
        return _bounce(mail, message, customer, domain)
    message["From"] = customer
    message["To"] = _answer_to(mail)
    subject = mail.summary.subject
    if kind == "human":
        message["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        quoted = "\n".join(f"> {line}" for line in (mail.text or "").splitlines())
        body = f"{words}\n\nOn {mail.summary.date or 'a day'}, {mail.summary.from_} wrote:\n"
        body += f"{quoted}\n"
    else:
        message["Subject"] = f"Automatic reply: {subject}"
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
        body = f"{words}\n"
    if original_id:
        message["In-Reply-To"] = original_id
        message["References"] = original_id
    message.set_content(body)
    return Outgoing(customer, str(message["To"]), message.as_bytes())


def _bounce(mail: CapturedMail, message: EmailMessage, customer: str, domain: str) -> Outgoing:
    """A Postfix-shaped DSN, written out as bytes (the stdlib cannot build the
    `message/delivery-status` part)."""
    returned = mail.summary.envelope_from
    recipients = mail.summary.envelope_to or (customer,)
    boundary = f"dsn-{secrets.token_hex(8)}"
    head = mail.raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("ascii", "replace")
    per_recipient = "\n".join(
        f"Final-Recipient: rfc822; {r}\nOriginal-Recipient: rfc822;{r}\nAction: failed\n"
        f"Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <{r}>: Recipient address "
        f"rejected: User unknown\n"
        for r in recipients
    )
    text = f"""Date: {message["Date"]}
From: MAILER-DAEMON@{domain} (Mail Delivery System)
To: {returned}
Subject: Undelivered Mail Returned to Sender
Message-ID: {message["Message-ID"]}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.{domain}.

Your message could not be delivered to one or more recipients.

{chr(10).join(f"<{r}>: 550 5.1.1 User unknown" for r in recipients)}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.{domain}

{per_recipient}
--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{head}

--{boundary}--
"""
    return Outgoing("", returned, text.replace("\n", "\r\n").encode("utf-8", "replace"))


async def deliver(outgoing: Outgoing, host: str, port: int) -> tuple[int, str]:
    """Send it to the inbound server: its SMTP (code, message); a refusal is returned too."""
    import aiosmtplib

    try:
        async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False) as smtp:
            # `sendmail`, not `send`: a bounce's envelope sender is empty (MAIL FROM:<>)
            _refused, response = await smtp.sendmail(
                outgoing.envelope_from, [outgoing.envelope_to], outgoing.message
            )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0]
        return refused.code, refused.message
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    return 250, response


class CustomerMailbox:
    """The customer's side of the captured emails: `answer` one, over SMTP to `inbound`
    (host, port), the inbound server of `cobro dev` or of a test."""

    def __init__(self, store: MailStore, inbound: tuple[str, int] | None = None):
        self.store = store
        self.inbound = inbound

    async def answer(self, mail_id: str, kind: str, text: str | None = None) -> tuple[int, str]:
        """Answer the captured email `mail_id`: the inbound server's SMTP (code, message)."""
        if self.inbound is None:
            raise ValueError("no inbound SMTP server is configured (inbound)")
        mail = await asyncio.to_thread(self.store.get, mail_id)
        outgoing = build_reply(mail, kind, text)
        code, said = await deliver(outgoing, *self.inbound)
        log.info("customer %s to %s -> %s %s", kind, mail_id, code, said)
        return code, said

    async def control_reply(self, request: Request) -> Response:
        """`POST /_capture/mail/{id}/reply` (kind=human|auto|bounce, text=...)."""
        form = await request.form()
        kind = str(form.get("kind") or "human")
        text = form.get("text")
        try:
            code, said = await self.answer(
                request.path_params["id"], kind, str(text) if text else None
            )
        except MailNotFound:
            return JSONResponse({"error": "no such email"}, 404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except OSError as exc:
            return JSONResponse({"error": f"inbound SMTP server: {exc}"}, 502)
        return JSONResponse({"kind": kind, "code": code, "message": said},
                            200 if code < 400 else 502)  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        return [Route("/_capture/mail/{id}/reply", self.control_reply, methods=["POST"])]
