"""What an incoming SMS asks for, from its words alone (no I/O).

A message that is only an opt-out keyword (any case, accents, spaces or final punctuation
ignored) opts its number out of SMS: Twilio's standard keywords (STOP, STOPALL,
UNSUBSCRIBE, CANCEL, END, QUIT) and those of the languages Cobro writes in (ARRET/ARRÊT,
BAJA, HALT, ALTO, STOPP, ABMELDEN, DESINSCRIPTION, DÉSABONNER). START, UNSTOP, YES (and
ALTA, REPRISE) opt it in again. Anything else is a reply for a person to read.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Intent = Literal["opt_out", "opt_in", "reply"]

OPT_OUT = frozenset(
    {
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "HALT", "ARRET", "ALTO",
        "BAJA", "STOPP", "ABMELDEN", "DESINSCRIPTION", "DESABONNER", "DESINSCRIBIR",
    }
)  # fmt: skip
OPT_IN = frozenset({"START", "UNSTOP", "YES", "ALTA", "REPRISE"})

_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$")


def keyword_of(body: str) -> str:
    """The body as a keyword: no accents, upper case, no surrounding spaces or punctuation."""
    folded = unicodedata.normalize("NFKD", body)
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _EDGES.sub("", plain).upper()


def intent_of(body: str) -> Intent:
    word = keyword_of(body)
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_IN:
        return "opt_in"
    return "reply"
