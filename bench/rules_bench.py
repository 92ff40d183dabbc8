"""Benchmark of the rules engine: a 20-rule set (the shipped 5 risk classes and 7 alerts plus 8
bench alerts) over N generated customers' facts in memory, one core:

* Cobro's compiled evaluator on N customers (1M by default);
* the same rules in the `rule-engine` library (the best maintained alternative), translated
  with Cobro's null semantics (`bench/rule_engine_translation.py`), on a 50k sample;
* a tree-walking interpreter over the same checked AST (a second baseline).
The three must agree on every customer of the sample (class and alerts), else the bench fails.
One evaluation = one customer through the whole set (first-match class, then every alert).

    .venv/bin/python bench/rules_bench.py [--quick] [--n N] [--sample N] [--e2e-pg DSN]

End to end (`--e2e-pg`): facts SQL, evaluation and writes of `classify_portfolio` on a scratch
PostgreSQL database (created, loaded with COPY, dropped), a first run (every customer's first
assessment, its alerts and timeline events written) then a second one (little changes); the
last line gives e2e_first_s and e2e_steady_s. The 1M measurement (issue 17: <= 180 s first,
<= 60 s steady; the load takes minutes and is not timed; `--n` keeps the in-memory part short):

    .venv/bin/python bench/rules_bench.py --quick --n 100000 \
        --e2e-pg postgresql://postgres@127.0.0.1/postgres --e2e-n 1000000

Same results (`--e2e-digest`): after each run, the MD5 of each table the classification
writes (risk assessments, alerts, timeline events, fact snapshots; serial ids left out, rows
in a fixed order): run it before and after a change at 20k and 100k, the digests must match
(at 1M the tables' text exceeds what one PostgreSQL string may hold).
"""

from __future__ import annotations

import argparse
import ast
import gc
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rule_engine_translation import re_name, to_rule_engine  # noqa: E402

from cobro.rules.expr import LITERAL_NAMES, Checked, _div  # noqa: E402
from cobro.rules.ruleset import Ruleset  # noqa: E402

EXTRA_ALERTS = """
  - name: overdue_growing
    when: overdue_amount > previous.overdue_amount * 1.5 and overdue_amount > 1000
    severity: warning
    cooldown: 7d
    message: "{{ name }}: overdue grew to {{ overdue_amount | money }}"
  - name: dispute_on_big_balance
    when: disputed_amount > 0 and outstanding > 10000
    severity: info
    cooldown: 14d
    message: "{{ name }} disputes {{ disputed_amount | money }}"
  - name: uncovered_exposure
    when: cover_amount is null and outstanding > 50000
    severity: warning
    cooldown: 30d
    message: "{{ name }} owes {{ outstanding | money }} without cover"
  - name: far_over_limit
    when: over_limit and outstanding - total_limit > 10000
    severity: critical
    cooldown: 7d
    message: "{{ name }} is far over its limit"
  - name: slow_payer_many_invoices
    when: avg_days_late > 20 and open_invoices >= 5
    severity: info
    cooldown: 30d
    message: "{{ name }} pays late on {{ open_invoices }} open invoices"
  - name: weak_grade_big_balance
    when: grade >= 7 and outstanding >= 100000
    severity: warning
    cooldown: 14d
    message: "{{ name }}: grade {{ grade }} with {{ outstanding | money }} owed"
  - name: mostly_overdue
    when: overdue_amount > 0.5 * outstanding and outstanding > 1000
    severity: warning
    cooldown: 7d
    message: "{{ name }}: most of the balance is overdue"
  - name: getting_later
    when: max_days_overdue > previous.max_days_overdue + 30
    severity: info
    cooldown: 7d
    message: "{{ name }} is {{ max_days_overdue | days }} late"
"""


def bench_rules_dir(shipped: Path, target: Path) -> Path:
    """The shipped rules plus 8 alerts: 20 rules (5 classes, 15 alerts)."""
    target.mkdir(parents=True, exist_ok=True)
    for f in shipped.glob("*.yaml"):
        text = f.read_text()
        if f.name == "alerts.yaml":
            text = text.replace("\noverrides:", EXTRA_ALERTS + "\noverrides:", 1)
        (target / f.name).write_text(text)
    return target


# ---------------------------------------------------------------- baseline: a tree walker
class Interpreter:
    """Evaluates a checked expression AST node by node with the same three-valued semantics."""

    def __init__(self, thresholds: dict[str, Any]) -> None:
        self.thresholds = thresholds

    def run(self, c: Checked, facts: dict[str, Any]) -> Any:
        return self.ev(c.tree, c, facts)

    def ev(self, n: ast.AST, c: Checked, f: dict[str, Any]) -> Any:
        if isinstance(n, ast.Constant):
            return c.decimals.get(id(n), n.value)
        if isinstance(n, ast.Name):
            if n.id in LITERAL_NAMES:
                return LITERAL_NAMES[n.id]
            if n.id in self.thresholds:
                return self.thresholds[n.id]
            v = f.get(n.id)
            return Decimal(repr(v)) if isinstance(v, float) else v
        if isinstance(n, ast.Attribute):
            return f.get(f"previous.{n.attr}")
        if isinstance(n, ast.BoolOp):
            vals = [self.ev(v, c, f) for v in n.values]
            stop = isinstance(n.op, ast.Or)
            if stop in vals:
                return stop
            return None if None in vals else not stop
        if isinstance(n, ast.UnaryOp):
            v = self.ev(n.operand, c, f)
            if v is None:
                return None
            return (not v) if isinstance(n.op, ast.Not) else -v
        if isinstance(n, ast.BinOp):
            a, b = self.ev(n.left, c, f), self.ev(n.right, c, f)
            if isinstance(n.op, ast.Div):
                return _div(a, b)
            if a is None or b is None:
                return None
            if isinstance(n.op, ast.Add):
                return a + b
            if isinstance(n.op, ast.Sub):
                return a - b
            return a * b
        if isinstance(n, ast.Compare):
            results = []
            left = self.ev(n.left, c, f)
            for op, comp in zip(n.ops, n.comparators, strict=True):
                if isinstance(op, ast.Is | ast.IsNot):
                    results.append((left is None) == isinstance(op, ast.Is))
                    continue
                if isinstance(op, ast.In | ast.NotIn):
                    items = [self.ev(e, c, f) for e in comp.elts]  # type: ignore[attr-defined]
                    r = None if left is None else (left in items) == isinstance(op, ast.In)
                    results.append(r)
                    continue
                right = self.ev(comp, c, f)
                if left is None or right is None:
                    results.append(None)
                else:
                    results.append(
                        {
                            ast.Eq: left == right,
                            ast.NotEq: left != right,
                            ast.Lt: left < right,
                            ast.LtE: left <= right,
                            ast.Gt: left > right,
                            ast.GtE: left >= right,
                        }[type(op)]
                    )
                left = right
            if False in results:
                return False
            return None if None in results else True
        if isinstance(n, ast.Call):
            args = [self.ev(a, c, f) for a in n.args]
            name = n.func.id  # type: ignore[attr-defined]
            if name == "coalesce":
                return next((a for a in args if a is not None), None)
            if None in args:
                return None
            if name == "days_between":
                return (args[1] - args[0]).days
            return {"min": min, "max": max, "abs": abs, "round": round}[name](*args)
        raise TypeError(type(n).__name__)


def baseline_evaluate(rs: Ruleset, facts: dict[str, Any]) -> tuple[int, list[int]]:
    clf = rs.classifier
    interp = Interpreter({})
    index = len(clf.conditions)
    for i, c in enumerate(clf.conditions):
        if interp.run(c, facts) is True:
            index = i
            break
    alerts = rs.alerts
    assert alerts is not None
    interp = Interpreter(alerts.thresholds_for(facts.get("segment")))
    f2 = {**facts, "risk_class": clf.names[index]}
    fired = [i for i, r in enumerate(alerts.rules) if interp.run(r.condition, f2) is True]
    return index, fired


def compiled_evaluate_all(
    rs: Ruleset, data: list[dict[str, Any]], keep: int
) -> tuple[list[tuple[int, list[int]]], list[int], int]:
    """The hot loop of `cobro.rules.classify`: the class is written into the (owned) facts
    dict, then every alert is evaluated on it. Like classification (batches of 5,000 written
    then dropped) it keeps the first `keep` results for the comparison and only counts the
    rest: (kept results, customers per class, alerts fired)."""
    index = rs.classifier.index
    names = rs.classifier.names
    alerts = rs.alerts
    assert alerts is not None
    matching = alerts.matching
    kept = []
    per_class = [0] * len(names)
    fired = 0
    for n, facts in enumerate(data):
        i = index(facts)
        facts["risk_class"] = names[i]
        matched = matching(facts)
        per_class[i] += 1
        fired += len(matched)
        if n < keep:
            kept.append((i, matched))
    return kept, per_class, fired


# ---------------------------------------------------------------- data
def generate(n: int, seed: int = 42) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cover = rng.choice([None, Decimal(rng.randrange(5, 200) * 1000)])
        outstanding = Decimal(rng.randrange(0, 250_000))
        overdue = (outstanding * Decimal(rng.choice([0, 0, 0.1, 0.3, 0.8]))).quantize(Decimal(1))
        limit = cover * Decimal("1.2") if cover else None
        grade = rng.choice([None, *range(1, 11)])
        out.append(
            {
                "name": f"Customer {i}",
                "account": f"C-{i:06d}",
                "country": rng.choice(["FR", "DE", "ES", "IT"]),
                "segment": rng.choice([None, "sme", "corporate", "public_sector", "key_account"]),
                "grade": grade,
                "previous.grade": grade if rng.random() < 0.8 else rng.choice([None, 2, 5, 8]),
                "cover_status": "active" if cover else rng.choice(["none", "cancelled", "refused"]),
                "cover_amount": cover,
                "previous.cover_amount": cover if rng.random() < 0.9 else Decimal(40000),
                "previous.overdue_amount": rng.choice([None, Decimal(0), Decimal(2000), overdue]),
                "previous.max_days_overdue": rng.choice([None, 0, 5, 30]),
                "cover_expires_in_days": rng.choice([None, 10, 25, 90, 300]),
                "total_limit": limit,
                "outstanding": outstanding,
                "overdue_amount": overdue,
                "disputed_amount": rng.choice([Decimal(0)] * 8 + [Decimal(500)]),
                "max_days_overdue": rng.choice([0, 0, 5, 20, 35, 65, 95]),
                "over_limit": bool(limit and outstanding > limit),
                "limit_usage": (outstanding / limit) if limit else None,
                "avg_days_late": rng.choice([None, Decimal("2.5"), Decimal(12)]),
                "broken_promises": rng.choice([0, 0, 0, 1, 2]),
                "open_invoices": rng.randrange(0, 40),
                "previous.risk_class": rng.choice([None, "low", "watch", "medium", "critical"]),
            }
        )
    return out


def timed(fn: Any, rs: Ruleset, data: list[dict[str, Any]]) -> tuple[float, list[Any]]:
    t0 = time.perf_counter()
    results = [fn(rs, f) for f in data]
    return time.perf_counter() - t0, results


def rule_engine_evaluator(rs: Ruleset) -> Any:
    """The same ruleset as `rule-engine` rules: classes first match, then every alert with the
    customer's segment thresholds (one compiled rule list per segment)."""
    import rule_engine

    ctx = rule_engine.Context(default_value=None)
    classes = [rule_engine.Rule(to_rule_engine(c), context=ctx) for c in rs.classifier.conditions]
    alerts = rs.alerts
    assert alerts is not None
    segments = [None, *alerts.segment_thresholds]
    per_segment = {
        seg: [
            rule_engine.Rule(to_rule_engine(r.condition, alerts.thresholds_for(seg)), context=ctx)
            for r in alerts.rules
        ]
        for seg in segments
    }
    default = per_segment[None]
    names = rs.classifier.names
    fallback = len(classes)

    def evaluate(facts: dict[str, Any]) -> tuple[int, list[int]]:
        index = next((i for i, r in enumerate(classes) if r.matches(facts)), fallback)
        with_class = {**facts, "risk_class": names[index]}
        rules = per_segment.get(facts.get("segment"), default)
        return index, [i for i, r in enumerate(rules) if r.matches(with_class)]

    return evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under 30 s")
    parser.add_argument("--n", type=int, default=None, help="customers for the compiled run")
    parser.add_argument("--sample", type=int, default=None, help="customers for the baselines")
    parser.add_argument("--rules", type=Path, default=ROOT / "rules", help="shipped rules")
    parser.add_argument(
        "--e2e-pg",
        metavar="ADMIN_DSN",
        default=None,
        help="also time end-to-end classification (facts SQL + rules + writes) of --e2e-n "
        "customers in a scratch PostgreSQL database created through this admin DSN",
    )
    parser.add_argument("--e2e-n", type=int, default=None, help="customers (default 100k)")
    parser.add_argument(
        "--e2e-digest",
        action="store_true",
        help="after each end-to-end run, print the MD5 of the four tables the classification "
        "writes (ids left out, rows in a fixed order): equal digests = identical results",
    )
    args = parser.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    sample = min(n, args.sample or (3_000 if args.quick else 50_000))

    with tempfile.TemporaryDirectory() as tmp:
        rs = Ruleset.load(bench_rules_dir(args.rules, Path(tmp)))
    alerts = rs.alerts
    assert alerts is not None
    n_rules = len(rs.classifier.names) + len(alerts.rules)
    t0 = time.perf_counter()
    data = generate(n)
    gc.collect()
    gc.freeze()  # the facts are long-lived; don't let the collector rescan them while timing
    print(
        f"ruleset {rs.hash[:12]}: {len(rs.classifier.names)} classes + {len(alerts.rules)} "
        f"alerts = {n_rules} rules; {n:,} customers generated in {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    compiled, per_class, fired = compiled_evaluate_all(rs, data, sample)
    compiled_s = time.perf_counter() - t0
    rate = n / compiled_s
    print(f"compiled     : {rate:>10,.0f} customers/s, {n:,} in {compiled_s:.2f} s (one core)")

    sample_data = data[:sample]
    walker_s, walker = timed(baseline_evaluate, rs, sample_data)
    walker_rate = sample / walker_s
    print(f"tree-walking : {walker_rate:>10,.0f} customers/s on {sample:,}")

    evaluate = rule_engine_evaluator(rs)
    renamed = [{re_name(k): v for k, v in f.items()} for f in sample_data]
    t0 = time.perf_counter()
    by_rule_engine = [evaluate(f) for f in renamed]
    re_s = time.perf_counter() - t0
    re_rate = sample / re_s
    print(f"rule-engine  : {re_rate:>10,.0f} customers/s on {sample:,}")

    if not compiled == walker == by_rule_engine:
        bad = next(i for i in range(sample) if not compiled[i] == walker[i] == by_rule_engine[i])
        sys.exit(
            f"results differ on customer {bad}: compiled {compiled[bad]}, tree-walking "
            f"{walker[bad]}, rule-engine {by_rule_engine[bad]}; facts {data[bad]}"
        )
    dist = dict(zip(rs.classifier.names, per_class, strict=True))
    print("classes      : " + ", ".join(f"{k}={v}" for k, v in sorted(dist.items())))
    print(f"alerts       : {fired:,} fired; all three engines agree on the {sample:,} sample")
    wall_1m = 1_000_000 / rate
    print(
        f"goals        : 1M customers <= 3 s -> {wall_1m:.2f} s; ratio vs rule-engine >= 20x "
        f"-> {rate / re_rate:.1f}x (tree-walking {rate / walker_rate:.1f}x)"
    )
    e2e = ""
    if args.e2e_pg:
        e2e_n = args.e2e_n or (5_000 if args.quick else 100_000)
        e2e = " " + end_to_end(args.e2e_pg, e2e_n, args.rules, args.e2e_digest)
    print(
        f"BENCH rules customers_per_s={rate:.0f} wall_1m_s={wall_1m:.2f} "
        f"rule_engine_per_s={re_rate:.0f} tree_walking_per_s={walker_rate:.0f}{e2e} "
        f"ratio={rate / re_rate:.1f}"
    )


def _copy_rows(conn: Any, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    """COPY `rows` (column name -> value, the same columns in every row) into `table` on
    the PostgreSQL connection `conn`, with the columns' Python defaults (timestamps, flags)
    filled in as the ORM would: the bench's load, many times faster than executemany."""
    from datetime import UTC, datetime

    first = next(rows, None)
    if first is None:
        return 0
    names = list(first)
    now = datetime.now(UTC)
    defaults = {  # utcnow() defaults: the load's time; scalar ones as they are
        c.name: now if c.default.is_callable else c.default.arg
        for c in table.columns
        if c.name not in names and c.default is not None
    }
    columns = ", ".join(f'"{c}"' for c in [*names, *defaults])
    tail = tuple(defaults.values())
    count = 0
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in itertools.chain([first], rows):
            copy.write_row((*row.values(), *tail))
            count += 1
    return count


def load_portfolio(engine: Any, n: int, seed: int = 7) -> None:
    """`n` customers (ids 1..n), 3 invoices each, two grades and one cover in force: the
    first classification writes an assessment for every one of them."""
    import random
    from datetime import date, timedelta

    from cobro.models import Customer, GradeHistory, InsurerCover, Invoice

    rnd = random.Random(seed)
    today = date(2026, 11, 23)
    with engine.begin() as conn:
        _copy_rows(
            conn,
            Customer.__table__,
            (
                {
                    "account": f"B{i:07d}",
                    "name": f"Customer {i}",
                    "country": "FR",
                    "language": "fr",
                    "timezone": "Europe/Paris",
                    "segment": rnd.choice(["sme", "corporate", "public_sector", None]),
                    "discretionary_limit": Decimal(rnd.choice([0, 5000, 20000])),
                }
                for i in range(n)
            ),
        )
        _copy_rows(
            conn,
            Invoice.__table__,
            (
                {
                    "number": f"F{i:07d}-{k}",
                    "customer_id": i + 1,
                    "issue_date": today - timedelta(days=60),
                    "due_date": today - timedelta(days=rnd.randint(-30, 120)),
                    "currency": "EUR",
                    "amount": Decimal(rnd.randint(100, 30000)),
                    "open_amount": Decimal(rnd.randint(0, 100)),
                    "disputed": rnd.random() < 0.02,
                }
                for i in range(n)
                for k in range(3)
            ),
        )
        _copy_rows(
            conn,
            GradeHistory.__table__,
            (
                {
                    "customer_id": i + 1,
                    "insurer": "allianz_trade",
                    "grade": rnd.randint(1, 10),
                    "graded_on": today - timedelta(days=d),
                }
                for i in range(n)
                for d in (200, 20)
            ),
        )
        _copy_rows(
            conn,
            InsurerCover.__table__,
            (
                {
                    "insurer": "allianz_trade",
                    "policy_id": "P",
                    "cover_id": f"C{i}",
                    "customer_id": i + 1,
                    "cover_type": "permanent",
                    "granted_amount": Decimal(rnd.randint(1, 50) * 1000),
                    "currency": "EUR",
                    "status": rnd.choice(["granted", "granted", "partially_granted"]),
                    "valid_until": today + timedelta(days=rnd.randint(1, 400)),
                }
                for i in range(n)
            ),
        )
        conn.exec_driver_sql("ANALYZE")


#: what the classification writes, each table's rows in a fixed order, serial ids left out
DIGESTS = {
    "risk_assessments": (
        "customer_id, risk_class, previous_class, ruleset_hash, explanation, assessed_at",
        "customer_id, assessed_at",
    ),
    "alerts": (
        "customer_id, name, severity, message, messages, dedup_key, state, ruleset_hash, "
        "fired_at, acknowledged_by, acknowledged_at, assigned_to",
        "dedup_key",
    ),
    "timeline_events": (
        "customer_id, at, kind, actor, summary, data",
        "customer_id, at, kind, summary",
    ),
    "customer_fact_snapshots": ("customer_id, facts, ruleset_hash, as_of", "customer_id"),
}


def table_digests(engine: Any) -> dict[str, str]:
    """Table -> rows:MD5 of its rows (as text, in the order of DIGESTS) without the ids."""
    out = {}
    with engine.connect() as conn:
        for table, (columns, order) in DIGESTS.items():
            count, digest = conn.exec_driver_sql(
                "SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' "
                f"ORDER BY {order}, r::text), '')) FROM (SELECT {columns} FROM {table}) AS r"
            ).one()
            out[table] = f"{count}:{digest}"
    return out


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that ended (the classification's
    forked page workers)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def end_to_end(admin_dsn: str, n: int, rules: Path, digest: bool = False) -> str:
    """Classify `n` customers stored in a scratch PostgreSQL database: first run (every
    customer gets its first assessment written), second run (nothing changes). `digest`:
    print the MD5 of the written tables after each run (`table_digests`)."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import psycopg

    from cobro.db import make_engine, upgrade
    from cobro.rules.classify import classify_portfolio

    name = f"cobro_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(admin_dsn, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        engine = make_engine(url)
        t0 = time.perf_counter()
        load_portfolio(engine, n)
        load_s = time.perf_counter() - t0
        rs = Ruleset.load(rules)
        now = datetime(2026, 11, 23, 6, tzinfo=UTC)
        t0, c0 = time.perf_counter(), cpu_seconds()
        first = classify_portfolio(engine, rs, now=now)
        first_s, first_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if digest:
            print(f"digest first : {table_digests(engine)}")
        t0, c0 = time.perf_counter(), cpu_seconds()
        second = classify_portfolio(engine, rs, now=now + timedelta(hours=1))
        second_s, second_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if digest:
            print(f"digest steady: {table_digests(engine)}")
        engine.dispose()
        print(
            f"end to end   : {n:,} customers from PostgreSQL (loaded in {load_s:.1f} s): "
            f"first run {first_s:.2f} s, {first_cpu:.1f} s CPU ({len(first.changes):,} changes, "
            f"{len(first.alerts):,} alerts written), second run {second_s:.2f} s, "
            f"{second_cpu:.1f} s CPU ({len(second.changes)} changes) = "
            f"{n / second_s:,.0f} customers/s; CPU: the bench's and its worker processes', "
            "PostgreSQL's not counted"
        )
        return (
            f"e2e_customers={n} e2e_first_s={first_s:.2f} e2e_steady_s={second_s:.2f} "
            f"e2e_customers_per_s={n / second_s:.0f}"
        )
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
