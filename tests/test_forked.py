"""forked_map: results in order from forked children, shared state by fork, errors raised."""

from __future__ import annotations

import os

import pytest

from cobro.forked import can_fork, forked_map

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def _square_where(shared: dict[str, int], item: int) -> tuple[int, int]:
    return item * item + shared["offset"], os.getpid()


def _fail_on_three(shared: object, item: int) -> int:
    if item == 3:
        raise ValueError("three")
    return item


def test_results_in_order_from_children() -> None:
    started: list[int] = []
    out = list(
        forked_map(
            _square_where,
            {"offset": 1},
            list(range(20)),
            workers=2,
            after_fork=lambda shared: started.append(1),
        )
    )
    assert [r for r, _ in out] == [i * i + 1 for i in range(20)]
    assert os.getpid() not in {pid for _, pid in out}
    assert started == []  # after_fork ran in the children, not here


def test_one_worker_runs_here() -> None:
    out = list(forked_map(_square_where, {"offset": 0}, [1, 2], workers=1))
    assert out == [(1, os.getpid()), (4, os.getpid())]


def test_a_child_error_is_raised() -> None:
    with pytest.raises(ValueError, match="three"):
        list(forked_map(_fail_on_three, None, [1, 2, 3, 4], workers=2))


def test_a_second_map_meanwhile_runs_here() -> None:
    outer = forked_map(_square_where, {"offset": 0}, [1, 2, 3], workers=2)
    first = next(outer)  # the outer map's pool is running
    inner = list(forked_map(_square_where, {"offset": 0}, [5, 6], workers=2))
    assert [pid for _, pid in inner] == [os.getpid(), os.getpid()]
    assert [first[0], *(r for r, _ in outer)] == [1, 4, 9]


def _die_on_two(shared: object, item: int) -> int:
    if item == 2:
        os.kill(os.getpid(), 9)  # this child only: killed as the OOM killer would
    return item


def test_a_child_that_dies_fails_the_map_instead_of_hanging() -> None:
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        list(forked_map(_die_on_two, None, [1, 2, 3, 4], workers=2))
    # the next map forks afresh
    assert [r for r, _ in forked_map(_square_where, {"offset": 0}, [1, 2], workers=2)] == [1, 4]
