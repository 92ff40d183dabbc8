"""With the database or Temporal unreachable, every command prints one line and exits 1:
no traceback, no SQL, no row parameters, no password. One real `cobro` process per command
group (run side by side: each pays the interpreter start), the group's other commands in
this process (typer's CliRunner)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine
from cobro.settings import get_settings
from tests.helpers import ROOT, RULES
from tests.helpers import free_port as closed_port  # bound, then released: nobody listens


def cobro_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COBRO_")}
    env.update(
        PYTHONPATH=str(ROOT),
        COBRO_VAR_DIR=str(tmp_path / "var"),
        COBRO_DATABASE_URL=f"sqlite:///{tmp_path / 'cobro.db'}",
        COBRO_TEMPORAL_ADDRESS=f"127.0.0.1:{closed_port()}",
        COBRO_NEW_USER_PASSWORD="not used here",
        COLUMNS="200",
    )
    env.update(overrides)
    return env


def run_all(commands: list[list[str]], env: dict[str, str], cwd: Path) -> list[tuple]:
    """Run every command at once; (command, exit code, stdout, stderr) each."""
    procs = [
        (
            cmd,
            subprocess.Popen(
                [sys.executable, "-c", "from cobro.cli import app; app()", *cmd],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for cmd in commands
    ]
    results = []
    for cmd, p in procs:
        out, err = p.communicate(timeout=120)
        results.append((cmd, p.returncode, out, err))
    return results


def run_here(
    commands: list[list[str]], env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple]:
    """The same, in this process."""
    for key in [k for k in os.environ if k.startswith("COBRO_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("COBRO_"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    get_settings.cache_clear()
    default_engine.cache_clear()
    results = []
    try:
        for cmd in commands:
            r = CliRunner().invoke(app, cmd)
            results.append((cmd, r.exit_code, r.stdout, r.stderr))
    finally:
        get_settings.cache_clear()
        default_engine.cache_clear()
    return results


def assert_one_line(results: list[tuple], *must_contain: str) -> None:
    for cmd, code, out, err in results:
        shown = f"cobro {' '.join(cmd)}: exit {code}\nstdout: {out}\nstderr: {err}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1, shown
        assert len(lines) == 1, shown
        assert lines[0].startswith("error: "), shown
        for text in must_contain:
            assert text in lines[0], shown
        for leak in ("Traceback", "[SQL:", "[parameters:", "sqlalche.me", "s3cret"):
            assert leak not in err + out, shown


@pytest.fixture
def customers_csv(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text("account,name,country\nK1,Kay SARL,FR\n")
    return path


DB_GROUPS = [  # one command per group, each in a process of its own
    ["db", "upgrade"],
    ["import", "customers", "customers.csv", "--no-notify"],
    ["classify"],
    ["kpis"],
    ["exposure"],
    ["covers", "list"],
    ["rules", "diff", str(RULES)],
    ["dunning", "plan", "--customer", "K1"],
    ["users", "list"],
    ["serve", "--port", str(closed_port())],
]
DB_OTHERS = [
    ["classify", "--customer", "K1"],
    ["exposure", "--customer", "K1"],
    ["covers", "unmatched"],
    ["covers", "link", "COVER1", "K1"],
    ["dunning", "show", "--customer", "K1"],
    ["dunning", "preview", "--customer", "K1"],
    ["dunning", "sync"],
    ["dunning", "pause", "--customer", "K1", "--reason", "holiday"],
    ["dunning", "resume", "--customer", "K1"],
    ["dunning", "promise", "--customer", "K1", "--until", "2999-01-01", "--amount", "10"],
    ["dunning", "promise", "cancel", "--customer", "K1"],
    ["dunning", "dispute", "--invoice", "F1", "--reason", "wrong price"],
    ["dunning", "resolve", "--invoice", "F1"],
    ["users", "add", "maria", "--role", "viewer"],
    ["insurer", "claims"],
    ["insurer", "claim", "--invoice", "F1", "--by", "carol"],
    ["insurer", "declarations", "--status", "pending"],
    ["insurer", "declarations", "approve", "--invoice", "F1", "--by", "carol"],
]


def test_database_down_every_command_prints_one_line(
    tmp_path: Path, customers_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    env = cobro_env(tmp_path, COBRO_DATABASE_URL=f"postgresql://cobro:s3cret@127.0.0.1:{port}/c")
    results = run_all(DB_GROUPS, env, tmp_path) + run_here(DB_OTHERS, env, tmp_path, monkeypatch)
    assert_one_line(
        results, f"cannot reach the database at postgresql://cobro:***@127.0.0.1:{port}/c"
    )


def test_temporal_down_every_command_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cobro.db import upgrade

    env = cobro_env(tmp_path)
    upgrade(env["COBRO_DATABASE_URL"])
    groups = [["sync", "now"], ["schedule", "show"], ["dunning", "sync"]]
    others = [["sync", "now", "--wait"], ["schedule", "apply"], ["schedule", "pause"]]
    results = run_all(groups, env, tmp_path) + run_here(others, env, tmp_path, monkeypatch)
    address = env["COBRO_TEMPORAL_ADDRESS"]
    assert_one_line(results, f"cannot reach Temporal at {address}: Connection refused")


def test_failed_import_and_classification_print_one_line_without_sql(
    tmp_path: Path, customers_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that was never migrated: the statements fail (they used to print the SQL
    and every row's parameters); the line says what failed and what to do."""
    env = cobro_env(tmp_path)
    (tmp_path / "cobro.db").touch()
    commands = [["import", "customers", "customers.csv"], ["classify"]]
    results = run_all(commands, env, tmp_path)
    results += run_here([["dunning", "sync"]], env, tmp_path, monkeypatch)
    assert_one_line(results, "database error at sqlite:///", "no such table", "cobro db upgrade")
    assert "import failed, nothing written" in results[0][3]


def test_an_import_with_temporal_down_succeeds_with_one_warning(
    tmp_path: Path, customers_csv: Path
) -> None:
    from cobro.db import upgrade

    env = cobro_env(tmp_path)
    upgrade(env["COBRO_DATABASE_URL"])
    [(_, code, out, err)] = run_all([["import", "customers", "customers.csv"]], env, tmp_path)
    assert code == 0, err
    assert "1 created" in out or "created" in out, out
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: dunning workflows not notified (cannot reach Temporal")
    assert "run `cobro dunning sync`" in warnings[0]
