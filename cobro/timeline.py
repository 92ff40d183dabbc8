"""What a customer-timeline event is, in the words of the people reading it: the stored
`kind` is a stable code (`alert.fired`), `title(kind)` the sentence shown on the customer
file, the API and `cobro dunning show` ("Alert raised"), marked for the catalogues (the
dashboard shows it in the reader's language)."""

from __future__ import annotations

from cobro.i18n import N_

TITLES: dict[str, str] = {
    "alert.fired": N_("Alert raised"),
    "alert.acknowledged": N_("Alert acknowledged"),
    "alert.assigned": N_("Alert assigned"),
    "cover.created": N_("Insurer cover received"),
    "cover.updated": N_("Insurer cover changed"),
    "cover.reduced": N_("Insurer cover reduced"),
    "cover.withdrawn": N_("Insurer cover withdrawn"),
    "cover.expired": N_("Insurer cover expired"),
    "cover.linked": N_("Insurer cover linked by hand"),
    "cover.matched": N_("Insurer cover matched to this customer"),
    "cover.requested": N_("Cover requested from the insurer"),
    "customer.created": N_("Customer imported"),
    "customer.updated": N_("Customer details updated"),
    "customer.owner_changed": N_("Customer owner changed"),
    "dispute.opened": N_("Invoice disputed"),
    "dispute.resolved": N_("Invoice dispute resolved"),
    "dunning.paused": N_("Reminders paused"),
    "dunning.resumed": N_("Reminders resumed"),
    "dunning.skipped": N_("Reminder skipped"),
    "dunning.email_sent": N_("Reminder email sent"),
    "dunning.sms_sent": N_("Reminder SMS sent"),
    "dunning.email_failed": N_("Reminder email failed"),
    "dunning.sms_failed": N_("Reminder SMS failed"),
    "dunning.language_fallback": N_("Reminder written in a fallback language"),
    "dunning.email_delayed": N_("Reminder email delayed: the relay refused for now"),
    "dunning.sms_delayed": N_("Reminder SMS delayed: the provider refused for now"),
    "dunning.email_uncertain": N_("Reminder email may not have gone out: a collector decides"),
    "dunning.task": N_("Task created for a collector"),
    "dunning.claim": N_("Insurer claim to prepare"),
    "email.reply": N_("Email from the customer"),
    "email.auto_reply": N_("Automatic reply to a reminder (nothing paused)"),
    "email.bounced": N_("Email bounced: the address is undeliverable"),
    "email.delayed": N_("Email delivery delayed, reported by the customer's mail server"),
    "grade.changed": N_("Insurer grade changed"),
    "invoice.created": N_("Invoice imported"),
    "invoice.updated": N_("Invoice updated"),
    "payment.received": N_("Payment received"),
    "portal.visited": N_("Self-service page opened by the customer"),
    "portal.plan_requested": N_("Payment plan asked for on the self-service page"),
    "plan.requested": N_("Payment plan requested"),
    "plan.approved": N_("Payment plan approved"),
    "plan.rejected": N_("Payment plan rejected"),
    "plan.cancelled": N_("Payment plan cancelled"),
    "plan.instalment_paid": N_("Payment plan instalment paid"),
    "plan.completed": N_("Payment plan completed"),
    "plan.broken": N_("Payment plan broken: an instalment was missed"),
    "promise.recorded": N_("Promise to pay recorded"),
    "promise.kept": N_("Promise to pay kept"),
    "promise.broken": N_("Promise to pay broken"),
    "promise.partly_kept": N_("Promise to pay partly kept"),
    "promise.cancelled": N_("Promise to pay cancelled"),
    "risk.class_changed": N_("Risk class changed"),
    "sms.opted_out": N_("SMS opt-out by the customer"),
    "sms.opted_in": N_("SMS opt-in by the customer"),
    "sms.reply": N_("SMS from the customer"),
    "task.done": N_("Task completed"),
    "task.taken": N_("Task taken from its queue"),
}


def title(kind: str) -> str:
    """The sentence for an event kind; an unknown kind still reads as words."""
    known = TITLES.get(kind)
    if known is not None:
        return known
    words = kind.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]
