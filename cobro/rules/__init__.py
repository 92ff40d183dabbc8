"""Cobro's YAML rules engine: risk classes and alerts (pure, compiled once, explainable).

    from cobro.rules import Ruleset
    rs = Ruleset.load("rules")                # RuleError lists every `path:line:col: message`
    c = rs.classifier.classify(facts)         # c.risk_class, c.rule_index, c.explanation
    fired = rs.alerts.evaluate(facts)         # [FiredAlert(name, severity, cooldown, message)]
    rs.hash                                   # sha256 of the files' names and bytes

New file kinds register a schema with `register_rule_file(RuleFileSpec(...))`.
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
    Ruleset,
    decide_episode,
)
from cobro.rules.errors import RuleError, RuleMessage
from cobro.rules.expr import Checked, Env, TextPos, check_expression
from cobro.rules.facts import FACTS, Fact
from cobro.rules.loader import (
    REGISTRY,
    Expression,
    FileContext,
    LoadedFile,
    MessageTemplate,
    RuleFileSpec,
    load_directory,
    load_file,
    parse_duration,
    register_rule_file,
)
from cobro.rules.schemas import SEVERITIES, StrictModel

__all__ = [
    "FACTS",
    "REGISTRY",
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
    "Ruleset",
    "StrictModel",
    "TextPos",
    "check_expression",
    "decide_episode",
    "load_directory",
    "load_file",
    "parse_duration",
    "register_rule_file",
]
