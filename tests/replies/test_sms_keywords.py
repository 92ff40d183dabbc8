"""Opt-out and opt-in keywords of incoming SMS, in every language Cobro writes in."""

from __future__ import annotations

import pytest

from cobro.replies.sms_keywords import intent_of, keyword_of


@pytest.mark.parametrize(
    "body", ["STOP", "stop", " Stop. ", "ARRET", "Arrêt", "arrêt !", "BAJA", "baja", "HALT",
             "UNSUBSCRIBE", "Stopp", "ALTO", "Désinscription"],
)  # fmt: skip
def test_opt_out_keywords(body: str) -> None:
    assert intent_of(body) == "opt_out"


@pytest.mark.parametrize("body", ["START", "start", "Unstop", "YES", "alta"])
def test_opt_in_keywords(body: str) -> None:
    assert intent_of(body) == "opt_in"


@pytest.mark.parametrize(
    "body", ["stop sending me these, I paid on Monday", "¿Puedo pagar en dos veces?",
             "Bajamos mañana al banco", "", "STOP STOP", "non-stop"],
)  # fmt: skip
def test_anything_else_is_a_reply_for_a_person(body: str) -> None:
    assert intent_of(body) == "reply"


def test_keyword_folding() -> None:
    assert keyword_of("  ¡Arrêt!  ") == "ARRET"
