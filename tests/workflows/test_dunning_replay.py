"""Workflow code changes must replay the histories of workflows already running.

`tests/histories/dunning_life_v1.json` was recorded by `test_dunning_life` before the
`search-attributes-on-change` patch; today's `Dunning` must replay it without a
non-determinism error. Refresh with COBRO_RECORD_HISTORY=<file> pytest tests/test_dunning_life.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.dunning import Dunning

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("dunning_*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_dunning_histories_replay(path: Path) -> None:
    history = WorkflowHistory.from_json("dunning-LIFE1", path.read_text())
    replayer = Replayer(workflows=[Dunning], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_there_are_histories_to_replay() -> None:
    assert HISTORIES, "record one: COBRO_RECORD_HISTORY=... pytest tests/test_dunning_life.py"
