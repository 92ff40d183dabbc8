"""Fault injection for the kill tests, off unless `COBRO_CRASH_PLAN` is set.

`COBRO_CRASH_PLAN="before_claim@40,after_send@90"` makes the process SIGKILL itself (like a
power cut) the 40th time it reaches `before_claim`, and so on; `COBRO_CRASH_DIR` keeps a
marker per point so each crash happens once across restarts.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    plan = os.environ.get("COBRO_CRASH_PLAN")
    if not plan:
        return
    targets = dict(item.split("@") for item in plan.split(",") if "@" in item)
    if name not in targets:
        return
    with _lock:
        _counts[name] += 1
        if _counts[name] < int(targets[name]):
            return
        marker = Path(os.environ.get("COBRO_CRASH_DIR", ".")) / f"crashed-{name}"
        try:
            marker.open("x").close()
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
