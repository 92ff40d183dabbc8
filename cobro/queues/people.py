"""The users work can go to (active, collector or above) and the customers' owners."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from cobro.models import Customer, User
from cobro.queues.routing import OWNER_ROLES
from cobro.rules.errors import did_you_mean


@dataclass(frozen=True)
class Person:
    username: str
    display_name: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.display_name} ({self.username})" if self.display_name else self.username


def assignable(conn: Connection | Session) -> list[Person]:
    """Everyone a customer, an alert or a task may go to, by username (the user picker)."""
    rows = conn.execute(
        select(User.username, User.display_name, User.role)
        .where(User.active.is_(True), User.role.in_(OWNER_ROLES))
        .order_by(User.username)
    ).all()
    return [Person(*r) for r in rows]


def unknown_assignee(conn: Connection | Session, username: str) -> str | None:
    """Why `username` cannot be given work (no such user, inactive, a viewer), or None."""
    row = conn.execute(select(User.role, User.active).where(User.username == username)).first()
    if row is None:
        names = [p.username for p in assignable(conn)]
        return f"no user {username!r}{did_you_mean(username, names)}"
    if not row.active:
        return f"user {username!r} is deactivated"
    if row.role not in OWNER_ROLES:
        return f"user {username!r} is a {row.role}: work goes to {', '.join(OWNER_ROLES)} users"
    return None


def active_owners(conn: Connection | Session, customer_ids: Iterable[int]) -> dict[int, Person]:
    """customer id -> its owner, for the customers whose owner may still be given work."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(Customer.id, User.username, User.display_name, User.role)
        .join(User, User.username == Customer.owner)
        .where(Customer.id.in_(ids), User.active.is_(True), User.role.in_(OWNER_ROLES))
    ).all()
    return {cid: Person(name, display, role) for cid, name, display, role in rows}
