"""`cobro rules check|test|facts`: validate the YAML rules, run their examples, document facts.

`rules diff|apply` compare with / store into the database (`cobro.rules.classify`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cobro.i18n import gettext

rules_app = typer.Typer(help="YAML rules: risk classes and alerts.", no_args_is_help=True)

DIR_ARG = typer.Argument(Path("rules"), help="rules directory (default ./rules)")


def _load(directory: Path):  # type: ignore[no-untyped-def]
    from cobro.rules import RuleError
    from cobro.rules.ruleset import Ruleset

    try:
        return Ruleset.load(directory)
    except RuleError as exc:
        for m in exc.messages:
            typer.echo(str(m))
        typer.echo(
            gettext("%(num)s error(s) in %(directory)s")
            % {"num": len(exc.messages), "directory": directory},
            err=True,
        )
        raise typer.Exit(1) from None


@rules_app.command("check")
def check(
    directory: Path = DIR_ARG,
    templates: Path | None = typer.Option(
        None,
        "--templates",
        help="message templates directory (default: COBRO_TEMPLATES_DIR, ./templates or shipped)",
    ),
    languages: str | None = typer.Option(
        None,
        "--languages",
        help="customer languages to check the fallback of, e.g. `pl,it` (default: those of "
        "the customers in the database, when it is reachable)",
    ),
) -> None:
    """Validate every rules file (dunning templates must exist), render every alert message
    against sample facts and every message template in every language against the sample
    context. Problems print as `path:line:col: message` / `path:line: message`. A customer
    language without templates prints a warning naming the language it falls back to
    (`languages:` of dunning.yaml); warnings do not change the exit code."""
    from cobro.dunning.rulefile import templates_directory
    from cobro.rules import RuleError
    from cobro.rules.examples import render_checks
    from cobro.rules.ruleset import Ruleset
    from cobro.settings import get_settings

    templates = templates or get_settings().templates_path
    problems: list[str] = []
    ruleset = None
    with templates_directory(templates):
        try:
            ruleset = Ruleset.load(directory)
        except RuleError as exc:
            problems.extend(str(m) for m in exc.messages)
    if ruleset is not None:
        problems.extend(str(m) for m in render_checks(ruleset))
    template_problems, rendered = _check_templates(templates)
    problems.extend(template_problems)
    warnings = _language_warnings(ruleset, directory, templates, languages)
    for line in problems + warnings:
        typer.echo(line)
    if problems:
        typer.echo(
            gettext("%(num)s error(s) in %(directory)s and %(templates)s")
            % {"num": len(problems), "directory": directory, "templates": templates},
            err=True,
        )
        raise typer.Exit(1)
    assert ruleset is not None
    files = ", ".join(sorted(ruleset.files))
    typer.echo(
        f"OK {len(ruleset.files)} file(s) ({files}), {rendered} template file(s) rendered "
        f"hash={ruleset.hash}"
    )


def _language_warnings(
    ruleset: Any, directory: Path, templates: Path, declared: str | None
) -> list[str]:
    """`rules/dunning.yaml: warning: 12 customers speak 'pl': no templates, falling back to
    'en'`, one line per customer language (declared, or counted in the database) that has
    no templates."""
    from cobro.dunning.languages import LanguageRules, coverage
    from cobro.dunning.rulefile import FILENAME, template_files, with_templates

    if ruleset is None or not templates.is_dir():
        return []
    rules = LanguageRules()
    if FILENAME in ruleset.files:
        rules = ruleset.built(FILENAME).rules.languages
    spoken: dict[str, int | None] | None
    if declared is not None:
        spoken = dict.fromkeys(c.strip() for c in declared.replace(" ", ",").split(",") if c)
    else:
        spoken = _customer_languages()
    if not spoken:
        return []
    available = with_templates(template_files(templates))
    out = []
    for c in coverage(rules, spoken, available):
        if not c.falls_back:
            continue
        if c.customers is None:
            who = "customers speak"
        else:
            who = f"{c.customers} customer{'s speak' if c.customers != 1 else ' speaks'}"
        out.append(
            f"{directory / FILENAME}: warning: {who} '{c.language}': no templates, "
            f"falling back to '{c.written_in}'"
        )
    return out


def _customer_languages() -> dict[str, int] | None:
    """Customers per language in the configured database; None when there is none yet (a
    SQLite file is never created here) or it cannot be read (a note on stderr)."""
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    from cobro.cli.common import err_console
    from cobro.db import make_engine
    from cobro.models import Customer
    from cobro.settings import get_settings

    url = make_url(get_settings().resolved_database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or not Path(url.database).is_file():
            return None
    elif "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "5"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            query = select(Customer.language, func.count()).group_by(Customer.language)
            rows = conn.execute(query).all()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err_console.print(
            f"note: customer languages not checked (database not readable: {first})",
            markup=False,
        )
        return None
    finally:
        engine.dispose()
    return {language: n for language, n in rows if language}


def _check_templates(directory: Path) -> tuple[list[str], int]:
    """Render every template file of every language (the shipped ones and any other present
    in `directory`) against the sample context: (`path:line: message` problems, files)."""
    from cobro.templating import EMAIL_PARTS, LANGUAGES, Templates, render_all_samples

    if not directory.is_dir():
        return [f"{directory}:1: templates directory does not exist"], 0
    catalogue = Templates(directory).catalogue()
    languages = sorted(set(LANGUAGES) | {lang for _, lang, _ in catalogue})
    names = {(channel, name) for channel, _, name in catalogue}
    files = sum(len(EMAIL_PARTS) if ch == "email" else 1 for ch, _ in names) * len(languages)
    problems = [" ".join(p.split()) for p in render_all_samples(directory, languages)]
    return problems, files


@rules_app.command("test")
def test(directory: Path = DIR_ARG) -> None:
    """Run the examples embedded in the rules files; failures show the explanation."""
    from cobro.rules.examples import run_examples

    ruleset = _load(directory)
    count, failures = run_examples(ruleset)
    for f in failures:
        typer.echo(str(f))
    if failures:
        typer.echo(
            gettext("FAILED %(failed)s of %(num)s example(s)")
            % {"failed": len(failures), "num": count},
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(
        gettext("OK %(num)s example(s) passed hash=%(hash)s") % {"num": count, "hash": ruleset.hash}
    )


@rules_app.command("facts")
def facts(as_json: bool = typer.Option(False, "--json", help="JSON instead of Markdown")) -> None:
    """Print the documentation of the facts that rules can read."""
    from cobro.rules.facts import facts_json, facts_markdown

    typer.echo(facts_json() if as_json else facts_markdown())


@rules_app.command("diff")
def diff(
    directory: Path = DIR_ARG,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    days: int = typer.Option(30, "--days", min=1, help="dunning: how many days ahead to compare"),
) -> None:
    """On the live portfolio: customers whose class would change (from -> to), the alerts
    that would fire, and the reminders a changed dunning.yaml would send differently over the
    next days (contacts by template, customers affected), with these rules instead of the
    active ones. Writes and sends nothing."""
    import json

    from cobro.cli.common import describe, fail
    from cobro.rules import RuleError
    from cobro.rules.classify import diff_rulesets, load_active_ruleset

    proposed = _load(directory)
    try:
        current = load_active_ruleset()
    except RuleError as exc:
        fail(f"the active rules do not load: {exc.messages[0] if exc.messages else exc}")
    try:
        d = diff_rulesets(None, proposed, current)
        dunning = _dunning_diff(current, proposed, days)
    except Exception as exc:
        fail(f"rules diff failed: {describe(exc)}")
    if as_json:
        out = {
            "dunning": dunning.to_json() if dunning is not None else None,
            "current_hash": d.current_hash,
            "proposed_hash": d.proposed_hash,
            "evaluated": d.evaluated,
            "changes": d.changes,
            "transitions": [
                {"from": a, "to": b, "customers": n} for (a, b), n in d.transitions.items()
            ],
            "alerts": [
                {"account": a.account, "name": a.name, "severity": a.severity, "message": a.message}
                for a in d.alerts
            ],
        }
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(
        f"{d.changes} of {d.evaluated} customer(s) would change class "
        f"({d.current_hash[:12]} -> {d.proposed_hash[:12]})"
    )
    if d.transitions:
        width = max(len(a) for a, _ in d.transitions)
        typer.echo(f"  {'from':<{width}}    to")
        for (a, b), n in d.transitions.items():
            typer.echo(f"  {a:<{width}} -> {b}: {n}")
    typer.echo(gettext("%(num)s alert(s) would fire") % {"num": len(d.alerts)})
    for a in d.alerts:
        typer.echo(f"  [{a.severity}] {a.account} {a.name}: {a.message}")
    if dunning is not None:
        _print_dunning_diff(dunning)


def _dunning_diff(current, proposed, days: int):  # type: ignore[no-untyped-def]
    """The dunning side of the diff when both rule sets have a dunning.yaml (else None)."""
    from datetime import UTC, datetime

    from cobro.db import default_engine
    from cobro.dunning.diff import diff_dunning
    from cobro.dunning.notify import accounts_with_open_invoices

    if "dunning.yaml" not in current.files or "dunning.yaml" not in proposed.files:
        return None
    engine = default_engine()
    return diff_dunning(
        engine,
        accounts_with_open_invoices(engine),
        current.built("dunning.yaml"),
        proposed.built("dunning.yaml"),
        datetime.now(UTC),
        days,
    )


def _print_dunning_diff(d) -> None:  # type: ignore[no-untyped-def]
    typer.echo(
        f"dunning over the next {d.days} days: {len(d.changed)} of {d.evaluated} customer(s) "
        "would be contacted differently"
    )
    for (kind, template), before, after in d.by_contact():
        if before != after:
            typer.echo(f"  {kind} {template}: {before} -> {after} ({after - before:+d})")
    for account, before, after in d.changed[:20]:
        was = ", ".join(f"{k} {t}" for k, t in before) or "nothing"
        now = ", ".join(f"{k} {t}" for k, t in after) or "nothing"
        typer.echo(f"  {account}: {was} -> {now}")
    if len(d.changed) > 20:
        typer.echo(
            gettext("  ... and %(num)s more (--json lists them all)") % {"num": len(d.changed) - 20}
        )


@rules_app.command("apply")
def apply(
    directory: Path = DIR_ARG,
    author: str = typer.Option(..., "--author", help="who applies this version"),
    message: str = typer.Option(..., "--message", help="why"),
) -> None:
    """Store the rules as a new version and make it active (refused if check or test fails)."""
    from cobro.cli.common import describe, fail
    from cobro.rules.classify import ApplyRefused, apply_version

    before = _active_dunning_text()
    try:
        applied = apply_version(None, directory, author, message)
    except ApplyRefused as exc:
        for line in exc.lines:
            typer.echo(line)
        typer.echo(
            gettext("refused: %(directory)s fails check or test; active version unchanged")
            % {"directory": directory},
            err=True,
        )
        raise typer.Exit(1) from None
    except Exception as exc:
        fail(f"rules apply failed: {describe(exc)}")
    what = "stored" if applied.created else "re-activated"
    typer.echo(f"{what} version {applied.id} hash={applied.content_hash} (active)")
    if _active_dunning_text() != before:
        _tell_dunning(author, message)


def _active_dunning_text() -> str | None:
    """The dunning.yaml the workers read now (None when the rules do not load)."""
    from cobro.rules.classify import load_active_ruleset, ruleset_texts

    try:
        return ruleset_texts(load_active_ruleset()).get("dunning.yaml")
    except Exception:
        return None


def _tell_dunning(author: str, message: str) -> None:
    """The running dunning workflows whose policy changed re-plan now (the digest includes the
    active policy): a step moved earlier is not left waiting behind an old timer."""
    from cobro.cli.common import TemporalUnreachable, run_with_temporal
    from cobro.db import default_engine
    from cobro.dunning.notify import notify_changed
    from cobro.dunning.signals import FactsChanged

    engine = default_engine()
    change = FactsChanged("policy_changed", message, author)
    try:
        report = run_with_temporal(lambda client: notify_changed(client, engine, change))
    except TemporalUnreachable as exc:
        typer.echo(
            gettext(
                "warning: dunning workflows not told yet (%(error)s); `cobro dunning sync` will"
            )
            % {"error": exc}
        )
        return
    typer.echo(report.summary())


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
