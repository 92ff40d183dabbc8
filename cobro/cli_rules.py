"""`cobro rules check|test|facts`: validate the YAML rules, run their examples, document facts.

(`rules diff` and `rules apply` need the database and live elsewhere.)"""

from __future__ import annotations

from pathlib import Path

import typer

rules_app = typer.Typer(help="YAML rules: risk classes and alerts.", no_args_is_help=True)

DIR_ARG = typer.Argument(Path("rules"), help="rules directory (default ./rules)")


def _load(directory: Path):  # type: ignore[no-untyped-def]
    from cobro.rules import RuleError, Ruleset

    try:
        return Ruleset.load(directory)
    except RuleError as exc:
        for m in exc.messages:
            typer.echo(str(m))
        typer.echo(f"{len(exc.messages)} error(s) in {directory}", err=True)
        raise typer.Exit(1) from None


@rules_app.command("check")
def check(directory: Path = DIR_ARG) -> None:
    """Validate every rules file and render every alert message against sample facts."""
    from cobro.rules.examples import render_checks

    ruleset = _load(directory)
    problems = render_checks(ruleset)
    if problems:
        for m in problems:
            typer.echo(str(m))
        typer.echo(f"{len(problems)} error(s) in {directory}", err=True)
        raise typer.Exit(1)
    files = ", ".join(sorted(ruleset.files))
    typer.echo(f"OK {len(ruleset.files)} file(s) ({files}) hash={ruleset.hash}")


@rules_app.command("test")
def test(directory: Path = DIR_ARG) -> None:
    """Run the examples embedded in the rules files; failures show the explanation."""
    from cobro.rules.examples import run_examples

    ruleset = _load(directory)
    count, failures = run_examples(ruleset)
    for f in failures:
        typer.echo(str(f))
    if failures:
        typer.echo(f"FAILED {len(failures)} of {count} example(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK {count} example(s) passed hash={ruleset.hash}")


@rules_app.command("facts")
def facts(as_json: bool = typer.Option(False, "--json", help="JSON instead of Markdown")) -> None:
    """Print the documentation of the facts that rules can read."""
    from cobro.rules.facts import facts_json, facts_markdown

    typer.echo(facts_json() if as_json else facts_markdown())


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
