"""Classify the portfolio with the active ruleset: write only changes, raise alerts once per
episode, and say which accounts changed class.

    report = classify_portfolio(engine)                      # every customer, batch by batch
    report.changes                                           # [ClassChange(account, ...)]
    preview = classify_portfolio(engine, write=False)        # `cobro rules diff`: writes nothing

Per batch of customers (one page of ids): the facts come from `cobro.rules.facts_sql` in a
fixed number of queries, the compiled classifier and alert matcher run in memory, and the
changes are written with bulk INSERTs in the same transaction:

* a new `RiskAssessment` (ruleset hash + explanation JSON) and a `risk.class_changed`
  timeline event only when the class differs from the customer's latest assessment;
* an `Alert` (dedup key `customer:alert:episode`) and an `alert.fired` timeline event when
  an alert's condition became true (`decide_episode`: once per false→true episode, never
  within the alert's cooldown of the previous firing). The episode state is read back from
  the alerts: an alert whose state is not `resolved` is the current, notified episode; when
  its condition is no longer true it is marked `resolved` and the episode ends.

Facts: the stored `risk_class` (latest assessment) is the `previous.risk_class` of this
classification, and `risk_class` is the class just computed (alerts only). A customer's
first classification is a change from `unclassified` (`cobro.rules.facts.UNCLASSIFIED`):
its `previous.risk_class` is "unclassified", so `became_critical` and every other alert on
`previous.risk_class` fire on it; the stored assessment has no previous class (null).

Rules: the active `RulesetVersion` of the database when there is one (its files are
materialised once per content hash), else the rules directory (`COBRO_RULES_DIR`).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, select, update
from sqlalchemy.orm import Session

from cobro.bulk import bulk_insert
from cobro.collector import collector_paused
from cobro.db import default_engine, transaction
from cobro.forked import forked_map
from cobro.formatting import jsonable
from cobro.i18n import using
from cobro.models import (
    Alert,
    Customer,
    CustomerFactSnapshot,
    RiskAssessment,
    RulesetVersion,
    TimelineEvent,
)
from cobro.queues.tasks import route_alert_rows
from cobro.rules.engine import (
    AlertEvaluator,
    AlertRule,
    ConditionTrace,
    EpisodeState,
    Explanation,
    decide_episode,
)
from cobro.rules.facts import OBLIGATION_DEFAULTS, UNCLASSIFIED, on_stop_supply_list
from cobro.rules.facts_sql import (
    BATCH_SIZE,
    Facts,
    customer_id_pages,
    facts_for_range,
    iter_facts,
    snapshot_of,
)
from cobro.rules.ruleset import Ruleset
from cobro.sql_values import one_of

log = logging.getLogger(__name__)

RESOLVED = "resolved"
ACTOR = "classifier"

# ---------------------------------------------------------------------------- results


@dataclass
class ClassChange:
    customer_id: int
    account: str
    previous: str | None
    risk_class: str
    summary: str = ""


@dataclass
class FiredAlertRecord:
    customer_id: int
    account: str
    name: str
    severity: str
    message: str
    dedup_key: str


@dataclass
class ClassifyReport:
    ruleset_hash: str
    evaluated: int = 0
    changes: list[ClassChange] = field(default_factory=list)
    alerts: list[FiredAlertRecord] = field(default_factory=list)
    resolved: int = 0
    classes: dict[str, int] = field(default_factory=dict)  # class -> customers

    def merge(self, other: ClassifyReport) -> None:
        self.evaluated += other.evaluated
        self.changes.extend(other.changes)
        self.alerts.extend(other.alerts)
        self.resolved += other.resolved
        for k, v in other.classes.items():
            self.classes[k] = self.classes.get(k, 0) + v

    def transitions(self) -> dict[tuple[str | None, str], int]:
        """(from, to) -> number of customers."""
        out: dict[tuple[str | None, str], int] = {}
        for c in self.changes:
            out[(c.previous, c.risk_class)] = out.get((c.previous, c.risk_class), 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))


# ---------------------------------------------------------------------------- JSON


def _trace_json(t: ConditionTrace) -> dict[str, Any]:
    return {"name": t.name, "when": t.when, "value": t.value, "facts": jsonable(t.facts)}


def explanation_json(
    expl: Explanation, facts: Facts, lines: list[str] | None = None
) -> dict[str, Any]:
    """What a RiskAssessment stores: the matched class and condition with the facts it read,
    why each earlier class did not match, the text shown to humans, and every fact.
    `lines`: `expl.lines()` when the caller has them already."""
    return {
        "risk_class": expl.risk_class,
        "rule_index": expl.rule_index,
        "because": expl.because,
        "matched": _trace_json(expl.matched) if expl.matched else None,
        "rejected": [_trace_json(t) for t in expl.rejected],
        "text": str(expl) if lines is None else "\n".join(lines),
        "facts": jsonable(dict(facts)),
    }


# ---------------------------------------------------------------------------- rulesets

_CACHE_LOCK = threading.Lock()
# one thread loads a changed rules directory while the others wait for its result (a fresh
# worker's 32 activity threads would otherwise each compile the same files at once)
_DIRECTORY_LOAD_LOCK = threading.Lock()
_VERSION_CACHE: dict[str, Ruleset] = {}


def active_version(session: Session) -> RulesetVersion | None:
    return session.scalars(
        select(RulesetVersion)
        .where(RulesetVersion.active.is_(True))
        .order_by(RulesetVersion.id.desc())
        .limit(1)
    ).first()


def ruleset_from_files(files: dict[str, str]) -> Ruleset:
    """Load a stored version (file name -> YAML text); cached by content hash."""
    from cobro.rules.loader import content_hash

    key = content_hash({n: t.encode("utf-8") for n, t in files.items()})
    with _CACHE_LOCK:
        cached = _VERSION_CACHE.get(key)
        if cached is not None:
            return cached
        directory = Path(tempfile.mkdtemp(prefix=f"cobro-rules-{key[:12]}-"))
        for name, text in files.items():
            (directory / Path(name).name).write_bytes(text.encode("utf-8"))
        ruleset = Ruleset.load(directory)
        _VERSION_CACHE[key] = ruleset
        return ruleset


def load_active_ruleset(
    engine: Engine | None = None,
    directory: Path | None = None,
    *,
    connection: Connection | None = None,
) -> Ruleset:
    """The active database version if any (what `cobro rules apply` activated: every rules
    file, dunning and exposure included), else the rules directory. Read at every run, so a
    newly applied version takes effect at the next run without a restart.

    `connection`: read on it (inside the caller's transaction) rather than on a connection
    of its own."""
    if connection is not None:
        return _active_ruleset(connection, directory)
    with (engine or default_engine()).connect() as conn:
        return _active_ruleset(conn, directory)


def _active_ruleset(conn: Connection, directory: Path | None) -> Ruleset:
    from cobro.settings import get_settings

    # one small query per call (id and hash, no ORM object); the files are read and
    # compiled once per stored version
    row = conn.execute(_ACTIVE_VERSION).first()
    if row is None:
        return ruleset_from_directory(directory or get_settings().rules_path)
    cached = _STORED_CACHE.get((row.id, row.content_hash))
    if cached is not None:
        return cached
    files = conn.execute(
        select(RulesetVersion.files).where(RulesetVersion.id == row.id)
    ).scalar_one()
    ruleset = ruleset_from_files(dict(files))
    with _CACHE_LOCK:
        _STORED_CACHE[(row.id, row.content_hash)] = ruleset
    return ruleset


_ACTIVE_VERSION = (
    select(RulesetVersion.id, RulesetVersion.content_hash)
    .where(RulesetVersion.active.is_(True))
    .order_by(RulesetVersion.id.desc())
    .limit(1)
)
# (version id, content hash) -> its ruleset: a stored version never changes
_STORED_CACHE: dict[tuple[int, str], Ruleset] = {}


_DIRECTORY_CACHE: dict[Path, tuple[tuple[tuple[str, float], ...], Ruleset]] = {}


def ruleset_from_directory(directory: Path) -> Ruleset:
    """A rules directory (no version applied yet), re-read when one of its files changes; a
    broken directory keeps the last good rules of this process running (and says so in the
    log) — the first load of a broken directory raises."""
    directory = directory.resolve()
    stamp = tuple(sorted((f.name, f.stat().st_mtime) for f in directory.glob("*.yaml")))
    with _CACHE_LOCK:
        cached = _DIRECTORY_CACHE.get(directory)
    if cached and cached[0] == stamp:
        return cached[1]
    with _DIRECTORY_LOAD_LOCK:
        with _CACHE_LOCK:
            cached = _DIRECTORY_CACHE.get(directory)
        if cached and cached[0] == stamp:  # loaded by another thread meanwhile
            return cached[1]
        return _load_directory(directory, stamp, cached)


def _load_directory(
    directory: Path,
    stamp: tuple[tuple[str, float], ...],
    cached: tuple[tuple[tuple[str, float], ...], Ruleset] | None,
) -> Ruleset:
    try:
        ruleset = Ruleset.load(directory)
    except Exception:
        if cached:
            log.exception("rules in %s are broken: keeping the last good rules", directory)
            return cached[1]
        raise
    with _CACHE_LOCK:
        _DIRECTORY_CACHE[directory] = (stamp, ruleset)
    return ruleset


def ruleset_texts(ruleset: Ruleset) -> dict[str, str]:
    return {name: f.content.decode("utf-8") for name, f in sorted(ruleset.files.items())}


# ---------------------------------------------------------------------------- one batch


def evaluation_facts(stored: Facts) -> Facts:
    """The stored class becomes the previous one (`unclassified` before the first
    classification); the class is computed."""
    previous = stored.get("risk_class") or UNCLASSIFIED
    return {**stored, "previous.risk_class": previous, "risk_class": None}


def _episode_states(
    session: Session, customer_ids: Sequence[int], id_range: tuple[int, int] | None = None
) -> dict[tuple[int, str], tuple[EpisodeState, int]]:
    """(customer, alert) -> (episode state, number of episodes so far). `id_range`: the
    customers are every one with an id in that range (read by range, not by id list)."""
    if not customer_ids:
        return {}
    unresolved = func.sum(case((Alert.state != RESOLVED, 1), else_=0))
    wanted = (
        Alert.customer_id.between(*id_range)
        if id_range is not None
        else Alert.customer_id.in_(customer_ids)
    )
    rows = session.execute(
        select(Alert.customer_id, Alert.name, func.count(), func.max(Alert.fired_at), unresolved)
        .where(wanted)
        .group_by(Alert.customer_id, Alert.name)
    ).all()
    out = {}
    for cid, name, count, last, open_count in rows:
        active = bool(open_count)
        out[(cid, name)] = (EpisodeState(active, active, last), int(count))
    return out


def add_obligation_facts(
    session: Session,
    ruleset: Ruleset,
    batch: Sequence[tuple[int, Facts]],
    now: datetime,
    id_range: tuple[int, int] | None = None,
    base_facts: dict[int, Facts] | None = None,
) -> None:
    """Fill in the insurer-obligation facts of `batch` (in place) under `ruleset`'s
    insurance.yaml and exposure.yaml (`Ruleset.obligation_facts`). `base_facts`: the facts
    of `batch` as `cobro.rules.facts_sql` gave them (`rule_facts(base=...)`)."""
    ids = [cid for cid, _ in batch]
    conn = session.connection()
    found = ruleset.obligation_facts(conn, now.date(), ids, id_range, base_facts)
    if not found:
        return
    for cid, facts in batch:
        facts.update(found.get(cid, OBLIGATION_DEFAULTS))
        facts["stop_supply_list"] = on_stop_supply_list(facts)


def classify_facts(
    session: Session,
    ruleset: Ruleset,
    batch: Sequence[tuple[int, Facts]],
    now: datetime,
    write: bool = True,
    id_range: tuple[int, int] | None = None,
    base_facts: dict[int, Facts] | None = None,
) -> ClassifyReport:
    """Classify one batch of customers (their stored facts) and write the changes.
    `id_range`: the batch is every customer with an id in that range (`classify_page`): the
    queries select that range rather than a list of thousands of ids. `base_facts`: the
    facts of the batch before its limit facts (`rule_facts(base=...)`), read by the
    unnamed-buyer conditions of the obligations instead of a second facts query."""
    add_obligation_facts(session, ruleset, batch, now, id_range, base_facts)
    report = ClassifyReport(ruleset.hash)
    team_language = _team_language()
    classifier = ruleset.classifier
    index, names = classifier.index, classifier.names
    alerts = ruleset.alerts
    assessments: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    alert_rows: list[dict[str, Any]] = []
    to_resolve: dict[str, list[int]] = {}
    states = _episode_states(session, [cid for cid, _ in batch], id_range) if alerts else {}
    active_by_customer: dict[int, list[str]] = {}
    for cid, name in (k for k, (st, _) in states.items() if st.active):
        active_by_customer.setdefault(cid, []).append(name)

    for cid, stored in batch:
        facts = evaluation_facts(stored)
        i = index(facts)
        risk_class = names[i]
        report.classes[risk_class] = report.classes.get(risk_class, 0) + 1
        previous = stored.get("risk_class")
        if risk_class != previous:
            expl = classifier.explain(facts, i)
            lines = expl.lines()
            summary = f"risk class {previous or UNCLASSIFIED} → {risk_class}: {lines[0]}"
            report.changes.append(
                ClassChange(cid, stored["account"], previous, risk_class, summary)
            )
            if write:
                assessments.append(
                    {
                        "customer_id": cid,
                        "risk_class": risk_class,
                        "previous_class": previous,
                        "ruleset_hash": ruleset.hash,
                        "explanation": explanation_json(expl, facts, lines),
                        "assessed_at": now,
                    }
                )
                events.append(
                    {
                        "customer_id": cid,
                        "at": now,
                        "kind": "risk.class_changed",
                        "actor": ACTOR,
                        "summary": summary,
                        "data": {
                            "from": previous,
                            "to": risk_class,
                            "ruleset_hash": ruleset.hash,
                        },
                    }
                )
        if alerts is None:
            continue
        facts["risk_class"] = risk_class
        matched = alerts.matching(facts)
        matched_names = {alerts.rules[j].name for j in matched}
        for name in active_by_customer.get(cid, ()):
            if name not in matched_names:  # the episode ends
                to_resolve.setdefault(name, []).append(cid)
        if not matched:
            continue
        thresholds = alerts.thresholds_for(facts.get("segment"))
        context: dict[str, Any] | None = None  # what the messages see, built once
        for j in matched:
            rule = alerts.rules[j]
            state, episodes = states.get((cid, rule.name), (None, 0))
            decision = decide_episode(state, True, now, rule.cooldown)
            if not decision.fire:
                continue
            if context is None:
                context = alerts.context(facts, thresholds)
            messages = alerts.render_each(rule, facts, thresholds, context)
            message = _team_message(
                alerts, rule, facts, thresholds, context, messages, team_language
            )
            key = f"{cid}:{rule.name}:{episodes + 1}"
            report.alerts.append(
                FiredAlertRecord(cid, stored["account"], rule.name, rule.severity, message, key)
            )
            if write:
                alert_rows.append(
                    {
                        "customer_id": cid,
                        "name": rule.name,
                        "severity": rule.severity,
                        "message": message,
                        "messages": messages,
                        "dedup_key": key,
                        "state": "open",
                        "ruleset_hash": ruleset.hash,
                        "fired_at": now,
                    }
                )
                events.append(
                    {
                        "customer_id": cid,
                        "at": now,
                        "kind": "alert.fired",
                        "actor": ACTOR,
                        "summary": f"{rule.severity} alert {rule.name}: {message}",
                        "data": {
                            "alert": rule.name,
                            "severity": rule.severity,
                            "dedup_key": key,
                            "reason": decision.reason,
                            "ruleset_hash": ruleset.hash,
                        },
                    }
                )
    report.evaluated = len(batch)
    report.resolved = sum(len(v) for v in to_resolve.values())
    snapshots = _changed_snapshots(batch, ruleset.hash, now) if write else []
    if write:  # COPY on PostgreSQL: no statement per row (`cobro.bulk`)
        if snapshots:
            ids = [row["customer_id"] for row in snapshots]
            snapshot = CustomerFactSnapshot.__table__
            session.connection().execute(
                delete(snapshot).where(one_of(session, snapshot.c.customer_id, ids))
            )
            bulk_insert(session, CustomerFactSnapshot, snapshots, evaluate_none=True)
        if assessments:
            bulk_insert(session, RiskAssessment, assessments, evaluate_none=True)
        if alert_rows:
            route_alert_rows(session, alert_rows)  # to the customer's owner
            bulk_insert(session, Alert, alert_rows, evaluate_none=True)
        if events:
            bulk_insert(session, TimelineEvent, events, evaluate_none=True)
        alert = Alert.__table__.c  # Core: no ORM session to synchronise, one array parameter
        for name, cids in to_resolve.items():
            session.connection().execute(
                update(Alert.__table__)
                .where(
                    alert.name == name,
                    one_of(session, alert.customer_id, cids),
                    alert.state != RESOLVED,
                )
                .values(state=RESOLVED)
            )
    return report


def _team_message(
    alerts: AlertEvaluator,
    rule: AlertRule,
    facts: Facts,
    thresholds: dict[str, Any],
    context: dict[str, Any],
    messages: dict[str, str] | None,
    language: str,
) -> str:
    """The alert message in the team's `language`, with its numbers and money: the one of
    `messages` when the rule has a message in that language (the same template, rendered
    in the same language), else rendered now."""
    if messages is not None and language in messages:
        return messages[language]
    with using(language):  # the team reads them: its numbers and money
        return alerts.render(rule, facts, thresholds, language, context)


def _changed_snapshots(
    batch: Sequence[tuple[int, Facts]], ruleset_hash: str, now: datetime
) -> list[dict[str, Any]]:
    """Snapshot rows for the customers whose snapshotted facts differ from the stored ones
    (a customer without a snapshot has a null `previous.overdue_amount`, never null now)."""
    rows = []
    for cid, stored in batch:
        snap = snapshot_of(stored)
        if snap != snapshot_of({k: stored.get(f"previous.{k}") for k in snap}):
            rows.append(
                {"customer_id": cid, "facts": snap, "ruleset_hash": ruleset_hash, "as_of": now}
            )
    return rows


# ---------------------------------------------------------------------------- the portfolio


def _team_language() -> str:
    """The language of the stored alert messages: the team's (`COBRO_TEAM_LANGUAGE`)."""
    from cobro.settings import get_settings

    return get_settings().team_language


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def classify_page(
    engine: Engine | None,
    ruleset: Ruleset,
    lo: int,
    hi: int,
    now: datetime | None = None,
    write: bool = True,
) -> ClassifyReport:
    """One page of customers (ids in [lo, hi]) in one transaction: facts, rules, changes
    (the cyclic garbage collector paused meanwhile: `cobro.collector`)."""
    now = _now(now)
    with collector_paused(), transaction(engine) as session:
        base: dict[int, Facts] = {}
        batch = rule_facts(session, ruleset, now.date(), lo=lo, hi=hi, base=base)
        return classify_facts(session, ruleset, batch, now, write, (lo, hi), base)


def rule_facts(
    session: Session,
    ruleset: Ruleset,
    day: Any,
    ids: Sequence[int] | None = None,
    lo: int = 0,
    hi: int = 0,
    base: dict[int, Facts] | None = None,
) -> list[tuple[int, Facts]]:
    """The rule facts of the customers `ids` (or with id in [lo, hi]), their limit facts
    from the exposure engine under the ruleset's exposure.yaml. `base`: filled with a copy
    of each customer's facts before its limit facts (for `classify_facts(base_facts=...)`)."""
    conn = session.connection()
    if ids is not None:
        batch = [item for part in iter_facts(conn, day, ids, max(len(ids), 1)) for item in part]
    else:
        batch = facts_for_range(conn, day, lo, hi)
    if base is not None:
        base.update((cid, dict(facts)) for cid, facts in batch)
    if ids is not None:
        ruleset.fill_limit_facts(conn, day, batch)
    else:
        ruleset.fill_limit_facts(conn, day, batch, id_range=(lo, hi))
    return batch


def pages(engine: Engine | None, batch_size: int = BATCH_SIZE) -> list[tuple[int, int]]:
    with transaction(engine) as session:
        return list(customer_id_pages(session.connection(), batch_size))


#: pages of the portfolio classified side by side on PostgreSQL (`classify_portfolio`), one
#: per forked process (`cobro.forked`): the rules of a page are CPU-bound Python, one core
#: each, and while one page waits on PostgreSQL (its queries, its COPY) the other runs. Pages
#: are disjoint sets of customers, each in its own transaction: the rows written are the same
PAGES_IN_FLIGHT = 2


def _page(shared: tuple[Engine, Ruleset, datetime, bool], page: tuple[int, int]) -> ClassifyReport:
    engine, ruleset, now, write = shared
    return classify_page(engine, ruleset, page[0], page[1], now, write)


def _forked(shared: tuple[Engine, Ruleset, datetime, bool]) -> None:
    shared[0].dispose(close=False)  # the child's own connections, never the parent's


def classify_portfolio(
    engine: Engine | None = None,
    ruleset: Ruleset | None = None,
    now: datetime | None = None,
    ids: Iterable[int] | None = None,
    write: bool = True,
    batch_size: int = BATCH_SIZE,
    in_flight: int = PAGES_IN_FLIGHT,
) -> ClassifyReport:
    """Classify every customer (or `ids`), one transaction per batch; `write=False` only
    reports what would change. The whole portfolio goes page by page; on PostgreSQL
    `in_flight` pages at a time in forked processes, the report merged in page order (a
    failed page raises; the pages being classified beside it may commit: each page is its
    own transaction, and classifying again writes only what is still to change)."""
    now = _now(now)
    ruleset = ruleset or load_active_ruleset(engine)
    report = ClassifyReport(ruleset.hash)
    if ids is not None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), batch_size):
            with collector_paused(), transaction(engine) as session:
                chunk = wanted[start : start + batch_size]
                base: dict[int, Facts] = {}
                batch = rule_facts(session, ruleset, now.date(), ids=chunk, base=base)
                report.merge(classify_facts(session, ruleset, batch, now, write, base_facts=base))
        return report
    engine = engine or default_engine()
    todo = pages(engine, batch_size)
    workers = in_flight if engine.dialect.name == "postgresql" else 1  # SQLite: one writer
    for page in forked_map(_page, (engine, ruleset, now, write), todo, workers, _forked):
        report.merge(page)
    return report


def customer_ids(engine: Engine | None, accounts: Sequence[str]) -> list[int]:
    """The ids of these accounts (unknown ones left out), ascending."""
    out: list[int] = []
    with transaction(engine) as session:
        wanted = sorted(set(accounts))
        for start in range(0, len(wanted), BATCH_SIZE):
            chunk = wanted[start : start + BATCH_SIZE]
            out += session.scalars(select(Customer.id).where(Customer.account.in_(chunk)))
    return sorted(out)


def customer_id(engine: Engine | None, account: str) -> int | None:
    with transaction(engine) as session:
        return session.scalar(select(Customer.id).where(Customer.account == account))


@dataclass
class CustomerExplanation:
    account: str
    risk_class: str
    previous: str | None
    explanation: Explanation
    facts: Facts
    alerts: list[dict[str, Any]]  # every alert rule: matched value and what was done

    def lines(self) -> list[str]:
        out = [f"{self.account}: {self.explanation.lines()[0]}"]
        out += self.explanation.lines()[1:]
        out.append(f"  previous class: {self.previous or UNCLASSIFIED}")
        for a in self.alerts:
            out.append(
                f"  alert `{a['name']}`: {a['describe']}" + (" -- FIRED" if a["fired"] else "")
            )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "risk_class": self.risk_class,
            "previous_risk_class": self.previous,
            "explanation": explanation_json(self.explanation, self.facts),
            "alerts": jsonable(self.alerts),
        }


def explain_customer(
    engine: Engine | None,
    account: str,
    ruleset: Ruleset | None = None,
    now: datetime | None = None,
    write: bool = True,
) -> CustomerExplanation | None:
    """Classify one customer now (writing any change) and explain the result."""
    now = _now(now)
    ruleset = ruleset or load_active_ruleset(engine)
    cid = customer_id(engine, account)
    if cid is None:
        return None
    with transaction(engine) as session:
        batch = rule_facts(session, ruleset, now.date(), ids=[cid])
        report = classify_facts(session, ruleset, batch, now, write)
    stored = batch[0][1]
    facts = evaluation_facts(stored)
    expl = ruleset.classifier.explain(facts)
    fired = {a.name for a in report.alerts}
    alerts: list[dict[str, Any]] = []
    if ruleset.alerts is not None:
        for t in ruleset.alerts.trace({**facts, "risk_class": expl.risk_class}):
            alerts.append(
                {
                    "name": t.name,
                    "value": t.value,
                    "describe": t.describe(),
                    "fired": t.name in fired,
                }
            )
    return CustomerExplanation(
        account, expl.risk_class, stored.get("risk_class"), expl, facts, alerts
    )


# ---------------------------------------------------------------------------- versions


class ApplyRefused(Exception):
    """`rules apply` of files that fail `check` or `test`: the active version is unchanged."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "refused")
        self.lines = lines


@dataclass
class AppliedVersion:
    id: int
    content_hash: str
    created: bool  # False: an identical earlier version was re-activated


def validate_directory(directory: Path) -> Ruleset:
    """Load, check (messages render) and test (examples pass); raise ApplyRefused."""
    from cobro.rules import RuleError
    from cobro.rules.examples import render_checks, run_examples

    try:
        ruleset = Ruleset.load(directory)
    except RuleError as exc:
        raise ApplyRefused([str(m) for m in exc.messages]) from None
    problems = [str(m) for m in render_checks(ruleset)]
    if problems:
        raise ApplyRefused(problems)
    _, failures = run_examples(ruleset)
    if failures:
        raise ApplyRefused([str(f) for f in failures])
    return ruleset


def apply_version(
    engine: Engine | None, directory: Path, author: str, message: str
) -> AppliedVersion:
    """Store the directory's files as the active ruleset version (refused if broken)."""
    ruleset = validate_directory(directory)
    with transaction(engine) as session:
        existing = session.scalars(
            select(RulesetVersion).where(RulesetVersion.content_hash == ruleset.hash)
        ).first()
        session.execute(
            update(RulesetVersion).where(RulesetVersion.active.is_(True)).values(active=False)
        )
        if existing is not None:
            existing.active = True
            session.flush()
            return AppliedVersion(existing.id, existing.content_hash, False)
        version = RulesetVersion(
            content_hash=ruleset.hash,
            files=ruleset_texts(ruleset),
            author=author,
            message=message,
            active=True,
        )
        session.add(version)
        session.flush()
        return AppliedVersion(version.id, version.content_hash, True)


@dataclass
class RulesDiff:
    current_hash: str
    proposed_hash: str
    evaluated: int = 0
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # account, from, to
    alerts: list[FiredAlertRecord] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.changed)


def diff_rulesets(
    engine: Engine | None,
    proposed: Ruleset,
    current: Ruleset | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> RulesDiff:
    """On the live portfolio: which customers the proposed rules classify differently from
    the current (active) ones, and which alerts they would fire now. Writes nothing."""
    now = _now(now)
    current = current or load_active_ruleset(engine)
    diff = RulesDiff(current.hash, proposed.hash)
    cur_index, cur_names = current.classifier.index, current.classifier.names
    new_index, new_names = proposed.classifier.index, proposed.classifier.names
    for lo, hi in pages(engine, batch_size):
        with transaction(engine) as session:
            batch = rule_facts(session, proposed, now.date(), lo=lo, hi=hi)
            preview = classify_facts(session, proposed, batch, now, write=False)
            # the current classes with the current exposure.yaml's limit facts
            current_batch = [(cid, dict(f)) for cid, f in batch]
            current.fill_limit_facts(session.connection(), now.date(), current_batch)
        diff.evaluated += len(batch)
        diff.alerts.extend(preview.alerts)
        for (_, stored), (_, stored_now) in zip(batch, current_batch, strict=True):
            facts = evaluation_facts(stored)
            before = cur_names[cur_index(evaluation_facts(stored_now))]
            after = new_names[new_index(facts)]
            if before != after:
                diff.changed.append((stored["account"], before, after))
                diff.transitions[(before, after)] = diff.transitions.get((before, after), 0) + 1
    diff.transitions = dict(sorted(diff.transitions.items(), key=lambda kv: (-kv[1], kv[0])))
    return diff
