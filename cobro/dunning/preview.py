"""The next contact of a customer, rendered exactly as the customer will get it (subject,
text, HTML, SMS), without sending anything: the planner's next email and SMS (one instant,
one send window) through the same renderer the delivery uses, as of the instant they go out.
Used by `cobro dunning preview`, the customer file and the API alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from cobro.channels.whatsapp import address as whatsapp_address
from cobro.dunning.actions import ActionSpec
from cobro.dunning.messages import render_reminder
from cobro.dunning.store import CustomerFacts, current_plan

MESSAGE_KINDS = ("email", "sms", "whatsapp")


@dataclass
class ContactPreview:
    at: datetime  # when it goes out (UTC), inside the customer's send window
    channel: str  # email | sms | whatsapp
    template: str
    step_at: str  # the policy step as written, e.g. "+1w"
    invoices: list[str]
    recipient: str | None
    language: str
    subject: str | None
    text: str
    html: str | None


@dataclass
class NextContact:
    account: str
    policy: str | None
    computed_at: datetime
    contacts: list[ContactPreview] = field(default_factory=list)

    @property
    def at(self) -> datetime | None:
        return self.contacts[0].at if self.contacts else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["computed_at"] = self.computed_at.isoformat()
        out["at"] = self.at.isoformat() if self.at else None
        for c in out["contacts"]:
            c["at"] = c["at"].isoformat()
        return out


def _recipient(customer: Any, kind: str) -> str | None:
    if kind == "email":
        return customer.email
    if kind == "whatsapp" and customer.phone:
        return whatsapp_address(customer.phone)
    return customer.phone


def next_contact(facts: CustomerFacts, now: datetime) -> NextContact:
    """The email and/or SMS the customer gets next (all those planned for the first instant
    with a message), rendered as of that instant. Nothing is written or sent."""
    customer = facts.customer
    planned = current_plan(facts, now)
    out = NextContact(customer.account, planned.policy, now)
    if planned.plan is None:
        return out
    due = [a for a in planned.due if a.kind in MESSAGE_KINDS]
    if due:
        batch = [(a, now) for a in due]
    else:  # the next steps of the policy, or of the payment plan's instalments
        ahead = [
            (ActionSpec.from_planned(customer.account, a), a.at)
            for a in planned.plan.actions
            if a.kind in MESSAGE_KINDS
        ]
        ahead += [(r, r.at) for r in planned.instalments if r.kind in MESSAGE_KINDS]
        if not ahead:
            return out
        first = min(at for _, at in ahead)
        batch = [(a, at) for a, at in ahead if at == first]
    steps = {a.idempotency_key: a.step_at for a in planned.plan.actions}
    # the link a send would reuse; none yet: the send makes one (a preview writes nothing)
    portal_url = None
    if facts.session is not None:
        from cobro.portal.links import existing_link_url

        portal_url = existing_link_url(facts.session, customer.id)
    for action, at in batch:
        message = render_reminder(action, facts, max(now, at), portal_url=portal_url)
        out.contacts.append(
            ContactPreview(
                at=max(now, at),
                channel=action.kind,
                template=action.template or "",
                step_at=steps.get(action.idempotency_key, str(action.step_index)),
                invoices=list(action.invoices),
                recipient=_recipient(customer, action.kind),
                language=message.language,
                subject=message.subject,
                text=message.text,
                html=message.html,
            )
        )
    return out
