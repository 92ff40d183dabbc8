"""Where work goes (pure). Roles rank viewer < collector < credit_manager < admin
(`cobro.users.ROLES`); a task's `assignee_role` names its queue."""

from __future__ import annotations

from cobro.users import ROLE_RANK

DEFAULT_QUEUE = "collector"  # a task created without a role waits here
OWNER_ROLES = tuple(role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK["collector"])


def queue_of(role: str | None) -> str:
    return (role or "").strip() or DEFAULT_QUEUE


def may_take(user_role: str, queue: str | None) -> bool:
    """A user may work a queue of their own role or of a role below it; admins work every
    queue, including one named after no user role (`assignee_role: legal`)."""
    if user_role == "admin":
        return True
    rank, needed = ROLE_RANK.get(user_role, -1), ROLE_RANK.get(queue_of(queue))
    return needed is not None and rank >= max(needed, ROLE_RANK["collector"])


def can_own(user_role: str) -> bool:
    """Customers are owned, and alerts assigned, to users who act: collector and above."""
    return user_role in OWNER_ROLES


def route(owner: str | None, owner_role: str | None, role: str | None) -> tuple[str | None, str]:
    """(assignee, queue) of a new task: the owner when the owner may do it, else nobody yet
    (it waits in its queue)."""
    queue = queue_of(role)
    if owner and owner_role and may_take(owner_role, queue):
        return owner, queue
    return None, queue
