"""Real processes for acceptance tests: durable-worker and the durable CLI.

The worker logs JSON lines to stderr; `WorkerProcess.start` returns once the worker has said
"worker started" (a readiness line, not a sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def command(script: str) -> list[str]:
    """The installed console script if there is one next to this Python, else ``-m``."""
    installed = Path(sys.executable).parent / script
    if installed.exists():
        return [str(installed)]
    module = {"durable": "durable_cli.main", "durable-worker": "durable_cli.worker"}[script]
    return [sys.executable, "-m", module]


def environment(db_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: the test database and the source tree on the path."""
    env = dict(os.environ)
    env["DURABLE_DATABASE_URL"] = db_url
    env.pop("DATABASE_URL", None)
    paths = [str(REPO_ROOT), str(REPO_ROOT / "cli"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


@dataclass
class CliResult:
    """What a CLI command did."""

    code: int
    stdout: str
    stderr: str


async def run_cli(
    db_url: str | None,
    *args: str,
    timeout: float = 60,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    script: str = "durable",
) -> CliResult:
    """Run ``durable ARGS`` (or ``script ARGS``: ``durable-worker``) to completion."""
    process_env = environment(db_url or "", env)
    if db_url is None:
        process_env.pop("DURABLE_DATABASE_URL")
    process = await asyncio.create_subprocess_exec(
        *command(script),
        *args,
        cwd=cwd,
        env=process_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


class WorkerProcess:
    """A `durable-worker` child process with its JSON log lines collected."""

    def __init__(
        self,
        db_url: str,
        *args: str,
        cwd: Path = REPO_ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.args: Sequence[str] = args
        self.cwd = cwd
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._seen = asyncio.Condition()

    async def start(self, timeout: float = 30) -> WorkerProcess:
        """Start the worker and wait for its readiness line."""
        self.process = await asyncio.create_subprocess_exec(
            *command("durable-worker"),
            "--log-format",
            "json",
            "--log-level",
            "debug",
            *self.args,
            cwd=self.cwd,
            env=environment(self.db_url, self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for_log("worker started", timeout=timeout)
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(text))
            async with self._seen:
                self._seen.notify_all()
        async with self._seen:
            self._seen.notify_all()

    def has_log(self, event: str, **fields: Any) -> bool:
        """Whether a log line with this event (and fields) was written."""
        return any(
            line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
            for line in self.lines
        )

    async def wait_for_log(self, event: str, timeout: float = 30, **fields: Any) -> None:
        """Wait until the worker logs ``event``; fail with its output if it exits first."""

        def ready() -> bool:
            exited = self._reader is not None and self._reader.done()
            return self.has_log(event, **fields) or exited

        async with asyncio.timeout(timeout):
            async with self._seen:
                await self._seen.wait_for(ready)
        if not self.has_log(event, **fields):
            raise AssertionError(f"worker exited before {event!r}:\n" + "\n".join(self.raw))

    @property
    def pid(self) -> int:
        """The worker's process id."""
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        """Send a signal (SIGKILL, SIGTERM, SIGSTOP, ...)."""
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit; its exit code."""
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self) -> None:
        """Kill the process if it still runs (test teardown)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        if self._reader is not None:
            await self._reader
