"""The demo's logins: an admin, a collector who owns the first 60 customers (so "my
customers" and "my tasks" have something in them), a viewer; a second start changes nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cobro.db import default_engine
from cobro.devkit.demo import load_demo
from cobro.devkit.devstack import DEMO_OWNED, demo_logins
from cobro.models import Customer
from cobro.queues.actions import set_owner
from cobro.settings import get_settings
from cobro.users import list_users

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def test_demo_collector_owns_customers(use_database: str, tmp_path: Path) -> None:
    load_demo(tmp_path / "demo", date(2026, 6, 30))
    logins = demo_logins(get_settings())
    assert [(u, r) for u, _, r in logins] == [
        ("demo", "admin"),
        ("collector", "collector"),
        ("viewer", "viewer"),
    ]
    engine = default_engine()
    assert {u["username"]: u["role"] for u in list_users(engine)}["collector"] == "collector"

    def owned() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).where(Customer.owner == "collector")) or 0

    assert owned() == DEMO_OWNED
    set_owner(engine, "C00001", "", "demo")  # someone changes an owner: a restart keeps it
    demo_logins(get_settings())
    assert owned() == DEMO_OWNED - 1
