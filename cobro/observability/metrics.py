"""Cobro's own Prometheus series, recorded through the Temporal SDK's metric meter: the
worker exports them with the SDK's own (workflow and activity latencies, schedule-to-start,
poll statistics) on one `/metrics` endpoint (`COBRO_WORKER_METRICS_ADDRESS`).

Outside an activity (the CLI running a domain function directly) nothing is recorded.
Series (counters unless said; each also carries the SDK's `namespace`, `task_queue` and
`activity_type` labels):

- `cobro_dunning_actions{kind, status}`: each executed dunning action by kind (email, sms,
  task, claim, declare) and outcome (sent, skipped, stale, uncertain, task, declare...);
- `cobro_dunning_failures{kind, reason}`: attempts that will be retried (`temporary`,
  `in_flight`, `database`);
- `cobro_sync_records{outcome}`: insurer records per outcome (created, updated, unchanged,
  repeated, quarantined, unmatched, expired) and `cobro_sync_runs{status}`;
  `cobro_sync_duration` (histogram, seconds): a sync run from start to finish;
- `cobro_customers_classified`, `cobro_classification_changes` and
  `cobro_alerts_raised`;
- `cobro_declarations{category, outcome}`: insurer declarations (OVD, EXP, RES) filed,
  registered or rejected by the insurer.

The customers' own actions on their self-service page are the dashboard's series
(`cobro.web.metrics`: `cobro_portal_actions`, `cobro_portal_pages`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta

from temporalio import activity
from temporalio.common import MetricCounter, MetricHistogramTimedelta, MetricMeter

SYNC_OUTCOMES = (
    "created",
    "updated",
    "unchanged",
    "repeated",
    "quarantined",
    "unmatched",
    "expired",
)

_LOCK = threading.Lock()
_COUNTERS: dict[tuple[int, str], MetricCounter] = {}
_HISTOGRAMS: dict[tuple[int, str], MetricHistogramTimedelta] = {}


def _meter() -> MetricMeter | None:
    return activity.metric_meter() if activity.in_activity() else None


def count(name: str, value: int = 1, labels: Mapping[str, str] | None = None) -> None:
    """Add `value` to the counter `name` (created on first use) with these labels."""
    meter = _meter()
    if meter is None or value <= 0:
        return
    key = (id(meter), name)
    with _LOCK:
        counter = _COUNTERS.get(key)
        if counter is None:
            counter = _COUNTERS[key] = meter.create_counter(name)
    counter.add(value, dict(labels or {}))


def observe(name: str, duration: timedelta, labels: Mapping[str, str] | None = None) -> None:
    """Record a duration in the histogram `name` (seconds on the Prometheus side)."""
    meter = _meter()
    if meter is None:
        return
    key = (id(meter), name)
    with _LOCK:
        histogram = _HISTOGRAMS.get(key)
        if histogram is None:
            histogram = _HISTOGRAMS[key] = meter.create_histogram_timedelta(name)
    histogram.record(max(duration, timedelta(0)), dict(labels or {}))


def dunning_action(kind: str, status: str) -> None:
    count("cobro_dunning_actions", labels={"kind": kind, "status": status})


def dunning_failure(kind: str, reason: str) -> None:
    count("cobro_dunning_failures", labels={"kind": kind, "reason": reason})


def declaration(category: str, outcome: str) -> None:
    count("cobro_declarations", labels={"category": category, "outcome": outcome})


def sync_run(summary: Mapping[str, object], duration: timedelta | None) -> None:
    for outcome in SYNC_OUTCOMES:
        value = summary.get(outcome)
        if isinstance(value, int):
            count("cobro_sync_records", value, {"outcome": outcome})
    count("cobro_sync_runs", labels={"status": str(summary.get("status") or "unknown")})
    if duration is not None:
        observe("cobro_sync_duration", duration)


def classified(evaluated: int, changes: int, alerts: int) -> None:
    count("cobro_customers_classified", evaluated)
    count("cobro_classification_changes", changes)
    count("cobro_alerts_raised", alerts)
