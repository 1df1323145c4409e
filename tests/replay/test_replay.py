"""Every saved history must replay on the current workflow code: determinism guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.keys import TEST_CONVERTER
from tests.replay.record import ALL, HISTORIES
from worker import WORKFLOWS, workflow_runner

SAVED = sorted(HISTORIES.glob("*.json"))


def test_every_scenario_has_a_saved_history() -> None:
    """Every scenario is recorded; a history of a retired scenario stays while an order can
    still be on its path (none before v1: the v1 baseline replaced every earlier history)."""
    assert set(ALL) <= {p.stem for p in SAVED}


@pytest.mark.parametrize("path", SAVED, ids=[p.stem for p in SAVED])
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=TEST_CONVERTER,
        workflow_runner=workflow_runner(strict=True),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
