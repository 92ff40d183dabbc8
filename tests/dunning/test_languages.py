"""Every language or a declared fallback: the `languages:` chain of `rules/dunning.yaml`, its
positioned errors, the language a reminder is written in (and the timeline saying so), and
the warnings of `cobro rules check` per customer language that falls back."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cobro.cli import app
from cobro.dunning.delivery import claim
from cobro.dunning.languages import LanguageRules, coverage, fallback_cycle
from cobro.dunning.messages import render_reminder
from cobro.dunning.policy import load_policies
from cobro.dunning.rulefile import templates_directory
from cobro.dunning.store import ActionSpec, CustomerFacts, Trace
from cobro.models import Communication, Customer, Invoice, TimelineEvent
from cobro.rules import RuleError
from cobro.rules.ruleset import Ruleset
from cobro.settings import get_settings
from tests.helpers import ROOT, free_port
from tests.helpers.dunning import import_rows

runner = CliRunner()
SHIPPED = LanguageRules(fallback={"ca": "es", "lb": "fr"})
WITH_TEMPLATES = {"en", "fr", "es", "de", "it", "nl", "pt"}


# ---------------------------------------------------------------- the chain (pure)


def test_chain_and_the_language_written_in() -> None:
    assert SHIPPED.chain("ca") == ("ca", "es", "en")
    assert SHIPPED.chain("pl") == ("pl", "en")
    assert SHIPPED.chain("pt_BR") == ("pt", "en")
    assert SHIPPED.chain(None) == ("en",)
    assert SHIPPED.written_in("ca", WITH_TEMPLATES) == "es"
    assert SHIPPED.written_in("ca", {"en", "fr"}) == "en"  # es gone: on to the default
    assert SHIPPED.written_in("it", WITH_TEMPLATES) == "it"
    assert SHIPPED.written_in("pl", WITH_TEMPLATES) == "en"
    longer = LanguageRules(fallback={"rm": "lb", "lb": "fr"}, default="de")
    assert longer.chain("rm") == ("rm", "lb", "fr", "de")
    assert longer.written_in("pl", {"de"}) == "de"


def test_coverage_counts_each_language() -> None:
    got = coverage(SHIPPED, {"pl": 12, "fr": 3, "ca": 1, "fr_BE": 2}, WITH_TEMPLATES)
    assert [(c.language, c.customers, c.written_in, c.falls_back) for c in got] == [
        ("ca", 1, "es", True),
        ("fr", 3, "fr", False),
        ("fr_BE", 2, "fr", False),
        ("pl", 12, "en", True),
    ]
    assert [c.customers for c in coverage(SHIPPED, ["pl"], WITH_TEMPLATES)] == [None]


def test_cycles_are_found() -> None:
    assert fallback_cycle({"ca": "es", "it": "nl", "nl": "it"}) == ("it", "nl", "it")
    assert fallback_cycle({"lb": "lb"}) == ("lb", "lb")
    assert fallback_cycle({"rm": "lb", "lb": "fr", "fr": "rm"}) == ("rm", "lb", "fr", "rm")
    assert fallback_cycle({"rm": "lb", "lb": "fr"}) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"fallback": {"it": "nl", "nl": "it"}}, "fallback cycle it -> nl -> it"),
        ({"fallback": {"xx": "en"}}, "unknown language code 'xx'"),
        ({"fallback": {"ca": "Spanish"}}, "unknown language code 'Spanish'"),
        ({"fallback": {False: "en"}}, 'quote it ("no")'),
        ({"default": "zz"}, "unknown language code 'zz'"),
        ({"fallbacks": {}}, "Extra inputs are not permitted"),
    ],
)
def test_plain_validation(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        LanguageRules.model_validate(data)


def test_plain_policy_file_defaults_to_english() -> None:
    steps = "steps: [{at: +1d, channel: email, template: due}]"
    rules = load_policies(f"policies: [{{name: p, {steps}}}]")
    assert rules.languages == LanguageRules() and rules.languages.chain("pl") == ("pl", "en")
    rules = load_policies(
        f"policies: [{{name: p, {steps}}}]\nlanguages: {{fallback: {{CA: ES}}, default: fr}}"
    )
    assert rules.languages.chain("ca") == ("ca", "es", "fr")


# ---------------------------------------------------------------- positioned errors


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path / "rules", tmp_path / "templates"


def set_languages(rules: Path, section: str) -> str:
    """Replace the `languages:` section of dunning.yaml; return the new text."""
    f = rules / "dunning.yaml"
    text = f.read_text(encoding="utf-8")
    head = text[: text.index("\nlanguages:") + 1]
    f.write_text(head + section, encoding="utf-8")
    return head + section


def at(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


@pytest.mark.parametrize(
    ("section", "needle", "message"),
    [
        (
            "languages:\n  fallback: {ca: es, it: nl, nl: it}\n  default: en\n",
            "it: nl",
            "fallback cycle it -> nl -> it",
        ),
        (
            "languages:\n  fallback:\n    ca: es\n    pl: pl\n",
            "pl: pl",
            "fallback cycle pl -> pl",
        ),
        ("languages:\n  fallback: {ca: es, xx: en}\n", "xx: en", "unknown language code 'xx'"),
        ("languages:\n  fallback: {ca: esp}\n", "esp}", "unknown language code 'esp'"),
        ("languages:\n  fallback: {no: en}\n", "no: en", "YAML reads a bare no"),
        ("languages:\n  default: english\n", "english", "unknown language code 'english'"),
        (
            "languages:\n  fallback: {ca: ja}\n",
            "ja}",
            "`ca` falls back to `ja`, which has no templates",
        ),
        (
            "languages:\n  fallback: {ca: es}\n  default: ja\n",
            "ja\n",
            "default language `ja` has no templates",
        ),
        ("languages:\n  fallbak: {ca: es}\n", "fallbak", "did you mean `fallback`?"),
        ("languages: [en, fr]\n", "[en, fr]", "valid dictionary"),
    ],
)
def test_a_bad_languages_section_gives_one_positioned_error(
    tree: tuple[Path, Path], section: str, needle: str, message: str
) -> None:
    rules, templates = tree
    text = set_languages(rules, section)
    with templates_directory(templates), pytest.raises(RuleError) as info:
        Ruleset.load(rules)
    [error] = info.value.messages
    assert (error.path, error.line, error.col) == (str(rules / "dunning.yaml"), *at(text, needle))
    assert message in error.message
    result = runner.invoke(app, ["rules", "check", str(rules), "--templates", str(templates)])
    assert result.exit_code == 1
    assert [x for x in result.stdout.splitlines() if "dunning.yaml:" in x] == [str(error)]


def test_the_default_language_is_where_every_template_must_exist(tree: tuple[Path, Path]) -> None:
    rules, templates = tree
    text = set_languages(rules, "languages:\n  default: de\n")
    (templates / "email" / "de" / "due.subject.j2").unlink()
    (templates / "email" / "en" / "final_notice.html.j2").unlink()  # en is no longer the end
    with templates_directory(templates), pytest.raises(RuleError) as info:
        Ruleset.load(rules)
    positions = [(m.line, m.col) for m in info.value.messages]
    lines = text.splitlines()
    due_steps = [
        (n + 1, line.index("due}") + 1)
        for n, line in enumerate(lines)
        if "template: due}" in line and "channel: sms" not in line
    ]
    assert positions == due_steps
    assert all("email template `due` is incomplete" in m.message for m in info.value.messages)
    assert all("/email/de/due.subject.j2" in m.message for m in info.value.messages)


# ---------------------------------------------------------------- the renderer


def facts_for(language: str, timezone: str = "Europe/Paris") -> CustomerFacts:
    customer = Customer(
        account="K1", name="Kowalski Sp. z o.o.", language=language, timezone=timezone
    )
    invoice = Invoice(
        number="FV-1", due_date=date(2026, 11, 2), currency="EUR", open_amount=Decimal("120.50")
    )
    return CustomerFacts(customer, [invoice], {}, [], None, None)


def action(kind: str = "email", template: str = "reminder", key: str = "k1") -> ActionSpec:
    return ActionSpec(
        account="K1",
        kind=kind,
        step_index=2,
        policy="standard",
        invoices=["FV-1"],
        idempotency_key=key,
        at=datetime(2026, 11, 12, 9, tzinfo=UTC),
        template=template,
    )


@pytest.fixture
def shipped_rules(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COBRO_RULES_DIR", str(ROOT / "rules"))
    monkeypatch.setenv("COBRO_TEMPLATES_DIR", str(ROOT / "templates"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_reminders_follow_the_shipped_chain(shipped_rules: None) -> None:
    now = datetime(2026, 11, 12, 9, tzinfo=UTC)
    shipped = Ruleset.load(ROOT / "rules").built("dunning.yaml").rules.languages

    def render(spec: ActionSpec, facts: CustomerFacts, languages: LanguageRules = shipped):
        return render_reminder(spec, facts, now, languages)

    it = render(action(), facts_for("it"))
    assert (it.language, it.fell_back) == ("it", False) and it.subject.startswith("Sollecito")
    nl = render(action("sms"), facts_for("nl"))
    assert nl.language == "nl" and "herinnering" in nl.text
    pt = render(action(), facts_for("pt"))
    assert pt.language == "pt" and "Estimado(a) Kowalski" in pt.text
    pl = render(action(), facts_for("pl"))
    assert (pl.language, pl.requested, pl.fell_back) == ("en", "pl", True)
    assert "Nov 2, 2026" in pl.text and "November 12, 2026" in pl.text  # English dates
    ca = render(action(), facts_for("ca"))  # shipped: ca -> es
    assert (ca.language, ca.fell_back) == ("es", True) and "2 nov 2026" in ca.text
    own = render(action(), facts_for("pl"), LanguageRules(fallback={"pl": "de"}, default="fr"))
    assert own.language == "de" and own.subject.startswith("Erinnerung")
    assert render(action(), facts_for("ja"), LanguageRules(default="fr")).language == "fr"


def test_the_claim_records_the_fallback_on_the_timeline(
    use_database: str, shipped_rules: None, tmp_path: Path, engine: Engine
) -> None:
    customers = [
        {"account": "PL1", "name": "Kowalski Sp. z o.o.", "country": "PL", "language": "pl",
         "timezone": "Europe/Warsaw", "email": "ksiegowosc@kowalski.example"},
        {"account": "IT1", "name": "Rossi S.r.l.", "country": "IT", "language": "it",
         "timezone": "Europe/Rome", "email": "amministrazione@rossi.example"},
    ]  # fmt: skip
    import_rows(tmp_path, "customers", customers)
    invoices = [
        {"number": f"F-{c['account']}", "account": c["account"], "issue_date": "2026-10-01",
         "due_date": "2026-11-02", "currency": "EUR", "amount": "120.50"}
        for c in customers
    ]  # fmt: skip
    import_rows(tmp_path, "invoices", invoices)
    now = datetime(2026, 11, 12, 9, tzinfo=UTC)
    for account in ("PL1", "IT1"):
        spec = action(key=f"key-{account}")
        spec.account, spec.invoices = account, [f"F-{account}"]
        with Session(engine) as session:
            got = claim(session, spec, now, Trace("wf", "run"))
        assert got.outcome is None and got.communication_id is not None
    with Session(engine) as session:
        comms = {c.idempotency_key: c for c in session.scalars(select(Communication)).all()}
        events = session.scalars(
            select(TimelineEvent).where(TimelineEvent.kind == "dunning.language_fallback")
        ).all()
        pl_id = session.scalar(select(Customer.id).where(Customer.account == "PL1"))
    assert comms["key-PL1"].language == "en" and comms["key-PL1"].subject.startswith("Reminder")
    assert comms["key-IT1"].language == "it" and "Spettabile Rossi" in comms["key-IT1"].body
    [event] = events  # the Italian customer reads Italian: nothing to record
    assert event.customer_id == pl_id
    assert event.summary == (
        "reminder email: written in English: no templates in Polish (pl), the customer's language"
    )
    assert event.data["language"] == "en" and event.data["customer_language"] == "pl"
    assert event.data["communication_id"] == comms["key-PL1"].id


# ---------------------------------------------------------------- rules check warnings


def check(*args: str) -> tuple[int, list[str]]:
    result = runner.invoke(
        app, ["rules", "check", str(ROOT / "rules"), "--templates", str(ROOT / "templates"), *args]
    )
    return result.exit_code, result.stdout.splitlines()


def test_check_warns_per_customer_language_that_falls_back(
    use_database: str, tmp_path: Path
) -> None:
    def customer(i: int, language: str, country: str) -> dict[str, str]:
        return {"account": f"{language.upper()}{i}", "name": f"Customer {i}", "country": country,
                "language": language, "timezone": "Europe/Paris"}  # fmt: skip

    rows = [customer(i, "pl", "PL") for i in range(12)]
    rows += [customer(i, "it", "IT") for i in range(3)]
    rows += [customer(0, "ca", "ES"), customer(0, "fr", "FR")]
    import_rows(tmp_path, "customers", rows)
    code, lines = check()
    where = ROOT / "rules" / "dunning.yaml"
    assert code == 0, lines
    assert lines[:-1] == [
        f"{where}: warning: 1 customer speaks 'ca': no templates, falling back to 'es'",
        f"{where}: warning: 12 customers speak 'pl': no templates, falling back to 'en'",
    ]
    assert lines[-1].startswith("OK ")
    # a declared list replaces the database's
    code, lines = check("--languages", "ja,it")
    assert code == 0
    assert lines[:-1] == [
        f"{where}: warning: customers speak 'ja': no templates, falling back to 'en'"
    ]


def test_warnings_do_not_change_the_exit_code(
    use_database: str, tmp_path: Path, tree: tuple[Path, Path]
) -> None:
    rules, templates = tree
    import_rows(
        tmp_path,
        "customers",
        [{"account": "PL1", "name": "K", "country": "PL", "language": "pl", "timezone": "UTC"}],
    )
    (templates / "sms" / "nl" / "due.txt.j2").write_text("{{ nope }}\n")
    result = runner.invoke(app, ["rules", "check", str(rules), "--templates", str(templates)])
    assert result.exit_code == 1  # the broken template, not the warning
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{templates}/sms/nl/due.txt.j2:1: ")
    assert lines[1] == (
        f"{rules}/dunning.yaml: warning: 1 customer speaks 'pl': no templates, falling back to 'en'"
    )


def test_check_without_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No SQLite file yet: none is created, nothing is warned. An unreachable server: one note
    on stderr. Either way the declared list still works."""
    missing = tmp_path / "nowhere" / "cobro.db"
    monkeypatch.setenv("COBRO_DATABASE_URL", f"sqlite:///{missing}")
    get_settings.cache_clear()
    try:
        code, lines = check()
        assert code == 0 and len(lines) == 1 and lines[0].startswith("OK ")
        assert not missing.exists() and not missing.parent.exists()
        code, lines = check("--languages", "pl")
        assert code == 0 and "warning: customers speak 'pl'" in lines[0]
        closed = free_port()
        monkeypatch.setenv("COBRO_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{closed}/x")
        get_settings.cache_clear()
        result = runner.invoke(
            app, ["rules", "check", str(ROOT / "rules"), "--templates", str(ROOT / "templates")]
        )
        assert result.exit_code == 0 and result.stdout.startswith("OK ")
        assert "note: customer languages not checked (database not readable" in result.stderr
    finally:
        get_settings.cache_clear()
