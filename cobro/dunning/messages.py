"""The words of a reminder: the action's template, in the customer's language, over the
invoices of the group as they stand when the reminder is claimed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from cobro.dunning.store import ActionSpec, CustomerFacts
from cobro.settings import get_settings
from cobro.templating import Templates, build_context


@dataclass
class Message:
    language: str
    subject: str | None
    text: str
    html: str | None


@cache
def _templates(directory: str) -> Templates:
    return Templates(directory)


def templates() -> Templates:
    return _templates(str(get_settings().templates_path.resolve()))


def render_reminder(action: ActionSpec, facts: CustomerFacts, now: datetime) -> Message:
    customer = facts.customer
    invoices = [inv for inv in facts.invoices if inv.number in set(action.invoices)]
    local_day = now.astimezone(ZoneInfo(customer.timezone)).date()
    settings = get_settings()
    context = build_context(
        customer,
        invoices,
        as_of=local_day,
        language=customer.language,
        company={"name": settings.company_name, "email": settings.company_email},
        step=action.template,
    )
    if action.kind == "email":
        email = templates().render_email(action.template or "", customer.language, context)
        return Message(email.language, email.subject, email.text, email.html)
    sms = templates().render_sms(action.template or "", customer.language, context)
    return Message(sms.language, None, sms.text, None)
