"""Helpers shared by both sides of the suite: the standard library only.

`durable_app` runs in durable's environment and `dbos_app` in a separate one with DBOS
installed, so nothing here may import either system or a database driver.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULT_PREFIX = "BENCH-RESULT "
# W3: the idle time before each launch, drawn at random so that launches do not lock into one
# phase of a polling loop (DBOS polls its queues; durable's fallback poll is 5 s).
IDLE_GAP = (0.1, 0.2)
READY_LINE = "BENCH-READY"

# The workloads, with the sizes of a full run and of `--quick`.
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    w1_workflows: int = 2000
    w2_workflows: int = 2000
    w2_steps: int = 10
    w3_launches: int = 50
    w4_workflows: int = 500
    w4_sleep: float = 5.0
    w5_children: int = 1000
    w6_workflows: int = 10_000
    w6_sleep: float = 60.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            w1_workflows=500,
            w2_workflows=300,
            w3_launches=20,
            w4_workflows=200,
            w5_children=300,
            w6_workflows=2000,
            w6_sleep=15.0,
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Result:
    """What one run of one workload on one system measured (printed as one JSON line)."""

    system: str
    workload: str
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def emit(self) -> None:
        print(RESULT_PREFIX + json.dumps(self.__dict__), flush=True)


def parse_results(stdout: str) -> list[dict[str, Any]]:
    """The results an app printed, ignoring every other line (logs)."""
    return [
        json.loads(line[len(RESULT_PREFIX) :])
        for line in stdout.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    """The peak resident memory of a process, sampled every ``interval`` s on a thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stopping = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return

    def stop(self) -> float:
        self._stopping.set()
        self._thread.join()
        return self.peak


def database_url(server: str, name: str) -> str:
    """The URL of database ``name`` on the server ``server`` points at."""
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a worker: the repository (and the CLI package) importable."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'cli'}", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def spawn(argv: Sequence[str], env: dict[str, str], *, stdout: int | None = None) -> Any:
    """Start a worker process, cwd = the repository root.

    It stays in the launcher's process group: `benchmarks.run` starts each launcher in a group
    of its own and kills that group on a timeout, so no worker outlives its run.
    """
    return subprocess.Popen(list(argv), cwd=ROOT, env=env, stdout=stdout, stdin=subprocess.DEVNULL)


def stop(process: subprocess.Popen[Any], *, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill(process)


def kill(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


# -- what the Postgres backends wait on (sampled from pg_stat_activity) ------------------------


def waits_sql(database: str) -> str:
    """What each active backend of ``database`` is doing: a wait event, or CPU."""
    assert database.replace("_", "").isalnum(), database
    return (
        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity"
        f" WHERE datname = '{database}' AND state = 'active'"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )


WAIT_SAMPLE_INTERVAL = 0.05


def summarize_waits(samples: list[list[str]]) -> dict[str, float]:
    """Share of active-backend samples per wait event (top 4), and active backends on average."""
    counts: dict[str, int] = {}
    for sample in samples:
        for event in sample:
            counts[event] = counts.get(event, 0) + 1
    total = sum(counts.values()) or 1
    top = sorted(counts.items(), key=lambda item: -item[1])[:4]
    summary = {event: round(n / total, 3) for event, n in top}
    summary["active_backends"] = round(total / max(1, len(samples)), 2)
    return summary


# -- CPU accounting: where the time goes (worker, launcher, Postgres backends) -----------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def backend_pids(database: str) -> list[int]:
    """Postgres backends serving ``database`` (their title names it), when the server is local."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            pids.append(int(entry.name))
    return pids


@dataclass
class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by workers, launcher and backends."""

    database: str
    worker_pids: list[int]
    _start: dict[str, dict[int, float]] = field(default_factory=dict)
    _wall: float = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        times = os.times()
        return {
            "worker": {pid: cpu_seconds(pid) for pid in self.worker_pids},
            "launcher": {0: times.user + times.system},
            "postgres": {pid: cpu_seconds(pid) for pid in backend_pids(self.database)},
        }

    def start(self) -> None:
        self._start = self._sample()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        used = {
            f"{part}_cpu_s": sum(
                max(0.0, value - self._start[part].get(pid, 0.0))
                for pid, value in end[part].items()
            )
            for part in end
        }
        used["wall_s"] = time.monotonic() - self._wall
        return used


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float, what: str
) -> None:
    """Poll ``predicate`` until true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def log(message: str) -> None:
    """Progress on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)
