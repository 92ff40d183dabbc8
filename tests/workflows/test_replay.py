"""Today's workflow code replays the histories of runs recorded on real servers.

Every file in `tests/histories/` is one run's history (`WorkflowHistory.to_json()`); the
workflow is read from its first event. DailySync and Classify were recorded across a
continue-as-new: each run of the chain is its own file (`<name>_<version>_run<n>.json`) and
is replayed on its own. A change to a workflow's commands that breaks one of these replays
would break the runs in flight at deploy time: put it behind `workflow.patched(...)`, or, for
a workflow whose runs are short-lived, record the new version next to the old ones with
`python -m tests.workflows.record_histories --version v2` (see that module) and say so.
The non-determinism cases prove the replayer does fail on such a change.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.changed_workflows import DailySyncBeforeTheRename, SystemCheckWithATimerFirst
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*.json"))
CHAIN_RUN = re.compile(r"^(?P<chain>.+)_run(?P<run>\d+)$")
# addresses and numbers that are nobody's: RFC 2606 domains, fictitious test numbers
RESERVED_DOMAIN = re.compile(
    r"@([\w-]+\.)*((example|localhost|test|invalid)|example\.(com|org|net))$"
)
FICTITIOUS_PHONES = {"+33612345678", "+15005550006"}


def load(path: Path) -> WorkflowHistory:
    """A run's history under its workflow id (child ids derive from it), which recent servers
    write in the first event; older recordings replay under the file's name."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    started = history.events[0].workflow_execution_started_event_attributes
    return WorkflowHistory(started.workflow_id or path.stem, history.events)


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def defn_name(cls: type) -> str:
    """The workflow type a class is registered as (the SDK keeps it on the class)."""
    return workflow._Definition.must_from_class(cls).name or cls.__name__


def chains() -> dict[str, list[WorkflowHistory]]:
    """The recorded continue-as-new chains, each in run order."""
    runs: dict[str, list[tuple[int, Path]]] = {}
    for path in HISTORIES:
        if m := CHAIN_RUN.match(path.stem):
            runs.setdefault(m["chain"], []).append((int(m["run"]), path))
    return {chain: [load(p) for _, p in sorted(found)] for chain, found in runs.items()}


def replayer(*workflows: type) -> Replayer:
    return Replayer(workflows=list(workflows or WORKFLOWS), data_converter=pydantic_data_converter)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_every_workflow_of_the_worker_has_a_recorded_history() -> None:
    recorded = {workflow_type(load(p)) for p in HISTORIES}
    registered = {defn_name(w) for w in WORKFLOWS}
    assert registered <= recorded, f"no history for {sorted(registered - recorded)}"
    assert recorded <= registered, f"histories of unknown workflows {sorted(recorded - registered)}"


def _is_continued(event: HistoryEvent) -> bool:
    return event.HasField("workflow_execution_continued_as_new_event_attributes")


@pytest.mark.parametrize("name", ["DailySync", "Classify"])
def test_continue_as_new_chain_is_recorded_whole(name: str) -> None:
    found = [runs for runs in chains().values() if workflow_type(runs[0]) == name]
    assert found, f"no {name} history recorded across a continue-as-new"
    for runs in found:
        assert len(runs) >= 2
        for before, after in itertools.pairwise(runs):
            assert _is_continued(before.events[-1]), "a run before the last continued as new"
            link = before.events[-1].workflow_execution_continued_as_new_event_attributes
            started = after.events[0].workflow_execution_started_event_attributes
            assert started.original_execution_run_id == link.new_execution_run_id
            assert started.input == link.input
        assert not _is_continued(runs[-1].events[-1])
        assert runs[-1].events[-1].HasField("workflow_execution_completed_event_attributes")


def _decoded_payloads(obj: object) -> list[str]:
    """The text of every payload in a history's JSON (payload data is base64 there)."""
    if isinstance(obj, list):
        return [text for item in obj for text in _decoded_payloads(item)]
    if not isinstance(obj, dict):
        return []
    if isinstance(obj.get("data"), str) and "metadata" in obj:
        return [base64.b64decode(obj["data"]).decode("utf-8", errors="replace")]
    return [text for value in obj.values() for text in _decoded_payloads(value)]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_history_holds_no_real_address_or_phone(path: Path) -> None:
    for text in _decoded_payloads(json.loads(path.read_text())):
        for address in re.findall(r"[\w.+-]+@[\w.-]+", text):
            address = address.rstrip(".")
            assert RESERVED_DOMAIN.search(address), f"{path.name}: real-looking {address}"
        for phone in re.findall(r"\+\d{8,15}", text):
            assert phone in FICTITIOUS_PHONES, f"{path.name}: real-looking {phone}"


# --- the replayer must fail on a change of commands -------------------------------------


def _runs_of(name: str) -> list[Path]:
    return [p for p in HISTORIES if workflow_type(load(p)) == name]


CHANGES = [
    # (workflow after the change, the histories it must fail on, words of the error)
    (SystemCheckWithATimerFirst, _runs_of("SystemCheck"), ["Timer", "ActivityTaskScheduled"]),
    # every run of the chain, the first and the continued ones
    (DailySyncBeforeTheRename, _runs_of("DailySync"), ["'sync_page'", "'sync_page_activity'"]),
]


@pytest.mark.parametrize(
    ("changed", "path", "words"),
    [(changed, path, words) for changed, paths, words in CHANGES for path in paths],
    ids=[f"{changed.__name__}-{path.stem}" for changed, paths, _ in CHANGES for path in paths],
)
async def test_a_change_of_commands_fails_the_replay(
    changed: type, path: Path, words: list[str]
) -> None:
    history = load(path)
    with pytest.raises(workflow.NondeterminismError) as raised:
        await replayer(changed).replay_workflow(history)
    assert all(w in str(raised.value) for w in words), raised.value
    # the workflow as it is replays the same history
    assert (await replayer().replay_workflow(history)).replay_failure is None


def test_there_are_changes_to_catch() -> None:
    assert all(paths for _, paths, _ in CHANGES)
