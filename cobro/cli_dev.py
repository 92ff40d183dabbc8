"""`cobro dev` and `cobro worker` (being written)."""


def register(app) -> None:  # type: ignore[no-untyped-def]
    return None
