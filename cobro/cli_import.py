"""`cobro import ...` (being written)."""


def register(app) -> None:  # type: ignore[no-untyped-def]
    return None
