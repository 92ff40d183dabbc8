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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from cobro.dunning.languages import LanguageRules
from cobro.dunning.store import ActionSpec, CustomerFacts, policies, step_labels
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
    # WhatsApp: the approved template it goes as, `{"sid": "HX...", "variables": {...}}`
    provider_template: dict[str, Any] | None = None

    @property
    def fell_back(self) -> bool:
        return bool(self.requested) and self.language != self.requested


@cache
def _templates(directory: str) -> Templates:
    return Templates(directory)


def templates() -> Templates:
    return _templates(str(get_settings().templates_path.resolve()))


def _connection_of(facts: CustomerFacts) -> Connection | None:
    """The connection the facts were read on: the rules in force are those of its database."""
    return facts.session.connection() if facts.session is not None else None


def statement_levels(
    action: ActionSpec, facts: CustomerFacts, rules: Any = None
) -> dict[str, str | None]:
    """Invoice number -> the level (template or action) it has reached once `action` is done.

    `rules`: the dunning rules in force (`policies()`), read once by the caller."""
    labels = step_labels(action.policy, rules, _connection_of(facts))
    out: dict[str, str | None] = {}
    for inv in facts.invoices:
        if inv.number in action.invoices and not action.is_instalment:
            level = action.level_of(inv.number)
            out[inv.number] = labels.get(level, action.template)
            continue
        rows = [r for r in facts.reached.get(inv.id, ()) if r.policy == action.policy]
        rows = rows or list(facts.reached.get(inv.id, ()))
        out[inv.number] = max(rows, key=lambda r: (r.step_index, r.at)).label if rows else None
    return out


def instalment_context(facts: CustomerFacts, seq: int) -> dict[str, Any]:
    """What an instalment reminder's template reads: `instalment.{seq, due_date, amount,
    paid, left, currency}` and `plan.{count, total, currency, instalments, invoices}`."""
    plan = facts.plan
    assert plan is not None
    parts = plan.paid_parts
    lines = [
        {
            "seq": i.seq,
            "due_date": i.due_date,
            "amount": i.amount,
            "paid": part,
            "left": i.amount - part,
            "currency": plan.row.currency,
        }
        for i, part in zip(plan.instalments, parts, strict=True)
    ]
    this = next((line for line in lines if line["seq"] == seq), lines[0])
    return {
        "instalment": this,
        "plan": {
            "count": len(lines),
            "total": plan.row.total_amount,
            "currency": plan.row.currency,
            "instalments": lines,
            "invoices": list(plan.invoices),
        },
    }


@dataclass(frozen=True)
class RulesInForce:
    """The rules version in force, read once for a claim: its content hash and its built
    `dunning.yaml` (languages, step labels)."""

    hash: str
    dunning: Any

    @property
    def languages(self) -> LanguageRules:
        return self.dunning.rules.languages


def rules_in_force(connection: Connection | None = None) -> RulesInForce:
    """The content hash of the rules version in force and its dunning rules, read together
    (on `connection`, inside the caller's transaction, when given)."""
    ruleset = load_active_ruleset(connection=connection)
    return RulesInForce(ruleset.hash, ruleset.built("dunning.yaml"))


def render_reminder(
    action: ActionSpec,
    facts: CustomerFacts,
    now: datetime,
    languages: LanguageRules | None = None,
    rules: Any = None,
    portal_url: str | None = None,
) -> Message:
    """`rules`: the dunning rules in force (`policies()`), when the caller has read them;
    `languages` defaults to their `languages:` section; `portal_url`: the customer's
    self-service link (`cobro.portal.links.link_for_message`)."""
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
        levels=statement_levels(action, facts, rules),
        contact_invoices=action.invoices,
        previous_contacts=previous,
        portal_url=portal_url,
    )
    if action.is_instalment and facts.plan is not None:
        context.update(instalment_context(facts, action.step_index))
    if languages is None:
        in_force = rules if rules is not None else policies(connection=_connection_of(facts))
        languages = in_force.rules.languages
    fallback = languages.chain(customer.language)[1:]
    if action.kind == "email":
        email = templates().render_email(
            action.template or "", customer.language, context, fallback
        )
        return Message(email.language, email.subject, email.text, email.html, email.requested)
    if action.kind == "whatsapp":
        wa = templates().render_whatsapp(
            action.template or "", customer.language, context, fallback
        )
        content = {"sid": wa.content_sid, "variables": wa.variables} if wa.content_sid else None
        return Message(wa.language, None, wa.text, None, wa.requested, content)
    sms = templates().render_sms(action.template or "", customer.language, context, fallback)
    return Message(sms.language, None, sms.text, None, sms.requested)
