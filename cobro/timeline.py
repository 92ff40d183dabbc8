"""What a customer-timeline event is, in the words of the people reading it: the stored
`kind` is a stable code (`alert.fired`), `title(kind)` the sentence shown on the customer
file, the API and `cobro dunning show` ("Alert raised")."""

from __future__ import annotations

TITLES: dict[str, str] = {
    "alert.fired": "Alert raised",
    "alert.acknowledged": "Alert acknowledged",
    "alert.assigned": "Alert assigned",
    "cover.created": "Insurer cover received",
    "cover.updated": "Insurer cover changed",
    "cover.reduced": "Insurer cover reduced",
    "cover.withdrawn": "Insurer cover withdrawn",
    "cover.expired": "Insurer cover expired",
    "cover.linked": "Insurer cover linked by hand",
    "cover.matched": "Insurer cover matched to this customer",
    "cover.requested": "Cover requested from the insurer",
    "customer.created": "Customer imported",
    "customer.updated": "Customer details updated",
    "dispute.opened": "Invoice disputed",
    "dispute.resolved": "Invoice dispute resolved",
    "dunning.paused": "Reminders paused",
    "dunning.resumed": "Reminders resumed",
    "dunning.skipped": "Reminder skipped",
    "dunning.email_sent": "Reminder email sent",
    "dunning.sms_sent": "Reminder SMS sent",
    "dunning.email_failed": "Reminder email failed",
    "dunning.sms_failed": "Reminder SMS failed",
    "dunning.language_fallback": "Reminder written in a fallback language",
    "dunning.email_delayed": "Reminder email delayed: the relay refused for now",
    "dunning.sms_delayed": "Reminder SMS delayed: the provider refused for now",
    "dunning.email_uncertain": "Reminder email may not have gone out: a collector decides",
    "dunning.task": "Task created for a collector",
    "dunning.claim": "Insurer claim to prepare",
    "grade.changed": "Insurer grade changed",
    "invoice.created": "Invoice imported",
    "invoice.updated": "Invoice updated",
    "payment.received": "Payment received",
    "promise.recorded": "Promise to pay recorded",
    "promise.kept": "Promise to pay kept",
    "promise.broken": "Promise to pay broken",
    "promise.partly_kept": "Promise to pay partly kept",
    "promise.cancelled": "Promise to pay cancelled",
    "risk.class_changed": "Risk class changed",
    "task.done": "Task completed",
}


def title(kind: str) -> str:
    """The sentence for an event kind; an unknown kind still reads as words."""
    known = TITLES.get(kind)
    if known is not None:
        return known
    words = kind.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]
