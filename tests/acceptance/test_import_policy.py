"""SPEC 5's import policy under a real durable-worker, and imports that would stop a worker.

The worker starts in an application directory of its own; another directory, on its
PYTHONPATH but outside the application, holds a workflow module that records its own import
in a marker file. Launching it (or anything from the standard library) ends the task failed
without importing it; ``--allow-module`` widens the policy. Modules of the application that
raise SystemExit or KeyboardInterrupt when imported fail their task and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import durable
from tests.acceptance.conftest import FAST
from tests.helpers.processes import REPO_ROOT, WorkerProcess

WORKFLOW = """
import pathlib
import durable

pathlib.Path({marker!r}).write_text("imported")

@durable.workflow
async def wf(ctx):
    return "ran"
"""


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The application directory, a directory outside it, and the worker's environment."""
    app, outside = tmp_path / "app", tmp_path / "elsewhere"
    app.mkdir()
    outside.mkdir()
    (app / "flows.py").write_text(WORKFLOW.format(marker=str(app / "flows-imported")))
    (app / "exits.py").write_text("raise SystemExit(3)\n")
    (app / "interrupts.py").write_text("raise KeyboardInterrupt\n")
    (outside / "outside_flows.py").write_text(WORKFLOW.format(marker=str(outside / "imported")))
    path = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "cli"), str(outside)])
    return app, outside, {"PYTHONPATH": path}


async def failure(client: durable.Client, reference: str) -> str:
    task = await client.launch(reference)
    with pytest.raises(durable.TaskFailed) as failed:
        await client.result(task.id, timeout=15)
    assert failed.value.error_type == "WorkflowNotFound"
    return str(failed.value.error_message)


async def test_only_the_application_directory_is_imported_on_demand(
    db_url: str, places: tuple[Path, Path, dict[str, str]]
) -> None:
    app, outside, env = places
    worker = WorkerProcess(db_url, *FAST, cwd=app, env=env)
    try:
        await worker.start()
        async with durable.Client(db_url) as client:
            assert "refusing to import 'outside_flows'" in await failure(client, "outside_flows:wf")
            assert "refusing to import 'unittest'" in await failure(client, "unittest.__main__:x")
            assert "refusing to import 'os'" in await failure(client, "os:system")
            assert "SystemExit: 3" in await failure(client, "exits:wf")
            assert "KeyboardInterrupt" in await failure(client, "interrupts:wf")
            # The worker went on: the application's own workflow runs.
            ok = await client.launch("flows:wf")
            assert await client.result(ok.id, timeout=15) == "ran"
        assert not (outside / "imported").exists()
        assert worker.process is not None and worker.process.returncode is None
    finally:
        await worker.stop()


async def test_allow_module_and_import_widen_the_policy(
    db_url: str, places: tuple[Path, Path, dict[str, str]]
) -> None:
    app, outside, env = places
    (outside / "imported_flows.py").write_text(WORKFLOW.format(marker=str(outside / "at-start")))
    worker = WorkerProcess(
        db_url,
        *FAST,
        "--allow-module",
        "outside_flows",
        "--import",
        "imported_flows",
        cwd=app,
        env=env,
    )
    try:
        await worker.start()
        assert (outside / "at-start").exists()  # --import runs at start
        async with durable.Client(db_url) as client:
            for reference in ("outside_flows:wf", "imported_flows:wf"):
                task = await client.launch(reference)
                assert await client.result(task.id, timeout=15) == "ran"
            assert "refusing to import 'json'" in await failure(client, "json:loads")
    finally:
        await worker.stop()
