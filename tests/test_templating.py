"""Message templates: all samples render, errors are located, escaping, Babel formatting."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from cobro.dunning.schedule import InvoiceState
from cobro.formatting import money
from cobro.templating import (
    LANGUAGES,
    TEMPLATES_DIR,
    TemplateRenderError,
    Templates,
    build_context,
    format_date,
    render_all_samples,
    sample_context,
)

EMAILS = ("pre_due", "due", "reminder", "final_notice")
SMS = ("due", "reminder")


def plain(s: str) -> str:
    """CLDR uses narrow/no-break spaces; compare with ordinary ones."""
    return s.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(TEMPLATES_DIR, tmp_path / "templates")
    return tmp_path / "templates"


def test_all_samples_render_in_all_languages() -> None:
    assert {"en", "fr", "es", "de", "it", "nl", "pt"} <= set(LANGUAGES)
    assert render_all_samples() == []
    catalogue = set(Templates().catalogue())
    for lang in LANGUAGES:
        assert {("email", lang, n) for n in EMAILS} <= catalogue
        assert {("sms", lang, n) for n in SMS} <= catalogue


def test_every_language_has_every_file_that_en_has() -> None:
    """Partials included: a language is a full copy of `en`, never a partial one."""
    for channel in ("email", "sms"):
        en = sorted(f.name for f in (TEMPLATES_DIR / channel / "en").glob("*.j2"))
        for lang in LANGUAGES:
            files = sorted(f.name for f in (TEMPLATES_DIR / channel / lang).glob("*.j2"))
            assert files == en, (channel, lang)


@pytest.mark.parametrize(
    ("lang", "subject", "line", "total", "closing"),
    [
        (
            "it",
            "Sollecito di pagamento: fatture scadute – conto cliente C-0042",
            "- Fattura F-2025-0101 | scadenza 2 giu 2025 | 29 giorni di ritardo | 1.234,56 €"
            " | fase: sollecito",
            "Totale scaduto EUR: 1.314,56 €",
            "Distinti saluti\nAcme Industrie – Ufficio crediti",
        ),
        (
            "nl",
            "Betalingsherinnering: vervallen facturen – klantnummer C-0042",
            "- Factuur F-2025-0150 | vervaldatum 10 jul 2025 | over 9 dagen | US$ 999,99",
            "Totaal vervallen EUR: € 1.314,56",
            "Met vriendelijke groet,\nAcme Industrie – Debiteurenbeheer",
        ),
        (
            "pt",
            "Lembrete: faturas vencidas – conta de cliente C-0042",
            "- Fatura F-2025-0117 | vencimento 16 de jun. de 2025 | 15 dias de atraso | € 80,00"
            " | etapa: aviso de vencimento",
            "Total a vencer USD: US$ 999,99",
            "Atenciosamente,\nAcme Industrie – Gestão de crédito",
        ),
    ],
)
def test_new_languages_are_native(
    lang: str, subject: str, line: str, total: str, closing: str
) -> None:
    mail = Templates().render_email("reminder", lang, sample_context(lang))
    assert (mail.language, mail.fell_back) == (lang, False)
    assert mail.subject == subject
    text = plain(mail.text)
    assert line in text and total in text and text.rstrip().endswith(closing)
    assert f'<html lang="{lang}">' in mail.html and "&lt;SARL&gt;" in mail.html


def test_new_languages_agree_with_one_invoice() -> None:
    """Singular and plural are the language's own, not `invoice(s)`."""
    one = build_context(
        {"name": "Rossi S.r.l.", "account": "K1"},
        [{"number": "A", "due_date": date(2025, 6, 1), "currency": "EUR", "open_amount": "5"}],
        as_of=date(2025, 6, 2),
    )
    t = Templates()
    expected = {
        ("it", "due"): "la fattura indicata di seguito è giunta a scadenza",
        ("it", "reminder"): "con un ritardo che raggiunge ormai 1 giorno.",
        ("nl", "due"): "de onderstaande factuur nu is vervallen",
        ("nl", "final_notice"): "administratie staat de onderstaande factuur nog open.",
        ("pt", "due"): "a fatura abaixo atingiu a data de vencimento",
        ("pt", "reminder"): "com até 1 dia de atraso",
    }
    for (lang, name), sentence in expected.items():
        assert sentence in t.render_email(name, lang, {**one, "locale": lang}).text, (lang, name)
    # earlier contact is claimed only after one was sent
    for lang, earlier in (("it", "Nonostante"), ("nl", "Ondanks"), ("pt", "Apesar")):
        first = t.render_email("reminder", lang, sample_context(lang, reminded_before=False))
        later = t.render_email("reminder", lang, sample_context(lang))
        assert earlier not in first.text and earlier in later.text, lang
    assert "1 fattura per 5,00 € è giunta a scadenza" in plain(
        t.render_sms("due", "it", {**one, "locale": "it"}).text
    )


def test_unknown_variable_is_reported_with_file_and_line(copy: Path) -> None:
    f = copy / "email" / "fr" / "reminder.txt.j2"
    lines = f.read_text().splitlines()
    lines.insert(2, "Votre gestionnaire : {{ customer.manager_name }}")
    f.write_text("\n".join(lines))
    errors = render_all_samples(copy)
    assert len(errors) == 1
    assert "email/fr/reminder.txt.j2:3: " in errors[0]
    assert "manager_name" in errors[0]


def test_error_inside_a_partial_points_at_the_partial(copy: Path) -> None:
    f = copy / "email" / "de" / "_statement.html.j2"
    f.write_text(f.read_text() + "\n{{ totalz }}\n")
    errors = render_all_samples(copy)
    assert errors and all("email/de/_statement.html.j2:" in e for e in errors)
    assert all("totalz" in e for e in errors)


def test_syntax_error_and_missing_part_are_reported(copy: Path) -> None:
    (copy / "sms" / "es" / "due.txt.j2").write_text("Hola\n{% if payment_url %}\nsin cierre\n")
    (copy / "email" / "en" / "pre_due.html.j2").unlink()
    errors = render_all_samples(copy)
    assert any("sms/es/due.txt.j2:" in e and "endif" in e for e in errors), errors
    assert any(e.endswith("email/en/pre_due.html.j2:1: missing template") for e in errors)


def test_render_raises_located_error(copy: Path) -> None:
    (copy / "sms" / "en" / "due.txt.j2").write_text("line one\n{{ nope }}\n")
    with pytest.raises(TemplateRenderError) as info:
        Templates(copy).render_sms("due", "en", sample_context("en"))
    assert info.value.location.endswith("sms/en/due.txt.j2:2")


def test_sandbox_blocks_unsafe_attributes(copy: Path) -> None:
    (copy / "sms" / "en" / "due.txt.j2").write_text("{{ ''.__class__.__mro__ }}\n")
    errors = render_all_samples(copy)
    assert any("sms/en/due.txt.j2:1" in e and "unsafe" in e for e in errors), errors


def test_html_escapes_customer_name_text_does_not() -> None:
    ctx = sample_context("en")
    ctx["customer"] = {"name": "<script>alert(1)</script>", "account": "C&1"}
    mail = Templates().render_email("due", "en", ctx)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "C&amp;1" in mail.html
    assert "Dear <script>alert(1)</script>," in mail.text
    assert "C&1" in mail.subject and "\n" not in mail.subject


def test_email_contains_statement_and_totals_per_currency() -> None:
    mail = Templates().render_email("reminder", "fr", sample_context("fr"))
    assert mail.language == "fr"
    assert mail.subject == "Relance : factures échues – compte C-0042"
    text = plain(mail.text)
    # due invoices first, each with its days late and level; not-yet-due ones apart
    assert "Factures échues :" in text and "Factures non encore échues :" in text
    due_block, upcoming_block = text.split("Factures non encore échues :")
    assert (
        "Facture F-2025-0101 | échéance 2 juin 2025 | 29 jours de retard | 1 234,56 € | "
        "niveau : relance" in due_block
    )
    assert "F-2025-0117 | échéance 16 juin 2025 | 15 jours de retard" in due_block
    assert "Total échu EUR : 1 314,56 €" in due_block
    assert "F-2025-0150 | échéance 10 juil. 2025 | dans 9 jours | 999,99 $US" in upcoming_block
    assert "Total non échu USD : 999,99 $US" in upcoming_block
    assert "Malgré notre précédent message" in text  # a message was sent before
    html = plain(mail.html)
    assert "<td>F-2025-0117</td>" in html and "1 314,56 €" in html


def test_earlier_contact_is_claimed_only_when_one_was_sent() -> None:
    t = Templates()
    claims = {
        "en": ("Despite our previous message", "despite our reminders"),
        "fr": ("Malgré notre précédent message", "malgré nos relances"),
        "es": ("A pesar de nuestro mensaje anterior", "a pesar de nuestros recordatorios"),
        "de": ("Trotz unserer vorherigen Nachricht", "trotz unserer Erinnerungen"),
    }
    for lang, (reminder, final) in claims.items():
        first, later = sample_context(lang, reminded_before=False), sample_context(lang)
        assert first["previous_contacts"] == [] and first["reminded_before"] is False
        assert later["last_contact"]["channel"] == "email"
        for name, words in (("reminder", reminder), ("final_notice", final)):
            for part in ("text", "html"):
                assert words not in getattr(t.render_email(name, lang, first), part), (lang, name)
                assert words in getattr(t.render_email(name, lang, later), part), (lang, name)


def test_language_fallback() -> None:
    t = Templates()
    pl = t.render_email("due", "pl", sample_context("pl"))
    assert pl.language == "en" and "July 1, 2025" in pl.text  # English text, English dates
    assert (pl.requested, pl.fell_back) == ("pl", True)
    be = t.render_email("due", "fr_BE", sample_context("fr_BE"))
    assert (be.language, be.fell_back) == ("fr", False)
    assert t.render_sms("reminder", "de-AT", sample_context("de")).language == "de"
    assert t.resolve("email", "due", "pl", "html") == "email/en/due.html.j2"
    # the chain of `languages:` in dunning.yaml comes before `en`
    ca = t.render_email("due", "ca", sample_context("ca"), fallback=("es",))
    assert (ca.language, ca.requested, ca.fell_back) == ("es", "ca", True)
    assert "1 de julio de 2025" in ca.text  # Spanish text, Spanish dates
    sms = t.render_sms("due", "rm", sample_context("rm"), fallback=("xx", "de"))
    assert sms.language == "de" and "fällig" in sms.text
    assert t.chain("ca", ("es", "en")) == ("ca", "es", "en")


def test_a_message_is_never_a_mix_of_languages(copy: Path) -> None:
    """A language missing one part of a template gives the whole message in the next
    language of the chain (the rules check reports the missing file)."""
    (copy / "email" / "nl" / "reminder.html.j2").unlink()
    t = Templates(copy)
    mail = t.render_email("reminder", "nl", sample_context("nl"))
    assert mail.language == "en" and mail.subject.startswith("Reminder:")
    assert t.render_email("due", "nl", sample_context("nl")).language == "nl"
    assert t.render_sms("reminder", "nl", sample_context("nl")).language == "nl"


def test_sms_is_one_line() -> None:
    for lang in LANGUAGES:
        context = sample_context(lang)
        sms = Templates().render_sms("due", lang, context)
        # the customer's self-service link (its page has the pay-online button)
        assert "\n" not in sms.text and context["portal_url"] in sms.text
        assert 40 < len(sms.text) < 320


def test_money_and_date_per_locale() -> None:
    assert plain(money(Decimal("1234.56"), "EUR", "fr")) == "1 234,56 €"
    assert money(Decimal("1234.56"), "EUR", "en") == "€1,234.56"
    assert plain(money(Decimal("1234.56"), "EUR", "de")) == "1.234,56 €"
    assert plain(money(Decimal("1234.5"), "USD", "es")) == "1.234,50 US$"
    assert money("0.1", "JPY", "en") == "¥0"
    assert format_date(date(2025, 7, 14), "long", "fr") == "14 juillet 2025"
    assert format_date(date(2025, 7, 14), "long", "en") == "July 14, 2025"
    assert format_date(date(2025, 7, 14), "medium", "de") == "14.07.2025"


def test_filters_in_templates_use_the_context_locale(copy: Path) -> None:
    (copy / "sms" / "fr" / "due.txt.j2").write_text(
        "{{ 1234.5|money('EUR') }} / {{ 1234.5|money('EUR', 'en') }} / {{ as_of|date('short') }}"
    )
    sms = Templates(copy).render_sms("due", "fr", sample_context("fr"))
    assert plain(sms.text) == "1 234,50 € / €1,234.50 / 01/07/2025"


def test_build_context_from_invoice_states() -> None:
    invoices = [
        InvoiceState("B", date(2025, 7, 10), "EUR", Decimal("10.10")),
        InvoiceState("A", date(2025, 6, 1), "EUR", Decimal("5")),
        InvoiceState("C", date(2025, 6, 1), "GBP", Decimal("7")),
    ]
    ctx = build_context(
        {"name": "Acme", "account": "X1", "language": "es"}, invoices, as_of=date(2025, 7, 1)
    )
    assert [i["number"] for i in ctx["invoices"]] == ["A", "C", "B"]
    assert [i["days_overdue"] for i in ctx["invoices"]] == [30, 30, 0]
    assert ctx["totals"] == [
        {"currency": "EUR", "amount": Decimal("15.10")},
        {"currency": "GBP", "amount": Decimal("7")},
    ]
    assert ctx["locale"] == "es" and ctx["max_days_overdue"] == 30 and ctx["invoice_count"] == 3
    mail = Templates().render_email("final_notice", "es", ctx)
    assert "Último aviso" in mail.subject and "Acme" in mail.text
    single = build_context({"name": "A", "account": "X"}, invoices[1:2], as_of=date(2025, 7, 1))
    assert "the following invoice has" in Templates().render_email("due", "en", single).text
