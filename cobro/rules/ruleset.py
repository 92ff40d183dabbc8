"""Cobro's rules files, in order, and the `Ruleset` compiled from a directory of them.

    from cobro.rules.ruleset import Ruleset
    rs = Ruleset.load("rules")                # RuleError lists every `path:line:col: message`
    c = rs.classifier.classify(facts)         # c.risk_class, c.rule_index, c.explanation
    fired = rs.alerts.evaluate(facts)         # [FiredAlert(name, severity, cooldown, message)]
    rs.built("dunning.yaml")                  # what a file's spec built (None: file absent)
    rs.hash                                   # sha256 of the files' names and bytes
    rs.obligation_facts(conn, as_of, ids)     # insurer-obligation facts (insurance.yaml)
    rs.fill_limit_facts(conn, day, batch)     # limit facts from the exposure (exposure.yaml)

`Ruleset.SPECS` is the one list of the files a rules directory may hold. Each spec is a plain
`RuleFileSpec` defined next to the code that runs the file and imported here like any other
name; to add a file, define its spec and add it to the tuple after the files it reads from
(`FileContext.shared`: every file after `risk_classes.yaml` knows the class names). The rules
core (`expr`, `loader`, `engine`, `schemas`) imports none of the packages below: this module
is the only place where `cobro.rules` meets `cobro.exposure`, `cobro.dunning` and
`cobro.insurers` (policy terms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from cobro.dunning.rulefile import DUNNING
from cobro.exposure.rulefile import EXPOSURE
from cobro.insurers.terms_rulefile import INSURANCE
from cobro.rules.engine import AlertEvaluator, Classification, FiredAlert, RiskClassifier
from cobro.rules.errors import RuleError
from cobro.rules.loader import LoadedFile, RuleFileSpec, content_hash, load_directory, unknown_file
from cobro.rules.loader import load_file as _load_file
from cobro.rules.schemas import ALERTS, RISK_CLASSES


class Ruleset:
    """All rules files of a directory, loaded, validated and compiled, with a content hash."""

    SPECS: ClassVar[tuple[RuleFileSpec, ...]] = (RISK_CLASSES, ALERTS, EXPOSURE, DUNNING, INSURANCE)

    def __init__(self, directory: Path, files: dict[str, LoadedFile]) -> None:
        self.directory = directory
        self.files = files  # file name -> LoadedFile, in the order of SPECS
        self.hash = content_hash({name: f.content for name, f in files.items()})

    @classmethod
    def load(cls, directory: str | Path = "rules") -> Ruleset:
        """Load every rules file of `directory`; raise `RuleError` listing every problem."""
        directory = Path(directory)
        return cls(directory, load_directory(directory, cls.SPECS))

    @classmethod
    def spec(cls, filename: str) -> RuleFileSpec | None:
        return next((s for s in cls.SPECS if s.filename == filename), None)

    def built(self, filename: str) -> Any:
        loaded = self.files.get(filename)
        return loaded.built if loaded else None

    @property
    def classifier(self) -> RiskClassifier:
        return self.built(RISK_CLASSES.filename)

    @property
    def alerts(self) -> AlertEvaluator | None:
        return self.built(ALERTS.filename)

    def obligation_facts(
        self,
        conn: Any,
        as_of: date,
        ids: Sequence[int],
        id_range: tuple[int, int] | None = None,
        facts: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> dict[int, dict[str, Any]]:
        """The insurer-obligation facts (`days_to_declaration_deadline`, `stop_supply`...) of
        the customers `ids` that have insured open invoices, under this ruleset's
        insurance.yaml and exposure.yaml ({} without policy terms). `id_range`: `ids` are
        every customer with an id in that range (a page): read by range, not by id list.
        `facts`: their rule facts as of `as_of` (before the limit and obligation facts) when
        the caller has them: the unnamed-buyer conditions read them, not a new query."""
        from cobro.insurers.obligations_sql import ObligationRules, obligation_facts

        rules = ObligationRules.of(self)
        if not rules.any_terms or not ids:
            return {}
        if id_range is not None:
            lo, hi = id_range
            return obligation_facts(conn, as_of, rules, lo=lo, hi=hi, facts=facts)
        return obligation_facts(conn, as_of, rules, ids=ids, facts=facts)

    def fill_limit_facts(
        self, conn: Any, day: date, batch: Any, id_range: tuple[int, int] | None = None
    ) -> None:
        """Set `total_limit`, `over_limit` and `limit_usage` of each customer's facts in
        `batch` from its exposure under this ruleset's exposure.yaml (`cobro exposure`'s
        one definition). `id_range`: `batch` is every customer with an id in that range."""
        from cobro.exposure.rulefile import rules_of
        from cobro.exposure.sql import fill_limit_facts

        fill_limit_facts(conn, day, rules_of(self), batch, id_range)

    def evaluate(self, facts: Mapping[str, Any]) -> tuple[Classification, list[FiredAlert]]:
        """Classify, then evaluate alerts with `risk_class` set to the computed class."""
        cls = self.classifier.classify(facts)
        alerts = self.alerts
        if alerts is None:
            return cls, []
        return cls, alerts.evaluate({**facts, "risk_class": cls.risk_class})


def load_file(path: str | Path) -> LoadedFile:
    """Load one rules file on its own, its spec chosen by its name (no other file is read: a
    file that reads another's shared values is checked without them)."""
    path = Path(path)
    spec = Ruleset.spec(path.name)
    if spec is None:
        raise RuleError([unknown_file(str(path), path.name, Ruleset.SPECS)])
    return _load_file(path, spec)
