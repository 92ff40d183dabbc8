"""The inbound-email classifier on real-world-shaped messages (a Postfix DSN, an Exchange
out-of-office in French, a Gmail vacation responder, a Gmail human reply in Spanish that
quotes our reminder), and on broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from cobro.replies.email_kinds import classify, reply_text
from cobro.replies.tokens import address_for, communication_of, token_for

SAMPLES = Path(__file__).parent / "samples"
OURS = "<0123456789abcdef0123456789abcdef@cobro>"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_a_postfix_dsn_is_a_hard_bounce_of_our_message() -> None:
    found = classify(sample("postfix_bounce.eml"), envelope_from="")
    assert found.kind == "bounce"
    assert found.bounced_addresses == ("pagos@nunez.example",)
    assert found.refers_to[0] == OURS, "the returned headers name our Message-ID"
    assert "5.1.1" in found.why and "User unknown" in found.text


def test_a_4xx_dsn_is_only_delayed() -> None:
    raw = sample("postfix_bounce.eml").replace(b"Action: failed\nStatus: 5.1.1",
                                                b"Action: delayed\nStatus: 4.4.1")  # fmt: skip
    found = classify(raw)
    assert found.kind == "delayed" and found.bounced_addresses == ()
    failed = sample("postfix_bounce.eml").replace(b"Status: 5.1.1", b"Status: 4.2.2")
    assert classify(failed).kind == "delayed", "a failed 4.x.x is not a hard bounce"


def test_an_exchange_out_of_office_is_an_auto_reply() -> None:
    found = classify(sample("exchange_ooo.eml"))
    assert found.kind == "auto_reply"
    assert found.why == "Auto-Submitted: auto-generated"
    assert found.refers_to == (OURS,)
    assert "absente du bureau" in found.text
    assert "reply+5-abcdefghijkl@reply.cobro.localhost" in found.recipients


def test_the_subject_alone_marks_an_out_of_office() -> None:
    raw = sample("exchange_ooo.eml").replace(b"Auto-Submitted: auto-generated\n", b"")
    found = classify(raw)
    assert found.kind == "auto_reply" and "reponse automatique" in found.why
    for subject in ("Automatic reply: Reminder", "Abwesenheitsnotiz: Zahlung",
                    "Respuesta automática: Recordatorio", "Fuori ufficio", "Absence : relance",
                    "Automatisch antwoord: herinnering", "Resposta automática: lembrete",
                    "Out of Office: invoice"):  # fmt: skip
        msg = f"From: a@b.example\nSubject: {subject}\n\nhello\n".encode()
        assert classify(msg).kind == "auto_reply", subject
    human = b"From: a@b.example\nSubject: Re: absence de paiement?\n\nNous payons demain.\n"
    assert classify(human).kind == "human", "a word in the middle of a subject is no marker"


def test_a_gmail_vacation_responder_is_an_auto_reply() -> None:
    found = classify(sample("gmail_vacation.eml"))
    assert found.kind == "auto_reply" and found.why == "Auto-Submitted: auto-replied"
    assert found.sender == "hans.becker@gmail.com"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("X-Autoreply: yes", "X-Autoreply: yes"),
        ("X-Autorespond: on", "X-Autorespond: on"),
        ("Precedence: junk", "Precedence: junk"),
        ("Precedence: auto_reply", "Precedence: auto_reply"),
    ],
)
def test_other_auto_reply_headers(header: str, why: str) -> None:
    raw = f"From: a@b.example\nSubject: Re: facture\n{header}\n\nMerci.\n".encode()
    assert classify(raw).why == why
    assert classify(b"From: a@b.example\nAuto-Submitted: no\n\nMerci\n").kind == "human"
    assert classify(b"From: a@b.example\n\nMerci\n", envelope_from="").kind == "auto_reply"


def test_a_human_reply_without_the_quoted_original() -> None:
    found = classify(sample("human_reply.eml"), envelope_from="pagos@nunez.example")
    assert found.kind == "human"
    assert found.sender == "pagos@nunez.example"
    assert found.refers_to == (OURS,)
    assert found.text == (
        "Buenos días,\n\nLa factura F-S1 se pagó ayer por transferencia, les adjunto el "
        "justificante el viernes.\n\nUn saludo,\nJosé"
    )


@pytest.mark.parametrize(
    "quote",
    [
        "On Tue, 1 Dec 2026 at 10:02, Cobro <collections@cobro.localhost> wrote:",
        "Le mar. 1 déc. 2026 à 10:02, Cobro <collections@cobro.localhost> a écrit :",
        "Am 01.12.2026 um 10:02 schrieb Cobro <collections@cobro.localhost>:",
        "-----Original Message-----",
        "-----Message d'origine-----",
        "________________________________",
        "From: Cobro Collections <collections@cobro.localhost>",
        "De : Cobro Collections <collections@cobro.localhost>",
        "Von: Cobro Collections <collections@cobro.localhost>",
    ],
)
def test_the_quote_is_cut_at_its_attribution(quote: str) -> None:
    body = f"We paid on Friday.\n\n{quote}\nSent: Tuesday\n> Dear customer,\n> pay now\n"
    assert reply_text(body) == "We paid on Friday."


def test_a_reply_below_the_quote_and_a_signature() -> None:
    assert reply_text("> pay now\n> please\n\nDone yesterday.\n") == "Done yesterday."
    assert reply_text("Paid.\n-- \nJosé, Núñez SL\n+34 600\n") == "Paid."
    said = "On Friday I will pay, as I wrote before.\nThanks"
    assert reply_text(said) == said, "a sentence is no attribution"


def test_broken_input_still_classifies() -> None:
    for raw in (b"", b"\x00\xff\xfe garbage", b"Subject: =?utf-8?B?broken\n\n\xff\xfe",
                b"Content-Type: multipart/report; report-type=delivery-status\n\nno parts",
                b"Content-Type: text/plain; charset=klingon\n\nqapla\xff",
                b"From: =?utf-8?B?!!!?= <\r\nSubject: =?klingon?Q?x?=\r\n\r\n\xff"):  # fmt: skip
        found = classify(raw)
        assert found.kind in ("human", "delayed"), raw


def test_tokens_are_signed_and_case_blind() -> None:
    key = b"k" * 32
    address = address_for(key, 1234, "reply.example.com")
    assert address == f"reply+{token_for(key, 1234)}@reply.example.com"
    assert communication_of(key, address, "reply.example.com") == 1234
    assert communication_of(key, address.upper(), "REPLY.example.com") == 1234
    assert communication_of(key, address_for(key, 7, "x", "bounce"), "x") == 7
    forged = address.replace("+ya-", "+yb-")  # another id
    assert communication_of(key, forged, "reply.example.com") is None
    assert communication_of(b"other" * 8, address, "reply.example.com") is None
    assert communication_of(key, address, "other.example.com") is None
    assert communication_of(key, "reply@reply.example.com", "reply.example.com") is None
