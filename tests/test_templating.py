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
    assert render_all_samples() == []
    catalogue = set(Templates().catalogue())
    for lang in LANGUAGES:
        assert {("email", lang, n) for n in EMAILS} <= catalogue
        assert {("sms", lang, n) for n in SMS} <= catalogue


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
    it = t.render_email("due", "it", sample_context("it"))
    assert it.language == "en" and "July 1, 2025" in it.text  # English text, English dates
    be = t.render_email("due", "fr_BE", sample_context("fr_BE"))
    assert be.language == "fr"
    assert t.render_sms("reminder", "de-AT", sample_context("de")).language == "de"
    # A template present only in `en` is used for every language.
    assert t.resolve("email", "due", "pt", "html") == "email/en/due.html.j2"


def test_sms_is_one_line() -> None:
    for lang in LANGUAGES:
        sms = Templates().render_sms("due", lang, sample_context(lang))
        assert "\n" not in sms.text and "pay.example.com" in sms.text
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
