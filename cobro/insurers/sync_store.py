"""The database side of the insurer sync: one sync run, applied one page at a time.

* `begin_sync_run` opens a `sync_runs` row (incremental = changes since the last succeeded
  run's high-water mark, or earlier: never after the `refetch_since` of an open quarantine
  entry; without a mark, or with an open entry whose record's date is unknown, a full sync);
* `apply_cover_page` writes one page in one transaction, set-based: covers matched to
  customers (`cobro.insurers.matching`, on the page's identifiers looked up in the run's
  `insurer_match_keys`, written on its first page: no customer list in memory) and bulk
  inserted / updated, every change as a
  `cover_history` row and a customer timeline event ("limit EUR 200,000 → 50,000"), grade
  changes in `grade_history`, malformed records in `insurer_quarantine` (they touch nothing
  else); a valid version of a quarantined record closes its entry. A record repeated in the
  page is applied once (the latest `updatedAt`, the last one on a tie); a record this run
  already applied, seen again on a later page, is a no-op. The page's counts are stored in
  the run in the same transaction, so applying the same page again (an activity retry)
  returns them and writes nothing. Pages in flight are never applied after the run is
  over; on PostgreSQL they write at once (each locks only the stored covers it reads and the
  customers whose grade it may change; a record repeated in a page written meanwhile makes
  the page apply again), on SQLite one after the other;
* `finish_sync_run` flags covers past their validity as expired, closes the quarantine
  entries whose whole window the run has read, and closes the run with its totals (fetched,
  created, updated, unchanged, repeated, quarantined, unmatched, expired) and duration.
Applying the same insurer data twice changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Engine,
    Row,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cobro import formatting
from cobro.bulk import JsonText, bulk_insert
from cobro.db import transaction
from cobro.db_statistics import analyze, refresh_statistics
from cobro.formatting import jsonable
from cobro.insurers.base import Cover, CoverPage, IdType, QuarantinedRecord
from cobro.insurers.matching import (
    CustomerIds,
    Match,
    MatchIndex,
    company_keys,
    customer_keys,
    normalise,
    siren_of,
)
from cobro.models import (
    CoverHistory,
    Customer,
    GradeHistory,
    InsurerCover,
    InsurerMatchKey,
    InsurerQuarantine,
    SyncRun,
    TimelineEvent,
)
from cobro.sql_values import one_of
from cobro.types import utcnow

log = logging.getLogger(__name__)

ACTOR = "insurer-sync"
ACTIVE = ("active", "reduced", "partially_granted", "granted")
# fetched = created + updated + unchanged + repeated + quarantined (unmatched: of the first two)
COUNT_KEYS = (
    "fetched",
    "created",
    "updated",
    "unchanged",
    "repeated",
    "quarantined",
    "unmatched",
)
# what a sync compares; anything else the insurer changes (its updatedAt) is not a change
TRACKED = (
    "policy_id",
    "insurer_buyer_id",
    "buyer_name",
    "buyer_siren",
    "buyer_vat",
    "buyer_duns",
    "cover_type",
    "nominative",
    "requested_amount",
    "granted_amount",
    "currency",
    "status",
    "request_date",
    "decision_date",
    "valid_from",
    "valid_until",
    "grade",
)


@dataclass(frozen=True)
class SyncRunStart:
    run_id: int
    kind: str  # "full" | "incremental"
    updated_since: datetime | None


def begin_sync_run(
    engine: Engine | None,
    insurer: str,
    kind: str,
    workflow_id: str | None = None,
    *,
    now: datetime | None = None,
) -> SyncRunStart:
    if kind not in ("full", "incremental"):
        raise ValueError(f"unknown sync kind {kind!r}: full or incremental")
    with transaction(engine) as s:
        if workflow_id:
            run = s.scalars(
                select(SyncRun).where(
                    SyncRun.workflow_id == workflow_id, SyncRun.insurer == insurer
                )
            ).first()
            if run is not None:
                return SyncRunStart(run.id, run.kind, run.updated_since)
        since = None
        if kind == "incremental":
            since = s.scalar(
                select(SyncRun.high_water)
                .where(SyncRun.insurer == insurer, SyncRun.status == "succeeded")
                .where(SyncRun.high_water.is_not(None))
                .order_by(SyncRun.id.desc())
                .limit(1)
            )
            if since is not None:
                since = _held_back(s, insurer, since)
            if since is None:
                kind = "full"
        run = SyncRun(
            insurer=insurer,
            kind=kind,
            status="running",
            started_at=now or utcnow(),
            updated_since=since,
            workflow_id=workflow_id,
            counts={"by_page": {}},
        )
        s.add(run)
        s.flush()
        return SyncRunStart(run.id, kind, since)


def _held_back(s: Session, insurer: str, high_water: datetime) -> datetime | None:
    """Where an incremental sync starts: min(high water, `refetch_since` of every open
    quarantine entry), None (a full fetch) when an open entry's is unknown. So the window
    of every incremental sync contains every record still quarantined."""
    floor, unknown = s.execute(
        select(
            func.min(InsurerQuarantine.refetch_since),
            func.count(InsurerQuarantine.id).filter(InsurerQuarantine.refetch_since.is_(None)),
        ).where(InsurerQuarantine.insurer == insurer, InsurerQuarantine.resolved_at.is_(None))
    ).one()
    if unknown:
        return None
    return high_water if floor is None else min(high_water, floor)


def refetch_since(raw: Any, run_since: datetime | None) -> datetime | None:
    """A lower bound of a quarantined record's `updatedAt`: the sync that received it asked for
    `updatedAt >= run_since` (inclusive), and the record may say its own (if it parses as an
    instant with a zone); the earlier of the two. None when neither is known (a full sync and
    no readable `updatedAt`): only a full fetch is sure to find it again."""
    stated = None
    value = None
    if isinstance(raw, dict):  # Allianz Trade's `lastUpdateDate`, or a normalised `updatedAt`
        value = raw.get("lastUpdateDate", raw.get("updatedAt"))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            stated = parsed
    if stated is None or run_since is None:
        return stated or run_since
    return min(stated, run_since)


def latest_versions(covers: tuple[Cover, ...]) -> list[Cover]:
    """One cover per id, in first-seen order: the latest `updatedAt`, the last on a tie."""
    best: dict[str, Cover] = {}
    for cover in covers:
        seen = best.get(cover.cover_id)
        if seen is None or cover.updated_at >= seen.updated_at:
            best[cover.cover_id] = cover
    return list(best.values())


def distinct_quarantined(records: tuple[QuarantinedRecord, ...]) -> list[QuarantinedRecord]:
    """Malformed records once each: by id, or by their payload when they have none."""
    out: dict[str, QuarantinedRecord] = {}
    for q in records:
        key = f"id:{q.record_id}" if q.record_id else "raw:" + _raw_text(q.raw)
        out.setdefault(key, q)
    return list(out.values())


def _raw_text(raw: Any) -> str:
    return json.dumps(raw, default=str, ensure_ascii=False, sort_keys=True)


# ---------------------------------------------------------------------------- one page


def cover_values(cover: Cover) -> dict[str, Any]:
    company = cover.company
    return {
        "policy_id": cover.policy_id,
        "insurer_buyer_id": company.company_id,
        "buyer_name": company.company_name[:255],
        "buyer_siren": siren_of(company.identifier(IdType.SIREN))
        or siren_of(company.identifier(IdType.SIRET)),
        "buyer_vat": (normalise(company.identifier(IdType.VAT)) or "")[:20] or None,
        "buyer_duns": (normalise(company.identifier(IdType.DUNS)) or "")[:9] or None,
        "cover_type": cover.cover_type.value.lower(),
        "nominative": cover.nominative,
        "requested_amount": cover.requested_amount,
        "granted_amount": cover.amount,
        "currency": cover.currency,
        "status": cover.status.value.lower(),
        "request_date": cover.request_date,
        "decision_date": cover.decision_date,
        "valid_from": cover.effective_date,
        "valid_until": cover.expiry_date,
        "grade": cover.grade,
        "insurer_updated_at": cover.updated_at,
    }


def raw_json(cover: Cover) -> JsonText:
    """The cover as stored in `raw` (its `wire()` form), serialised by pydantic at once."""
    return JsonText(cover.model_dump_json(by_alias=True, exclude_none=True))


@lru_cache(maxsize=8192)  # babel is slow and limits repeat (round thousands)
def money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "none"
    return formatting.money(amount, currency, whole=True)


KEY_BATCH = 10_000


def write_match_keys(s: Session, run_id: int) -> int:
    """Every customer's normalised identifiers into `insurer_match_keys` for this run,
    streamed in batches (memory stays flat whatever the number of customers); keys left by
    runs that are over are removed first. Returns how many keys were written."""
    over = select(SyncRun.id).where(SyncRun.status != "running")
    s.execute(delete(InsurerMatchKey).where(InsurerMatchKey.sync_run_id.in_(over)))
    rows = s.execute(
        select(
            Customer.id,
            Customer.account,
            Customer.insurer_buyer_id,
            Customer.siren,
            Customer.vat,
            Customer.duns,
        )
        .where(
            or_(
                Customer.insurer_buyer_id.is_not(None),
                Customer.siren.is_not(None),
                Customer.vat.is_not(None),
                Customer.duns.is_not(None),
            )
        )
        .execution_options(yield_per=KEY_BATCH)
    )
    written = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        for kind, value in customer_keys(CustomerIds(*row)):
            batch.append(
                {"sync_run_id": run_id, "kind": kind, "value": value[:64], "customer_id": row[0]}
            )
        if len(batch) >= KEY_BATCH:
            bulk_insert(s, InsurerMatchKey, batch)
            written += len(batch)
            batch = []
    if batch:
        bulk_insert(s, InsurerMatchKey, batch)
        written += len(batch)
    return written


def page_match_index(s: Session, run: SyncRun, wanted: list[dict[str, str | None]]) -> MatchIndex:
    """The customers this page's covers can match (`wanted`: each cover's `company_keys`),
    read from the run's keys (written on the run's first page that needs them): one indexed
    query per page, and the accounts of customers sharing a key (what an ambiguity names)."""
    values = sorted({v for keys in wanted for v in keys.values() if v})
    k = InsurerMatchKey.__table__.c  # Core columns on the connection: rows, no ORM loading
    keys: list[tuple[str, str, int]] = []
    for start in range(0, len(values), 5_000):
        keys += (
            s.connection()
            .execute(
                select(k.kind, k.value, k.customer_id).where(
                    k.sync_run_id == run.id, one_of(s, k.value, values[start : start + 5_000])
                )
            )
            .all()
        )
    index = MatchIndex.from_keys(keys, {})
    shared = index.shared()
    if shared:
        index.accounts = dict(
            s.execute(
                select(Customer.id, Customer.account).where(one_of(s, Customer.id, sorted(shared)))
            ).all()
        )
    return index


def _latest_grades(s: Session, insurer: str, customer_ids: set[int]) -> dict[int, tuple[int, date]]:
    if not customer_ids:
        return {}
    ranked = (
        select(
            GradeHistory.customer_id,
            GradeHistory.grade,
            GradeHistory.graded_on,
            func.row_number()
            .over(
                partition_by=GradeHistory.customer_id,
                order_by=(GradeHistory.graded_on.desc(), GradeHistory.id.desc()),
            )
            .label("rn"),
        )
        .where(
            one_of(s, GradeHistory.customer_id, sorted(customer_ids)),
            GradeHistory.insurer == insurer,
        )
        .subquery()
    )
    return {
        cid: (grade, on)
        for cid, grade, on in s.connection().execute(
            select(ranked.c.customer_id, ranked.c.grade, ranked.c.graded_on).where(ranked.c.rn == 1)
        )
    }


# what a page reads of its stored covers (rows, not ORM objects: no `raw`, no identity map)
_STORED = tuple(
    InsurerCover.__table__.c[k]
    for k in (
        "id",
        "cover_id",
        "customer_id",
        "match_method",
        "last_sync_run_id",
        "insurer_updated_at",
        *TRACKED,
    )
)


@dataclass(frozen=True)
class PreparedPage:
    """What a page's covers give before its transaction (no lock): one version per cover,
    its stored values, its raw JSON and its match keys, and the page's match index (the
    run's keys, written by the first page that needs them, do not change during a run)."""

    covers: list[Cover]
    values: list[dict[str, Any]]
    raws: list[JsonText]
    keys: list[dict[str, str | None]]
    index: MatchIndex | None


def prepare_page(engine: Engine | None, run_id: int, page: CoverPage) -> PreparedPage:
    covers = latest_versions(page.covers)
    keys = [company_keys(c.company) for c in covers]
    index = None
    if covers:
        with transaction(engine) as s:
            run = s.get(SyncRun, run_id)
            if run is not None and "match_keys" not in (run.counts or {}):
                run = _with_match_keys(s, run_id)
            if run is not None:
                index = page_match_index(s, run, keys)
    return PreparedPage(
        covers, [cover_values(c) for c in covers], [raw_json(c) for c in covers], keys, index
    )


def _with_match_keys(s: Session, run_id: int) -> SyncRun:
    """The run, its match keys written by the first page that needs them (under the run's
    lock, in a transaction of their own: the pages then read them without one)."""
    run = _locked_run(s, run_id)
    if "match_keys" not in (run.counts or {}):
        run.counts = {**(run.counts or {}), "match_keys": write_match_keys(s, run.id)}
        s.flush()
        if s.get_bind().dialect.name == "postgresql":  # read by every page from now on
            analyze(s.connection(), [InsurerMatchKey.__tablename__])
    return run


# what a page looks up by the page's values (stale statistics make each lookup a scan)
LOOKED_UP = (InsurerCover.__tablename__, GradeHistory.__tablename__)


# a page applied while another one commits a record of it (a record repeated across pages
# in flight): the unique index or the deadlock detector stops one, which is applied again
CONFLICTS = ("23505", "40P01", "40001")  # unique_violation, deadlock_detected, serialization
ATTEMPTS = 5


class _AppliedMeanwhile(Exception):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts


def apply_cover_page(
    engine: Engine | None, run_id: int, insurer: str, page: CoverPage, today: date
) -> dict[str, int]:
    """The page in one transaction. What needs no lock (the covers' values, their JSON, the
    page's match index) is done before. On PostgreSQL pages in flight write at once: each
    locks the stored covers it reads (`FOR UPDATE`) and the customers whose grade it may
    change, and takes the run's row lock only at the end, to record its counts (a page
    applied meanwhile by another attempt, or a run that ended, rolls it back). SQLite has one
    writer: the run's lock is taken first. The counts are stored in the run in the same
    transaction, so applying the same page again (an activity retry) returns them."""
    prepared = prepare_page(engine, run_id, page)
    refresh_statistics(engine, LOOKED_UP)  # a first full sync fills what it reads
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction(engine) as s:
                return _apply_in(s, run_id, insurer, page, prepared, today)
        except _AppliedMeanwhile as done:
            return done.counts
        except Exception as exc:  # SQLAlchemy's, or the driver's own (a COPY)
            code = getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate", None)
            if code not in CONFLICTS or attempt == ATTEMPTS:
                raise
            log.info("insurer: page %d met a page in flight (%s), applied again", page.number, code)
    raise AssertionError("unreachable")


def _apply_in(
    s: Session, run_id: int, insurer: str, page: CoverPage, prepared: PreparedPage, today: date
) -> dict[str, int]:
    concurrent = s.get_bind().dialect.name == "postgresql"
    run = s.get(SyncRun, run_id) if concurrent else _locked_run(s, run_id)
    if run is None:
        raise ValueError(f"no sync run {run_id}")
    done = _recorded(run, page.number)
    if done is not None:
        return done
    counts = _apply(s, run, insurer, page, prepared, today)
    if concurrent:
        run = _locked_run(s, run_id, refresh=True)
        done = _recorded(run, page.number)
        if done is not None:  # another attempt of this page committed first
            raise _AppliedMeanwhile(done)
    pages = dict((run.counts or {}).get("by_page", {}))
    pages[str(page.number)] = counts
    run.counts = {**(run.counts or {}), "by_page": pages}
    return counts


def _recorded(run: SyncRun, number: int) -> dict[str, int] | None:
    """The page's counts if the run has them; an error if the run is over."""
    done = (run.counts or {}).get("by_page", {}).get(str(number))
    if done is not None:
        return dict(done)
    if run.status != "running":  # a page still in flight when its run failed
        raise ValueError(f"sync run {run.id} is {run.status}: page {number} not applied")
    return None


def _locked_run(s: Session, run_id: int, *, refresh: bool = False) -> SyncRun:
    """The run's row, locked until the transaction ends (`refresh`: read again, not taken
    from the session). PostgreSQL: `SELECT ... FOR UPDATE`; SQLite has no row lock, so a
    write comes first, taking the database's write lock before anything is read."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(update(SyncRun).where(SyncRun.id == run_id).values(id=SyncRun.id))
    run = s.get(SyncRun, run_id, with_for_update=True, populate_existing=refresh)
    if run is None:
        raise ValueError(f"no sync run {run_id}")
    return run


def _apply(
    s: Session, run: SyncRun, insurer: str, page: CoverPage, prepared: PreparedPage, today: date
) -> dict[str, int]:
    run_id = run.id
    now = utcnow()
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["fetched"] = len(page.covers) + len(page.quarantined)
    covers = prepared.covers
    malformed = distinct_quarantined(page.quarantined)
    counts["repeated"] = len(page.covers) - len(covers) + len(page.quarantined) - len(malformed)
    counts["quarantined"] = len(malformed)
    existing = (
        {
            row.cover_id: row
            for row in s.connection().execute(
                select(*_STORED)
                .where(
                    InsurerCover.insurer == insurer,
                    one_of(s, InsurerCover.cover_id, [c.cover_id for c in covers]),
                )
                .order_by(InsurerCover.cover_id)
                .with_for_update()  # a page in flight with the same record waits
            )
        }
        if covers
        else {}
    )
    # a version older than the stored one is not applied (nor does it close a quarantine)
    current = [c for c in covers if not _older(c, existing.get(c.cover_id))]
    if current:  # entries received before this page, closed by a valid version received now
        s.execute(
            update(InsurerQuarantine)
            .where(
                InsurerQuarantine.insurer == insurer,
                InsurerQuarantine.resolved_at.is_(None),
                one_of(s, InsurerQuarantine.record_id, [c.cover_id for c in current]),
            )
            .values(resolved_at=now, resolved_by_run_id=run_id, resolution="applied")
        )
    if malformed:
        s.execute(
            insert(InsurerQuarantine.__table__),
            [
                {
                    "sync_run_id": run_id,
                    "insurer": insurer,
                    "record_id": (q.record_id or "")[:64] or None,
                    "page": q.page,
                    "position": q.index,
                    "reason": q.reason,
                    "raw": json.dumps(q.raw, default=str, ensure_ascii=False),
                    "at": now,
                    "refetch_since": refetch_since(q.raw, run.updated_since),
                }
                for q in malformed
            ],
        )
    if not covers:
        return counts
    keys = prepared.keys
    index = prepared.index
    assert index is not None  # `prepare_page` gives one to every page with covers
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []  # insurer_cover_id filled after inserts
    events: list[dict[str, Any]] = []
    grades: dict[int, int] = {}
    for cover, company, values, raw in zip(
        covers, keys, prepared.values, prepared.raws, strict=True
    ):
        old = existing.get(cover.cover_id)
        if old is not None and old.last_sync_run_id == run_id and not _newer(cover, old):
            counts["repeated"] += 1  # applied by an earlier page of this run: a no-op
            continue
        if old is not None and _older(cover, old):
            log.warning("insurer: cover %s: an older version than stored, ignored", cover.cover_id)
            counts["repeated"] += 1
            continue
        if old is not None and old.match_method == "manual":
            match = Match(old.customer_id, "manual")
        else:
            match = index.match_keys(company)
        customer_id = match.customer_id
        if customer_id is None:
            counts["unmatched"] += 1
        else:
            grades[customer_id] = cover.grade
        label = f"cover {cover.cover_id} ({values['cover_type']}, policy {cover.policy_id})"
        if old is None:
            counts["created"] += 1
            inserts.append(
                {
                    **values,
                    "raw": raw,
                    "insurer": insurer,
                    "cover_id": cover.cover_id,
                    "customer_id": customer_id,
                    "match_method": match.method,
                    "last_sync_run_id": run_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            history.append(
                {
                    "cover_id": cover.cover_id,
                    "customer_id": customer_id,
                    "kind": "created",
                    "old": None,
                    "new": jsonable(
                        {
                            k: values[k]
                            for k in (
                                "status",
                                "granted_amount",
                                "currency",
                                "valid_until",
                                "grade",
                            )
                        }
                    ),
                }
            )
            if customer_id is not None:
                events.append(
                    _event(
                        customer_id,
                        now,
                        "cover.created",
                        f"{label} {values['status']}: "
                        f"{money(values['granted_amount'], values['currency'])}"
                        + (f" until {values['valid_until']}" if values["valid_until"] else ""),
                        {"cover_id": cover.cover_id},
                    )
                )
            continue
        changed = {k: (getattr(old, k), values[k]) for k in TRACKED if getattr(old, k) != values[k]}
        rematched = customer_id != old.customer_id
        if not changed and not rematched:
            counts["unchanged"] += 1
            continue
        counts["updated"] += 1
        updates.append(
            {
                "id": old.id,
                **values,
                "raw": cover.wire(),
                "customer_id": customer_id,
                "match_method": match.method,
                "last_sync_run_id": run_id,
                "updated_at": now,
            }
        )
        for kind, summary in _changes(old, values, changed, label):
            history.append(
                {
                    "cover_id": cover.cover_id,
                    "insurer_cover_id": old.id,
                    "customer_id": customer_id,
                    "kind": kind,
                    "old": jsonable({k: changed[k][0] for k in _FIELDS[kind] if k in changed}),
                    "new": jsonable({k: changed[k][1] for k in _FIELDS[kind] if k in changed}),
                }
            )
            if customer_id is not None:
                events.append(
                    _event(customer_id, now, f"cover.{kind}", summary, {"cover_id": cover.cover_id})
                )
        if rematched and customer_id is not None:
            history.append(
                {
                    "cover_id": cover.cover_id,
                    "insurer_cover_id": old.id,
                    "customer_id": customer_id,
                    "kind": "matched",
                    "old": None,
                    "new": {"by": match.method},
                }
            )
            events.append(
                _event(
                    customer_id,
                    now,
                    "cover.matched",
                    f"{label} matched by {match.method}",
                    {"cover_id": cover.cover_id},
                )
            )
    if inserts:
        ids = next_ids(s, InsurerCover, len(inserts))
        if ids is not None:
            for row, id_ in zip(inserts, ids, strict=True):
                row["id"] = id_
        bulk_insert(s, InsurerCover, inserts)
        if ids is not None:
            new_ids = {r["cover_id"]: r["id"] for r in inserts}
        else:
            new_ids = dict(
                s.execute(
                    select(InsurerCover.cover_id, InsurerCover.id).where(
                        InsurerCover.insurer == insurer,
                        one_of(s, InsurerCover.cover_id, [r["cover_id"] for r in inserts]),
                    )
                ).all()
            )
        for h in history:
            h.setdefault("insurer_cover_id", new_ids.get(h["cover_id"]))
    if updates:
        s.execute(update(InsurerCover), updates)
    if history:
        bulk_insert(
            s,
            CoverHistory,
            [
                {k: v for k, v in h.items() if k != "cover_id"} | {"sync_run_id": run_id, "at": now}
                for h in history
            ],
        )
    events += _grade_changes(s, insurer, grades, today, now)
    if events:
        bulk_insert(s, TimelineEvent, events)
    return counts


def next_ids(s: Session, model: type, n: int) -> list[int] | None:
    """n ids of `model`'s table taken from its sequence at once (PostgreSQL), so rows written
    by COPY need no query to learn them; None elsewhere (SQLite has no sequence)."""
    if s.get_bind().dialect.name != "postgresql":
        return None
    table = model.__table__  # type: ignore[attr-defined]
    return list(
        s.connection().scalars(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n},
        )
    )


def _older(cover: Cover, old: Row[Any] | None) -> bool:
    stored = old.insurer_updated_at if old is not None else None
    return stored is not None and cover.updated_at < stored


def _newer(cover: Cover, old: Row[Any]) -> bool:
    stored = old.insurer_updated_at
    return stored is None or cover.updated_at > stored


_FIELDS = {
    "amount": ("granted_amount", "requested_amount", "currency"),
    "status": ("status",),
    "validity": ("valid_from", "valid_until", "cover_type"),
    "changed": (
        "policy_id",
        "insurer_buyer_id",
        "buyer_name",
        "buyer_siren",
        "buyer_vat",
        "buyer_duns",
        "nominative",
        "request_date",
        "decision_date",
        "grade",
    ),
}


def _changes(
    old: Row[Any], new: dict[str, Any], changed: dict[str, tuple[Any, Any]], label: str
) -> list[tuple[str, str]]:
    out = []
    if "granted_amount" in changed or "currency" in changed:
        out.append(
            (
                "amount",
                f"limit {money(old.granted_amount, old.currency)} → "
                f"{money(new['granted_amount'], new['currency'])} ({label})",
            )
        )
    elif "requested_amount" in changed:
        before = money(old.requested_amount, old.currency)
        after = money(new["requested_amount"], new["currency"])
        out.append(("amount", f"requested amount {before} → {after} ({label})"))
    if "status" in changed:
        out.append(("status", f"{label}: {old.status} → {new['status']}"))
    if any(k in changed for k in _FIELDS["validity"]):
        out.append(
            (
                "validity",
                f"{label}: valid {old.valid_from or '…'} – {old.valid_until or 'open-ended'} → "
                f"{new['valid_from'] or '…'} – {new['valid_until'] or 'open-ended'}",
            )
        )
    if any(k in changed for k in _FIELDS["changed"]) and not out:
        fields = ", ".join(k for k in changed if k in _FIELDS["changed"])
        out.append(("changed", f"{label}: {fields} changed"))
    return out


GRADE_LOCKS = 0x47524144  # the advisory lock space of customers' grades ("GRAD")


def _grade_changes(
    s: Session, insurer: str, grades: dict[int, int], today: date, now: datetime
) -> list[dict[str, Any]]:
    """grade_history rows for customers whose insurer grade moved, and their timeline events.
    On PostgreSQL the customers are locked first (advisory, in id order): a page in flight
    with a cover of the same customer reads their grade once this one has committed."""
    if grades and s.get_bind().dialect.name == "postgresql":
        s.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(CAST(:space AS int), c))"
                " FROM unnest(CAST(:ids AS int[])) AS c"
            ),
            {"space": GRADE_LOCKS, "ids": sorted(grades)},
        )
    latest = _latest_grades(s, insurer, set(grades))
    new_rows, events = [], []
    for cid, grade in grades.items():
        before = latest.get(cid)
        if before is not None and before[0] == grade:
            continue
        if before is not None and before[1] == today:
            s.execute(
                update(GradeHistory)
                .where(
                    GradeHistory.customer_id == cid,
                    GradeHistory.insurer == insurer,
                    GradeHistory.graded_on == today,
                )
                .values(grade=grade)
            )
        else:
            new_rows.append(
                {
                    "customer_id": cid,
                    "insurer": insurer,
                    "grade": grade,
                    "graded_on": today,
                    "created_at": now,
                }
            )
        summary = f"insurer grade {before[0]} → {grade}" if before else f"insurer grade {grade}"
        events.append(
            _event(
                cid,
                now,
                "grade.changed",
                summary,
                {"from": before[0] if before else None, "to": grade},
            )
        )
    if new_rows:
        bulk_insert(s, GradeHistory, new_rows)
    return events


def _event(
    customer_id: int, at: datetime, kind: str, summary: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "at": at,
        "kind": kind,
        "actor": ACTOR,
        "summary": summary,
        "data": data,
    }


# ---------------------------------------------------------------------------- the end


def flag_expired(s: Session, run_id: int | None, today: date) -> int:
    """Covers still active but past their validity become expired (history + timeline)."""
    now = utcnow()
    rows = s.execute(
        select(
            InsurerCover.id,
            InsurerCover.customer_id,
            InsurerCover.cover_id,
            InsurerCover.status,
            InsurerCover.valid_until,
            InsurerCover.granted_amount,
            InsurerCover.currency,
        ).where(InsurerCover.status.in_(ACTIVE), InsurerCover.valid_until < today)
    ).all()
    if not rows:
        return 0
    s.execute(
        update(InsurerCover),
        [
            {"id": r.id, "status": "expired", "updated_at": now, "last_sync_run_id": run_id}
            for r in rows
        ],
    )
    bulk_insert(
        s,
        CoverHistory,
        [
            {
                "insurer_cover_id": r.id,
                "customer_id": r.customer_id,
                "sync_run_id": run_id,
                "kind": "expired",
                "old": {"status": r.status},
                "new": {"status": "expired", "valid_until": r.valid_until.isoformat()},
                "at": now,
            }
            for r in rows
        ],
    )
    events = [
        _event(
            r.customer_id,
            now,
            "cover.expired",
            f"cover {r.cover_id} expired on {r.valid_until} "
            f"({money(r.granted_amount, r.currency)})",
            {"cover_id": r.cover_id},
        )
        for r in rows
        if r.customer_id is not None
    ]
    if events:
        bulk_insert(s, TimelineEvent, events)
    return len(rows)


def supersede_quarantine(s: Session, run: SyncRun) -> int:
    """Close the open entries this succeeded run has read the whole window of: received before
    it began (so what it read is at least as new) with `refetch_since` inside its window. The
    record of each was in that window, so the run applied a valid version (already closed as
    "applied"), quarantined it again (a newer entry, open), or the insurer no longer has it."""
    window = (
        InsurerQuarantine.refetch_since >= run.updated_since
        if run.updated_since is not None
        else InsurerQuarantine.id.is_not(None)
    )
    done = s.execute(
        update(InsurerQuarantine)
        .where(
            InsurerQuarantine.insurer == run.insurer,
            InsurerQuarantine.resolved_at.is_(None),
            InsurerQuarantine.at < run.started_at,
            or_(InsurerQuarantine.sync_run_id.is_(None), InsurerQuarantine.sync_run_id != run.id),
            window,
        )
        .values(resolved_at=utcnow(), resolved_by_run_id=run.id, resolution="superseded")
    )
    return done.rowcount or 0


def finish_sync_run(
    engine: Engine | None,
    run_id: int,
    status: str,
    high_water: datetime | None,
    today: date,
    error: str | None = None,
) -> dict[str, Any]:
    if status not in ("succeeded", "failed"):
        raise ValueError(f"unknown sync status {status!r}")
    with transaction(engine) as s:
        run = s.get(SyncRun, run_id, with_for_update=True)
        if run is None:
            raise ValueError(f"no sync run {run_id}")
        if run.status != "running":
            return summary_of(run)
        pages = (run.counts or {}).get("by_page", {})
        totals = {k: sum(int(p.get(k, 0)) for p in pages.values()) for k in COUNT_KEYS}
        totals["expired"] = flag_expired(s, run_id, today) if status == "succeeded" else 0
        if status == "succeeded":
            supersede_quarantine(s, run)
        totals["quarantine_resolved"] = (
            s.scalar(
                select(func.count())
                .select_from(InsurerQuarantine)
                .where(InsurerQuarantine.resolved_by_run_id == run_id)
            )
            or 0
        )
        totals["quarantine_open"] = (
            s.scalar(
                select(func.count())
                .select_from(InsurerQuarantine)
                .where(
                    InsurerQuarantine.insurer == run.insurer,
                    InsurerQuarantine.resolved_at.is_(None),
                )
            )
            or 0
        )
        totals["pages"] = len(pages)
        totals["unmatched_total"] = (
            s.scalar(
                select(func.count())
                .select_from(InsurerCover)
                .where(InsurerCover.insurer == run.insurer, InsurerCover.customer_id.is_(None))
            )
            or 0
        )
        finished = utcnow()
        started = run.started_at
        totals["duration_s"] = round((finished - started).total_seconds(), 3) if started else None
        run.counts = {**totals, "by_page": pages}
        run.status = status
        run.finished_at = finished
        run.high_water = high_water if status == "succeeded" else None
        run.error = error
        s.execute(delete(InsurerMatchKey).where(InsurerMatchKey.sync_run_id == run_id))
        return summary_of(run)


def summary_of(run: SyncRun) -> dict[str, Any]:
    counts = {k: v for k, v in (run.counts or {}).items() if k != "by_page"}
    return {
        "run_id": run.id,
        "insurer": run.insurer,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "updated_since": run.updated_since.isoformat() if run.updated_since else None,
        "error": run.error,
        **counts,
    }
