"""Recorded histories, checked in, must keep replaying (Temporal's replayer tests, for us).

Each file holds a workflow's recorded events, its log and its result. Replaying it with
today's engine must hand back the same result without running any step again and without
a NonDeterminismError. ``*-v0.json`` files were recorded before delivery order was recorded:
the engine accepts that older form too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durable.replay.journal import Recorded
from tests.unit import golden_workflows
from tests.unit.harness import ListJournal, run

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    document = json.loads(path.read_text())
    journal = ListJournal()
    for seq, kind, label, payload in document["events"]:
        journal.events[seq] = Recorded(seq, kind, label, payload)
    for line_no, line in enumerate(document["log"]):
        journal.lines[line_no] = line
    golden_workflows.CALLS.clear()
    workflow = golden_workflows.WORKFLOWS[document["workflow"]]
    assert await run(workflow, journal) == document["result"]
    assert golden_workflows.CALLS == []
    assert journal.log() == document["log"]


def test_both_forms_are_checked_in() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"sequential-v0", "parallel_singles-v0", "helpers", "timeouts"} <= names
