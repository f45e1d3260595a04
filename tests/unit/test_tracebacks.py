"""A failed task's stored traceback shows the user's frames, not durable's machinery."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

import pytest

import durable
from durable.worker.tracebacks import DURABLE_DIR, user_traceback

HERE = Path(__file__).name


def card_declined() -> None:
    raise ValueError("card declined")


@durable.step
def charge() -> None:
    card_declined()


def test_durable_frames_are_left_out_and_the_users_kept() -> None:
    with pytest.raises(ValueError) as caught:
        charge()  # outside a workflow a step is a plain call, through durable's wrapper
    full = "".join(traceback.format_exception(caught.value))
    assert str(DURABLE_DIR / "workflow.py") in full  # the machinery is there to hide
    shown = user_traceback(caught.value)
    assert str(DURABLE_DIR) not in shown
    assert "in charge" in shown and "in card_declined" in shown
    assert shown.rstrip().endswith("ValueError: card declined")


async def test_a_step_run_in_a_thread_and_its_cause_keep_only_user_frames() -> None:
    async def step_like() -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, card_declined)
        except ValueError as error:
            raise durable.StepFailed("ValueError", str(error), step="charge") from error

    with pytest.raises(durable.StepFailed) as caught:
        await step_like()
    shown = user_traceback(caught.value)
    assert "concurrent/futures/thread.py" not in shown
    assert "The above exception was the direct cause of the following exception" in shown
    assert "in card_declined" in shown and "in step_like" in shown
    assert "StepFailed: step 'charge' failed: ValueError: card declined" in shown


def test_hidden_directories_can_be_chosen(tmp_path: Path) -> None:
    plumbing = tmp_path / "plumbing.py"
    plumbing.write_text("def call(fn):\n    return fn()\n")
    namespace: dict[str, object] = {}
    exec(compile(plumbing.read_text(), str(plumbing), "exec"), namespace)
    with pytest.raises(ValueError) as caught:
        namespace["call"](card_declined)  # type: ignore[operator]
    assert str(plumbing) in "".join(traceback.format_exception(caught.value))
    shown = user_traceback(caught.value, hidden_dirs=[tmp_path])
    assert str(plumbing) not in shown and HERE in shown
