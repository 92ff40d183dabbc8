"""Helpers shared by the CLI modules."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit non-zero."""
    one_line = " ".join(message.split())
    err_console.print(f"error: {one_line}", markup=False)
    raise typer.Exit(code)
