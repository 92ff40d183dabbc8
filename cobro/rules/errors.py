"""Positioned rule errors: every problem in a rules file is reported as `path:line:col: message`
(1-based line and column), and all problems of a file are reported at once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class RuleMessage:
    """One positioned problem in a rules file."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class RuleError(Exception):
    """Raised when rules files are invalid; carries every positioned message."""

    def __init__(self, messages: Iterable[RuleMessage]) -> None:
        self.messages: list[RuleMessage] = sorted(set(messages))
        super().__init__("\n".join(str(m) for m in self.messages) or "invalid rules")

    def __str__(self) -> str:
        return "\n".join(str(m) for m in self.messages)


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """' (did you mean `x`?)' when a close candidate exists, else ''."""
    if not isinstance(word, str):
        return ""
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f" (did you mean `{matches[0]}`?)" if matches else ""
