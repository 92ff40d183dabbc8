"""The words of a reminder: the action's template, in the customer's language (or the one its
`languages:` chain of `rules/dunning.yaml` falls back to), over the customer's statement as
it stands when the reminder is claimed.

The statement lists every open invoice that is not disputed (due ones and, in their own
block, not-yet-due ones), each with the level it has reached -- this contact included --
and its days late; amounts per currency. The templates also get the messages the customer
already received (`previous_contacts`, `reminded_before`): see `cobro.templating`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from cobro.dunning.languages import LanguageRules
from cobro.dunning.store import ActionSpec, CustomerFacts, policies
from cobro.rules.classify import load_active_ruleset
from cobro.settings import get_settings
from cobro.templating import Templates, build_context


@dataclass
class Message:
    language: str  # the language it is written in
    subject: str | None
    text: str
    html: str | None
    requested: str = ""  # the customer's language (normalised)

    @property
    def fell_back(self) -> bool:
        return bool(self.requested) and self.language != self.requested


@cache
def _templates(directory: str) -> Templates:
    return Templates(directory)


def templates() -> Templates:
    return _templates(str(get_settings().templates_path.resolve()))


def statement_levels(action: ActionSpec, facts: CustomerFacts) -> dict[str, str | None]:
    """Invoice number -> the level (template or action) it has reached once `action` is done."""
    labels: dict[int, str] = {}
    try:
        policy = policies().rules.get(action.policy)
        labels = {i: step.template or step.kind for i, step in enumerate(policy.steps)}
    except Exception:  # rules unreadable or policy gone: the recorded labels only
        pass
    out: dict[str, str | None] = {}
    for inv in facts.invoices:
        if inv.number in action.invoices:
            level = action.level_of(inv.number)
            out[inv.number] = labels.get(level, action.template)
            continue
        rows = [r for r in facts.reached.get(inv.id, ()) if r.policy == action.policy]
        rows = rows or list(facts.reached.get(inv.id, ()))
        out[inv.number] = max(rows, key=lambda r: (r.step_index, r.at)).label if rows else None
    return out


def language_rules() -> LanguageRules:
    """The `languages:` section of the dunning rules in force (the active version; reads
    the database: call it outside a transaction that holds a connection)."""
    return policies().rules.languages


def rules_in_force() -> tuple[str, LanguageRules]:
    """The content hash of the rules version in force and its `languages:` section, read
    together (outside a transaction that holds a connection)."""
    ruleset = load_active_ruleset()
    return ruleset.hash, ruleset.built("dunning.yaml").rules.languages


def render_reminder(
    action: ActionSpec,
    facts: CustomerFacts,
    now: datetime,
    languages: LanguageRules | None = None,
) -> Message:
    customer = facts.customer
    statement = [inv for inv in facts.invoices if inv.open_amount > 0 and not inv.disputed]
    local_day = now.astimezone(ZoneInfo(customer.timezone)).date()
    settings = get_settings()
    previous = [c for c in facts.delivered if c.at <= now]
    context = build_context(
        customer,
        statement,
        as_of=local_day,
        language=customer.language,
        company={"name": settings.company_name, "email": settings.company_email},
        step=action.template,
        levels=statement_levels(action, facts),
        contact_invoices=action.invoices,
        previous_contacts=previous,
    )
    fallback = (languages or language_rules()).chain(customer.language)[1:]
    if action.kind == "email":
        email = templates().render_email(
            action.template or "", customer.language, context, fallback
        )
        return Message(email.language, email.subject, email.text, email.html, email.requested)
    sms = templates().render_sms(action.template or "", customer.language, context, fallback)
    return Message(sms.language, None, sms.text, None, sms.requested)
