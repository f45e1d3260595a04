"""`durable export` and `durable check` (SPEC 11) against a real database and changed code.

Each test writes a workflow module into its own directory, runs it there with a worker, then
runs `durable check` from that directory as a subprocess: first against the same code, then
after changing the module on disk (what a deploy would bring).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import durable
from tests.helpers.processes import run_cli
from tests.helpers.waiting import wait_for_state

FLOWS = """
import durable

@durable.step
async def charge(order: str) -> str:
    return "ch-" + order

@durable.step
async def ship(order: str) -> str:
    return "sh-" + order

@durable.workflow
async def checkout(ctx: durable.Context, order: str) -> dict:
    charged = await charge(order)
    print("charged", charged)
    await ctx.sleep(3600)
    shipped = await ship(order)
    return {"charged": charged, "shipped": shipped}

@durable.workflow
async def quick(ctx: durable.Context, order: str) -> str:
    return await charge(order)
"""

# No bytecode: the changed module must be read again from its source (same size, same second).
NO_PYC = {"PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory holding a fresh workflow module, on sys.path; the module's name."""
    name = f"flows_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(FLOWS)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path, name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


async def _record(db_url: str, app_dir: Path, module: str) -> tuple[int, int]:
    """A finished `quick` task and a `checkout` suspended in its hour of sleep."""
    async with (
        durable.Worker(db_url, app_dir=app_dir, suspend_after=0.5) as _worker,
        durable.Client(db_url) as client,
    ):
        quick = await client.launch(f"{module}:quick", args=["o-1"])
        checkout = await client.launch(f"{module}:checkout", args=["o-2"])
        assert await client.result(quick.id, timeout=10) == "ch-o-1"
        await wait_for_state(client, checkout.id, "suspended", timeout=10)
    return quick.id, checkout.id


async def test_check_passes_unchanged_code_and_names_the_divergence(
    db_url: str, app: tuple[Path, str]
) -> None:
    app_dir, module = app
    quick, checkout = await _record(db_url, app_dir, module)

    same = await run_cli(db_url, "check", cwd=app_dir, env=NO_PYC)
    assert same.code == 0, same.stderr
    assert sorted(same.stdout.splitlines()) == sorted(
        [f"task {quick} ({module}:quick): ok", f"task {checkout} ({module}:checkout): ok"]
    )

    # A deploy that charges through another step: both recorded histories diverge at seq 0.
    (app_dir / f"{module}.py").write_text(FLOWS.replace("await charge(order)", "await ship(order)"))
    changed = await run_cli(db_url, "check", cwd=app_dir, env=NO_PYC)
    assert changed.code == 1, changed.stderr
    lines = dict(line.split(": ", 1) for line in changed.stdout.splitlines())
    assert lines[f"task {checkout} ({module}:checkout)"] == (
        "diverges at seq 0: recorded step 'charge', code asked for step 'ship'"
    )
    assert lines[f"task {quick} ({module}:quick)"].startswith("diverges at seq 0")

    # Filters: one task by id, or by workflow and state.
    one = await run_cli(db_url, "check", "--task", str(quick), cwd=app_dir, env=NO_PYC)
    assert (one.code, len(one.stdout.splitlines())) == (1, 1)
    complete = await run_cli(
        db_url, "check", "--state", "suspended", "--since", "1h", cwd=app_dir, env=NO_PYC
    )
    assert complete.stdout.splitlines() == [
        f"task {checkout} ({module}:checkout): "
        "diverges at seq 0: recorded step 'charge', code asked for step 'ship'"
    ]


async def test_a_change_after_the_recorded_part_replays(db_url: str, app: tuple[Path, str]) -> None:
    """The suspended task has not reached `ship` yet: renaming it changes nothing recorded."""
    app_dir, module = app
    _, checkout = await _record(db_url, app_dir, module)
    (app_dir / f"{module}.py").write_text(
        FLOWS.replace(
            "shipped = await ship(order)", "shipped = await ctx.step(ship, order, name='s')"
        )
    )
    result = await run_cli(db_url, "check", "--task", str(checkout), cwd=app_dir, env=NO_PYC)
    assert (result.code, result.stdout) == (0, f"task {checkout} ({module}:checkout): ok\n")


async def test_export_then_check_the_file_without_a_database(
    db_url: str, app: tuple[Path, str]
) -> None:
    app_dir, module = app
    quick, _ = await _record(db_url, app_dir, module)
    exported = await run_cli(db_url, "export", str(quick))
    assert exported.code == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert document["workflow"] == f"{module}:quick"
    assert document["args"] == ["o-1"] and document["kwargs"] == {}
    assert [(e["seq"], e["kind"], e["label"]) for e in document["events"]] == [
        (0, "step", "charge")
    ]
    assert document["events"][0]["payload"]["value"] == "ch-o-1"
    path = app_dir / "quick.json"
    path.write_text(exported.stdout)

    # No database at all: the URL points nowhere, and --history alone never connects.
    offline = "postgresql://nobody@127.0.0.1:1/none"
    ok = await run_cli(offline, "check", "--history", str(path), cwd=app_dir, env=NO_PYC)
    assert (ok.code, ok.stdout) == (0, f"task {quick} ({module}:quick): ok\n")

    (app_dir / f"{module}.py").write_text(FLOWS.replace("return await charge(order)", "return 1"))
    diverged = await run_cli(offline, "check", "--history", str(path), cwd=app_dir, env=NO_PYC)
    assert diverged.code == 1
    assert "diverges at seq 0: recorded step 'charge'" in diverged.stdout


async def test_bad_input_exits_2(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"events": 3}')
    result = await run_cli(db_url, "check", "--history", str(bad), cwd=tmp_path)
    assert result.code == 2 and "not a durable history" in result.stderr
    assert "Traceback" not in result.stderr
    missing = await run_cli(db_url, "check", "--history", str(tmp_path / "nope.json"))
    assert missing.code == 2
    assert (await run_cli(db_url, "check", "--since", "soon")).code == 2
    assert (await run_cli(db_url, "export", "424242")).code == 2


async def test_workflows_installed_elsewhere_need_allow_module(
    db_url: str, app: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    app_dir, module = app
    quick, _ = await _record(db_url, app_dir, module)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    from tests.helpers.processes import REPO_ROOT

    env = {
        **NO_PYC,
        "PYTHONPATH": os.pathsep.join([str(app_dir), str(REPO_ROOT), str(REPO_ROOT / "cli")]),
    }
    refused = await run_cli(db_url, "check", "--task", str(quick), cwd=elsewhere, env=env)
    assert refused.code == 1
    assert "cannot replay: refusing to import" in refused.stdout
    allowed = await run_cli(
        db_url, "check", "--task", str(quick), "--allow-module", module, cwd=elsewhere, env=env
    )
    assert (allowed.code, allowed.stdout) == (0, f"task {quick} ({module}:quick): ok\n")
