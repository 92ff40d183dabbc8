"""cobro.login_limits on both databases, with the clock given: free attempts, delays that
double, a name locked until unlocked, an address slowed but never locked, a success that
resets the name, unknown names counted like real ones, old counts forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from cobro.login_limits import (
    ADDRESS_FREE,
    ADDRESS_MAX_S,
    FORGET_AFTER,
    USER_FREE,
    USER_LOCK,
    Refusal,
    attempt_succeeded,
    begin_attempt,
    delay_s,
    locked_names,
    unlock,
)

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_delays_double_up_to_their_cap() -> None:
    assert [delay_s(n, 5, 60) for n in range(4, 13)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert delay_s(10**6, 5, 60) == 60


def test_a_name_waits_then_is_locked_until_unlocked(engine: Engine) -> None:
    for i in range(USER_FREE):
        assert begin_attempt(engine, "ann", f"10.0.0.{i}", at(i)) is None
    # past the free attempts: one second after the last failure
    assert begin_attempt(engine, "ann", "10.0.1.1", at(USER_FREE - 0.5)) == Refusal("wait", 1)
    refused = [begin_attempt(engine, "ann", "10.0.1.1", at(USER_FREE)) for _ in range(10)]
    assert refused[-1] == Refusal("locked", 0) and locked_names(engine) == {"ann"}
    assert begin_attempt(engine, "ann", "10.9.9.9", at(10**6)) == Refusal("locked", 0), (
        "a lockout does not wear off"
    )
    assert unlock(engine, "ann") is True and locked_names(engine) == set()
    assert unlock(engine, "ann") is False
    assert begin_attempt(engine, "ann", "10.0.2.1", at(10**6 + 1)) is None


def test_waiting_out_the_delay_gives_one_more_check(engine: Engine) -> None:
    t = 0.0
    for _ in range(USER_FREE):
        assert begin_attempt(engine, "ann", "a", at(t)) is None
    for n in range(USER_FREE, USER_LOCK):
        t += delay_s(n, USER_FREE, 60)
        assert begin_attempt(engine, "ann", "a", at(t)) is None, n
    assert begin_attempt(engine, "ann", "a", at(t + 3600 * 24)) == Refusal("locked", 0)


def test_success_resets_the_name_and_unknown_names_count_alike(engine: Engine) -> None:
    for i in range(USER_FREE - 1):
        begin_attempt(engine, "bob", "a", at(i))
        begin_attempt(engine, "no-such-user", "b", at(i))
    assert begin_attempt(engine, "bob", "a", at(10)) is None
    attempt_succeeded(engine, "bob", "a", at(10))
    for i in range(USER_FREE):
        assert begin_attempt(engine, "bob", "a", at(11 + i)) is None, "counting from zero"
    assert begin_attempt(engine, "no-such-user", "b", at(10)) is None
    assert begin_attempt(engine, "no-such-user", "b", at(10)) == Refusal("wait", 1)


def test_an_address_is_slowed_never_locked(engine: Engine) -> None:
    for i in range(ADDRESS_FREE):
        assert begin_attempt(engine, f"name{i}", "192.0.2.7", at(0)) is None
    assert begin_attempt(engine, "another", "192.0.2.7", at(0)) == Refusal("wait", 1)
    assert begin_attempt(engine, "another", "198.51.100.1", at(0)) is None, "other addresses"
    for _ in range(40):
        refusal = begin_attempt(engine, "spray", "192.0.2.7", at(1))
    assert refusal == Refusal("locked", 0), "the name sprayed from there is locked"
    refusal = begin_attempt(engine, "yet-another", "192.0.2.7", at(1))
    assert refusal == Refusal("wait", ADDRESS_MAX_S), "the address waits at most the cap"
    assert begin_attempt(engine, "yet-another", "192.0.2.7", at(2 + ADDRESS_MAX_S)) is None


def test_old_counts_are_forgotten(engine: Engine) -> None:
    for _ in range(USER_FREE):
        begin_attempt(engine, "ann", "a", at(0))
    later = FORGET_AFTER.total_seconds() + 1
    assert begin_attempt(engine, "ann", "a", at(later)) is None
