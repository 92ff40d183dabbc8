"""`cobro dunning sync` and `cobro sync now --wait` exit 0, 30 times each, against a real
dev server (with a worker and the insurer simulator): they used to print their result and
then abort at exit (`Fatal Python error: PyGILState_Release`, exit 134) in about one run in
ten, when a thread of the Temporal SDK was still inside Python as the interpreter finalized.
The runs share one dev server, one worker and one migrated SQLite database; three run at once
(which only makes the race more likely)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from cobro.db import make_engine, upgrade
from cobro.devkit.insurer.server import InsurerSimulator
from cobro.importing import import_csv
from tests.helpers import ROOT
from tests.helpers import free_port as closed_port

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

RUNS = 30
AT_ONCE = 3
SYNC_LINE = re.compile(r"^sync succeeded \((full|incremental)\): \d+ fetched", re.M)
DUNNING_LINE = re.compile(
    r"^(\d+) dunning workflow\(s\) signalled or started"
    r" \(\d+ with changed facts, \d+ not running\), \d+ unchanged$"
)


def seed(tmp_path: Path, url: str) -> None:
    """Three customers with invoices due in four months (their workflows only wait)."""
    upgrade(url)
    engine = make_engine(url)
    due = date.today() + timedelta(days=120)
    customers = tmp_path / "customers.csv"
    customers.write_text("account,name,country\nK1,Kay,FR\nK2,Kei,DE\nK3,Cay,ES\n")
    invoices = tmp_path / "invoices.csv"
    invoices.write_text(
        "number,account,issue_date,due_date,currency,amount\n"
        + "".join(f"F{i},K{i},{date.today()},{due},EUR,100.00\n" for i in (1, 2, 3))
    )
    import_csv("customers", customers, engine)
    import_csv("invoices", invoices, engine)
    engine.dispose()


async def run_cobro(args: list[str], env: dict[str, str], gate: asyncio.Semaphore) -> tuple:
    async with gate:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from cobro.cli import app; app()",
            *args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        return args, proc.returncode, out.decode(), err.decode()


async def test_temporal_commands_exit_0_every_time(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cobro.db'}"
    seed(tmp_path, url)
    async with InsurerSimulator(buyers=20, seed=5, start_date=date(2026, 3, 2)) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COBRO_")}
        env.update(
            PYTHONPATH=str(ROOT),
            COBRO_VAR_DIR=str(tmp_path / "var"),
            COBRO_DATABASE_URL=url,
            COBRO_TEMPORAL_ADDRESS=dev_server_env.client.service_client.config.target_host,
            COBRO_TEMPORAL_TASK_QUEUE=f"cli-exit-{uuid.uuid4().hex[:8]}",
            COBRO_INSURER_BASE_URL=sim.base_url,
            COBRO_INSURER_API_KEY=sim.api_key,
            COBRO_SMTP_PORT=str(closed_port()),
        )
        worker = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=(tmp_path / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            gate = asyncio.Semaphore(AT_ONCE)
            commands = [["dunning", "sync"], ["sync", "now", "--wait", "--no-classify"]]
            results = await asyncio.gather(
                *(run_cobro(cmd, env, gate) for _ in range(RUNS) for cmd in commands)
            )
        finally:
            worker.terminate()
            worker.wait(30)
    failed = [r for r in results if r[1] != 0]
    assert not failed, "\n".join(f"cobro {' '.join(a)}: exit {c}\n{o}{e}" for a, c, o, e in failed)
    signalled = []
    for args, _, out, err in results:
        assert "Fatal Python error" not in err
        if args[0] == "dunning":
            line = DUNNING_LINE.match(out.strip())
            assert line, out + err
            signalled.append(int(line.group(1)))
        else:
            assert SYNC_LINE.search(out), out + err
    # the 3 customers' workflows are started once (by the first syncs, which may overlap);
    # most later syncs find nothing changed and signal nobody (an insurer sync that brings
    # a cover changes facts)
    assert sum(signalled) >= 3 and signalled.count(0) >= RUNS // 2, signalled
