"""Where work goes (pure): owner when the owner may do it, else the role's queue."""

from __future__ import annotations

from cobro.queues.routing import DEFAULT_QUEUE, can_own, may_take, route


def test_who_may_take_from_which_queue() -> None:
    assert may_take("collector", "collector") and not may_take("collector", "credit_manager")
    assert may_take("credit_manager", "collector") and may_take("credit_manager", "credit_manager")
    assert not may_take("viewer", "collector") and not may_take("viewer", "viewer")
    assert may_take("admin", "legal") and not may_take("credit_manager", "legal")
    assert may_take("collector", None) and may_take("collector", "")  # the default queue


def test_tasks_go_to_the_owner_who_may_do_them_else_to_the_queue() -> None:
    assert route("maria", "collector", "collector") == ("maria", "collector")
    assert route("maria", "collector", "credit_manager") == (None, "credit_manager")
    assert route("ana", "credit_manager", "credit_manager") == ("ana", "credit_manager")
    assert route(None, None, "collector") == (None, "collector")
    assert route("maria", "collector", None) == ("maria", DEFAULT_QUEUE)
    assert route("vic", "viewer", "collector") == (None, "collector")


def test_who_may_own_customers() -> None:
    assert [r for r in ("viewer", "collector", "credit_manager", "admin") if can_own(r)] == [
        "collector",
        "credit_manager",
        "admin",
    ]
