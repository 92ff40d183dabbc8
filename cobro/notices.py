"""What an action says it did, as a key of a fixed list and a few safe parameters.

An action (pause, promise, acknowledge, take a task...) returns a `Notice`: a `str` — its
text in the current language, for the CLI and the API — that also carries its message keys
and parameters. The dashboard redirects after an action with those keys in the URL
(`?notice=alerts_acknowledged&notice=not_open&n.num=5&n.ids=3,4`), never with the text; the
page it lands on translates them again (`from_query`), in the reader's language. A key not in
`MESSAGES`, a parameter the message does not name, or a value outside `SAFE` shows nothing:
a link cannot make the dashboard say anything the server does not say itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from cobro.i18n import N_, gettext, ngettext

# key: a message (msgid), or (the parameter that counts, its ngettext): a real ngettext
# call, so that `pybabel extract` finds the plural pair
Counted = tuple[str, Callable[[int], str]]
MESSAGES: dict[str, str | Counted] = {
    "done": N_("Done."),
    "claim_queued": N_("claim for %(invoice)s (%(amount)s %(currency)s) queued for the insurer"),
    "declaration_approved": N_(
        "overdue declaration (OVD) of %(invoice)s approved: queued for the insurer"
    ),
    "alert_acknowledged": N_("alert %(id)s acknowledged"),
    "alerts_acknowledged": (
        "num",
        lambda n: ngettext("%(num)s alert acknowledged", "%(num)s alerts acknowledged", n),
    ),
    "not_open": N_(" (%(ids)s not open)"),
    "alert_assigned": N_("alert %(id)s assigned to %(who)s"),
    "alerts_assigned": (
        "num",
        lambda n: ngettext(
            "%(num)s alert assigned to %(who)s", "%(num)s alerts assigned to %(who)s", n
        ),
    ),
    "alert_unassigned": N_("alert %(id)s unassigned"),
    "alerts_unassigned": (
        "num",
        lambda n: ngettext("%(num)s alert unassigned", "%(num)s alerts unassigned", n),
    ),
    "already_were": N_(" (%(same)s already were)"),
    "task_taken": N_("task %(id)s is yours"),
    "task_done": N_("task %(id)s done"),
    "owner_same": N_("%(account)s is already owned by %(who)s"),
    "owner_none_same": N_("%(account)s is already without owner"),
    "owner_set": N_("%(account)s is now owned by %(who)s"),
    "owner_cleared": N_("%(account)s has no owner now"),
    "tasks_moved": (
        "tasks",
        lambda n: ngettext(" (%(tasks)s open task", " (%(tasks)s open tasks", n),
    ),
    "alerts_moved": (
        "alerts",
        lambda n: ngettext(
            " and %(alerts)s open alert moved)", " and %(alerts)s open alerts moved)", n
        ),
    ),
    "paused": N_("dunning paused"),
    "paused_until": N_("dunning paused until %(until)s"),
    "resumed": N_("%(num)s pause(s) lifted"),
    "promise_stays": N_("; the promise to pay by %(until)s stays (cancel it to resume reminders)"),
    "promised": N_("promise to pay %(amount)s %(currency)s by %(until)s recorded"),
    "insurer_notes": N_("; the insurer's deadlines: see the timeline"),
    "promise_cancelled": N_("promise to pay by %(until)s cancelled"),
    "plan_requested": N_(
        "payment plan of %(num)s instalments requested: a collector decides (%(problems)s)"
    ),
    "plan_approved_by_rule": N_(
        "payment plan of %(num)s instalments approved by rule: reminders follow its instalments"
    ),
    "plan_approved": N_("payment plan approved: reminders follow its instalments"),
    "plan_declared": N_("; rescheduling (RES) queued for the insurer: %(invoices)s"),
    "plan_rejected": N_("payment plan rejected"),
    "plan_cancelled": N_("payment plan cancelled: reminders follow the invoices' due dates again"),
    "disputed": N_("invoice %(invoice)s disputed: it leaves dunning until resolved"),
    "resolved": N_("invoice %(invoice)s dispute resolved: back in dunning"),
    "marked_sent": N_(
        "%(template)s %(channel)s to %(recipient)s marked as sent: it will not be resent"
    ),
    "resent": N_("%(channel)s to %(recipient)s resent (Message-ID %(message_id)s)"),
    "not_resent": N_(
        "%(template)s %(channel)s to %(recipient)s not resent: its invoices were paid or "
        "disputed since"
    ),
    "unreachable": N_(
        " (recorded; the reminders follow it from their next step: cannot reach Temporal "
        "at %(address)s)"
    ),
    "unsignalled": N_(
        " (recorded; the reminders follow it from their next step: the workflow could not "
        "be told now)"
    ),
}
COUNTS = {m[0] for m in MESSAGES.values() if isinstance(m, tuple)}
SAFE = re.compile(r"[\w.,:@+/-]{1,64}")  # ids, names, accounts, dates, amounts
PRIVATE = {"recipient", "message_id"}  # in the text, never in a URL (logs, history)
MAX_KEYS = 4
PREFIX = "n."


def _text(key: str, params: Mapping[str, Any]) -> str:
    message = MESSAGES[key]
    if isinstance(message, tuple):
        count, plural = message
        return plural(int(params[count])) % params
    return gettext(message) % params


class Notice(str):
    """The text of one or more messages (in the current language), with their keys."""

    keys: tuple[str, ...]
    params: dict[str, str]

    def __new__(cls, keys: Iterable[str], **params: Any) -> Notice:
        keys = tuple(keys)
        clean = {k: str(v) for k, v in params.items()}
        for key in keys:
            if key not in MESSAGES:
                raise KeyError(f"no notice {key!r}")
        text = "".join(_text(key, params) for key in keys)
        self = super().__new__(cls, text)
        self.keys, self.params = keys, clean
        return self


class _Blanks(dict[str, str]):
    def __missing__(self, key: str) -> str:
        if key in COUNTS:
            raise KeyError(key)  # no count: no message
        return "…"


def notice(*keys: str, **params: Any) -> Notice:
    return Notice(keys, **params)


def query(said: str) -> str:
    """The query string of a notice: its keys and the parameters they name; a plain string
    (no keys) is only "done"; unsafe values are left out (the text then shows nothing)."""
    if not isinstance(said, Notice):
        return urlencode({"notice": "done"})
    pairs = [("notice", key) for key in said.keys[:MAX_KEYS]]
    pairs += [
        (PREFIX + k, v) for k, v in said.params.items() if k not in PRIVATE and SAFE.fullmatch(v)
    ]
    return urlencode(pairs)


def from_query(params: Any) -> str:
    """The banner of a page: the messages its `?notice=` keys name, with their parameters,
    in the current language; "" when a key is not in `MESSAGES`. A parameter left out (or
    not as the server writes them) shows as "…"."""
    keys = params.getlist("notice")[:MAX_KEYS] if hasattr(params, "getlist") else []
    if not keys or any(key not in MESSAGES for key in keys):
        return ""
    values = _Blanks(
        (name[len(PREFIX) :], value)
        for name, value in params.items()
        if name.startswith(PREFIX) and name[len(PREFIX) :] not in PRIVATE and SAFE.fullmatch(value)
    )
    try:
        return "".join(_text(key, values) for key in keys)
    except (KeyError, ValueError, TypeError):
        return ""
