"""Cobro's YAML rules engine: risk classes and alerts (pure, compiled once, explainable).

This package's top level is the engine alone: the expression language, the loader (a plain
compiler handed the `RuleFileSpec`s to load), the risk classes and alerts; it imports neither
the packages whose files it loads nor the database. Cobro's files, in order, and the
`Ruleset` that loads them are in `cobro.rules.ruleset`, which imports the specs of
`cobro.exposure` and `cobro.dunning`:

    from cobro.rules.ruleset import Ruleset
    rs = Ruleset.load("rules")                # RuleError lists every `path:line:col: message`
    c = rs.classifier.classify(facts)         # c.risk_class, c.rule_index, c.explanation
    fired = rs.alerts.evaluate(facts)         # [FiredAlert(name, severity, cooldown, message)]
    rs.hash                                   # sha256 of the files' names and bytes
"""

from cobro.rules.engine import (
    AlertEvaluator,
    Classification,
    ConditionTrace,
    EpisodeDecision,
    EpisodeState,
    Explanation,
    FiredAlert,
    PredicateSet,
    RiskClassifier,
    decide_episode,
)
from cobro.rules.errors import RuleError, RuleMessage
from cobro.rules.expr import Checked, Env, TextPos, check_expression, show_value
from cobro.rules.facts import FACTS, Fact
from cobro.rules.loader import (
    Expression,
    FileContext,
    LoadedFile,
    MessageTemplate,
    RuleFileSpec,
    parse_duration,
)
from cobro.rules.schemas import ALERTS, RISK_CLASSES, SEVERITIES, StrictModel, facts_env

__all__ = [
    "ALERTS",
    "FACTS",
    "RISK_CLASSES",
    "SEVERITIES",
    "AlertEvaluator",
    "Checked",
    "Classification",
    "ConditionTrace",
    "Env",
    "EpisodeDecision",
    "EpisodeState",
    "Explanation",
    "Expression",
    "Fact",
    "FileContext",
    "FiredAlert",
    "LoadedFile",
    "MessageTemplate",
    "PredicateSet",
    "RiskClassifier",
    "RuleError",
    "RuleFileSpec",
    "RuleMessage",
    "StrictModel",
    "TextPos",
    "check_expression",
    "decide_episode",
    "facts_env",
    "parse_duration",
    "show_value",
]
