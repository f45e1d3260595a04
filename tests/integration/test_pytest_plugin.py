"""The pytest plugin (entry point ``pytest11``): ``durable_env`` under pytest-asyncio and xdist."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.processes import environment

TESTS = """
import pytest
import durable

DAY = 86400


@durable.workflow
async def nap(ctx: durable.Context, days: int) -> int:
    await ctx.sleep(days * DAY)
    return ctx.task_id


@pytest.mark.parametrize("n", range(4))
async def test_each_environment_is_its_own(durable_env, n: int) -> None:
    task = await durable_env.launch(nap, n + 1)
    assert await durable_env.result(task, timeout=10) == task.id
    assert [t.id for t in await durable_env.client.list_tasks()] == [task.id]
    assert durable_env.time_skipping


@pytest.mark.durable_env(time_skipping=False)
async def test_the_marker_sets_the_arguments(durable_env) -> None:
    assert not durable_env.time_skipping
"""


async def test_durable_env_runs_under_xdist(database_server_url: str, tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "test_flows_with_env.py").write_text(TESTS)
    env = environment(database_server_url, {"DURABLE_TEST_DATABASE_URL": database_server_url})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "-o",
        "asyncio_mode=auto",
        "test_flows_with_env.py",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 100)
    text = out.decode()
    assert process.returncode == 0, text
    assert "5 passed" in text, text
