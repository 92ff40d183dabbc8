"""How many `facts_changed` signals a `cobro dev --demo` start sends, start after start.

Runs the real embedded stack (`cobro.devkit.devstack.running_stack`: Temporal dev server,
worker, capture servers, insurer simulator, web) with the demo, N times over the same
`var/` directory, and after each start counts the signals in every Dunning workflow's
history (all runs), by kind and detail. A restart with nothing new should send none.
The baseline is what signalling every customer with open invoices at each start (Cobro
before fact digests) sends: the last line compares the restarts' signals with it.

    python bench/dunning_signals_bench.py [--starts 2] [--quick]

`--quick` is the default run (two starts: one restart); `--starts N` gives more restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import tempfile
from collections import Counter
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _signals(address: str) -> Counter[str]:
    from temporalio.client import Client

    client = await Client.connect(address)
    kinds: Counter[str] = Counter()
    async for wf in client.list_workflows("WorkflowType = 'Dunning'"):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_signaled_event_attributes"):
                for p in event.workflow_execution_signaled_event_attributes.input.payloads:
                    change = json.loads(p.data)
                    kinds[f"{change['kind']} ({change['detail']})"] += 1
    return kinds


async def main(starts: int) -> None:
    from cobro.db import make_engine
    from cobro.devkit.devstack import running_stack
    from cobro.dunning.notify import accounts_with_open_invoices
    from cobro.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    var = Path(tempfile.mkdtemp(prefix="cobro-signals-bench-")) / "var"
    grpc = _free_port()
    capture, web = _free_port(), _free_port()
    os.environ.update(
        {
            "COBRO_VAR_DIR": str(var),
            "COBRO_TEMPORAL_ADDRESS": f"127.0.0.1:{grpc}",
            "COBRO_TEMPORAL_UI_PORT": str(_free_port()),
            "COBRO_SMTP_PORT": str(_free_port()),
            "COBRO_CAPTURE_HTTP_PORT": str(capture),
            "COBRO_TWILIO_BASE_URL": f"http://127.0.0.1:{capture}",
            "COBRO_WEB_PORT": str(web),
            "COBRO_PUBLIC_BASE_URL": f"http://127.0.0.1:{web}",
            "COBRO_INSURER_BASE_URL": f"http://127.0.0.1:{_free_port()}",
        }
    )
    os.environ.pop("COBRO_DATABASE_URL", None)
    before: Counter[str] = Counter()
    restarts = baseline = 0
    for start in range(1, starts + 1):
        settings = Settings()
        async with running_stack(settings, demo=True):
            await asyncio.sleep(2)  # let the woken workflows record what they received
            total = await _signals(f"127.0.0.1:{grpc}")
        engine = make_engine(settings.resolved_database_url)
        with_open = len(accounts_with_open_invoices(engine))
        engine.dispose()
        sent = total - before
        before = total
        print(f"start {start}: {sum(sent.values())} signal(s) sent ({with_open} open customers)")
        for kind, n in sorted(sent.items()):
            print(f"    {n:5d}  {kind}")
        if start > 1:
            restarts += sum(sent.values())
            baseline += with_open
    ratio = restarts / baseline if baseline else 0.0
    print(
        f"BENCH dunning_signals restarts={starts - 1} signals={restarts}"
        f" always_signal={baseline} ratio={ratio:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="two starts (the default)")
    args = parser.parse_args()
    asyncio.run(main(2 if args.quick else args.starts))
