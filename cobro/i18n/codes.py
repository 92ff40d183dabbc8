"""The words for the codes Cobro stores (severities, states, risk classes, roles, channels,
task kinds...), in the reader's language: `label("severity", "critical")` is "crítica" in
Spanish. A code the catalogues do not know (a risk class named in someone's rules) is shown
as it is stored. The translations carry a context (`msgctxt`): "open" as an alert state and
"open" as a task status may read differently."""

from __future__ import annotations

from collections.abc import Callable

from cobro.i18n import current_locale, translations


def label(context: str, code: object) -> str:
    """The word for `code` of the kind `context`; "" for an empty code."""
    if code is None or code == "":
        return ""
    text = str(code)
    return translations(current_locale()).pgettext(context, text.lower())


def _for_extraction(pgettext: Callable[[str, str], str]) -> None:  # pragma: no cover
    """Every code the catalogues translate, spelled out for `pybabel extract` (the lower-case
    code as stored is the msgid). Never called."""
    for _ in (
        pgettext("claim status", "queued"),
        pgettext("claim status", "filed"),
        pgettext("claim status", "acknowledged"),
        pgettext("claim status", "indemnified"),
        pgettext("claim status", "refused"),
        pgettext("declaration status", "awaiting_approval"),
        pgettext("declaration status", "queued"),
        pgettext("declaration status", "filed"),
        pgettext("declaration status", "registered"),
        pgettext("declaration status", "rejected"),
        pgettext("declaration status", "cancelled"),
        pgettext("severity", "critical"),
        pgettext("severity", "warning"),
        pgettext("severity", "info"),
        pgettext("alert state", "open"),
        pgettext("alert state", "acknowledged"),
        pgettext("alert state", "resolved"),
        pgettext("task status", "open"),
        pgettext("task status", "done"),
        pgettext("risk class", "critical"),
        pgettext("risk class", "high"),
        pgettext("risk class", "medium"),
        pgettext("risk class", "low"),
        pgettext("risk class", "unclassified"),
        pgettext("role", "viewer"),
        pgettext("role", "collector"),
        pgettext("role", "credit_manager"),
        pgettext("role", "admin"),
        pgettext("channel", "email"),
        pgettext("channel", "sms"),
        pgettext("channel", "whatsapp"),
        pgettext("task kind", "call"),
        pgettext("task kind", "claim"),
        pgettext("task kind", "review_limit"),
        pgettext("task kind", "email_uncertain"),
        pgettext("task kind", "sms_uncertain"),
        pgettext("task kind", "task"),
        pgettext("task kind", "reply"),
        pgettext("task kind", "fix_address"),
        pgettext("inbound email", "human"),
        pgettext("inbound email", "auto_reply"),
        pgettext("inbound email", "bounce"),
        pgettext("inbound email", "delayed"),
        pgettext("message status", "claimed"),
        pgettext("message status", "delayed"),
        pgettext("message status", "sent"),
        pgettext("message status", "uncertain"),
        pgettext("message status", "failed"),
        pgettext("message status", "cancelled"),
        pgettext("message status", "bounced"),
        pgettext("message status", "delivered"),
        pgettext("cover status", "active"),
        pgettext("cover status", "reduced"),
        pgettext("cover status", "withdrawn"),
        pgettext("cover status", "expired"),
        pgettext("cover status", "refused"),
        pgettext("cover status", "granted"),
        pgettext("cover status", "partially_granted"),
        pgettext("cover status", "requested"),
        pgettext("alert type", "limit_almost_used"),
        pgettext("alert type", "over_limit"),
        pgettext("alert type", "became_critical"),
        pgettext("alert type", "grade_worsened"),
        pgettext("alert type", "cover_expiring"),
        pgettext("alert type", "cover_lost"),
        pgettext("alert type", "large_overdue"),
        pgettext("alert type", "promise_broken"),
        pgettext("alert type", "declaration_deadline_near"),
        pgettext("alert type", "declaration_deadline_missed"),
        pgettext("alert type", "entered_stop_supply_list"),
    ):
        pass
