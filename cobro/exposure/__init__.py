"""Exposure and limits per customer (`rules/exposure.yaml`): total authorised, insured part,
used, available, usage %.

    from cobro.exposure import compute_exposure, CustomerAmounts      # pure
    from cobro.exposure.sql import iter_exposures, exposures_for      # every customer, batches
    from cobro.exposure.rulefile import rules_of                      # from a loaded Ruleset

Definitions are in `cobro.exposure.compute`; the file's schema in `cobro.exposure.rulefile`.
"""

from cobro.exposure.compute import (
    DEFAULT_RULES,
    Condition,
    CustomerAmounts,
    DiscretionaryRules,
    Exposure,
    ExposureRules,
    UnnamedPolicy,
    UsedRules,
    compute_exposure,
)

__all__ = [
    "DEFAULT_RULES",
    "Condition",
    "CustomerAmounts",
    "DiscretionaryRules",
    "Exposure",
    "ExposureRules",
    "UnnamedPolicy",
    "UsedRules",
    "compute_exposure",
]
