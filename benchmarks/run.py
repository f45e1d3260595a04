"""The benchmark suite: the same workloads on durable and on DBOS Transact, in one run.

    python -m benchmarks.run [--quick] [--repeat N] [--only W1,W3,L,S] [--systems durable,dbos]

Run it from the repository root with durable's environment (the one with durable installed);
DBOS lives in a separate one (``pip install -r benchmarks/requirements.txt``), found with
``--dbos-python``, ``$DBOS_PYTHON`` or ``.venv-bench/bin/python``.

Every run of a workload on a system is a separate launcher process (``benchmarks.durable_app``
or ``benchmarks.dbos_app``) that creates a fresh database, starts its worker process(es) with
the same concurrency, launches from its own process, measures and stops them; this script runs
those ``--repeat`` times, alternating the systems, and prints the medians (min–max) with the
durable/DBOS ratios. It also runs pgbench (L), W1 with 1, 2 and 4 workers (S), and writes
``benchmarks/results/<date>-<host>.md``, ``.json`` and the scaling plot ``-scaling.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_SERVER, ROOT, WORKLOADS, Sizes, bench_env, parse_results

ALL = (*WORKLOADS, "L", "S")  # L runs LN too
SYSTEMS = ("durable", "dbos")
RESULTS_DIR = ROOT / "benchmarks" / "results"
HIGHER, LOWER = "higher", "lower"
RETRIES = 2


@dataclass(frozen=True)
class Row:
    """One line of the main table."""

    workload: str
    figure: str
    metric: str
    better: str


ROWS = (
    Row("W1", "workflows/s", "workflows_per_s", HIGHER),
    Row("W2", "steps/s", "steps_per_s", HIGHER),
    Row("W3", "launch→complete p50, ms", "p50_ms", LOWER),
    Row("W3", "launch→complete p99, ms", "p99_ms", LOWER),
    Row("W4", "s from restart to all complete", "seconds_after_restart", LOWER),
    Row("W5", "s until the parent completes", "seconds", LOWER),
    Row("W6", "worker RSS when the last one started its sleep, MB", "rss_mb", LOWER),
    Row("W6", "worker peak RSS during the run, MB", "rss_peak_mb", LOWER),
    Row("W6", "timer lateness p99, ms", "lateness_p99_ms", LOWER),
)

DESCRIPTIONS = {
    "W1": "{w1_workflows:,} workflows of 1 step, launched with the worker running",
    "W2": "{w2_workflows:,} workflows of {w2_steps} steps",
    "W3": "one 1-step workflow launched while the worker is idle, {w3_launches} times",
    "W4": "{w4_workflows} workflows: a step, then a {w4_sleep:g} s sleep; worker SIGKILLed "
    "mid-way (half complete, some still held by it) and a new one started",
    "W5": "one parent fanning out to {w5_children:,} children and awaiting them all",
    "W6": "{w6_workflows:,} workflows suspended on timers {w6_sleep:g} s away",
}

DBOS_NOTES = [
    "- Same workflows: 1 or 10 steps that return their argument, a step then `DBOS.sleep`, a "
    "parent enqueueing children; launched with `DBOSClient.enqueue` from the launcher process "
    "(4 threads, as durable's launcher runs 4 launches at once), run by `DBOS.launch()`ed "
    "worker processes (one executor id each) on a queue with `worker_concurrency` = the "
    "concurrency.",
    "- DBOS queues are polled, not notified; the suite polls every `--dbos-poll` s (DBOS's "
    "default is 1 s). W3 waits with `handle.get_result(polling_interval_sec=0.001)`, durable "
    "with `client.result` (LISTEN/NOTIFY).",
    "- A sleeping DBOS workflow stays in its worker's memory and holds its queue slot, so W4 "
    "and W6 use a queue without a concurrency limit (durable suspends such tasks: no slot, no "
    "memory). W6 workflows are `async` (10,000 coroutines rather than 10,000 threads).",
    "- W4: the kill lands once half the workflows are complete while the worker still holds "
    "others. The new DBOS process has the killed one's executor id, so `DBOS.launch()` "
    "recovers its PENDING workflows at once; durable's new worker takes over the dead one's "
    "tasks when its lease expires (`--lease-timeout`, checked every heartbeat), as it cannot "
    "tell a dead worker from a slow one sooner. Suspended tasks need no takeover.",
    "- W5: the parent enqueues 1,000 children on the same queue and collects their results one "
    "after the other (`handle.get_result()`, DBOS's documented fan-out); durable's parent "
    "starts them with `asyncio.gather(ctx.start(...))` and gathers `handle.result()`.",
]

# -- running -----------------------------------------------------------------------------------


class Runner:
    """Runs launcher processes one at a time, each in its own process group."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.results: list[dict[str, Any]] = []

    def app_argv(self, system: str, workload: str, workers: int = 1) -> list[str]:
        o = self.options
        common = [
            workload,
            "--server", o.server,
            "--concurrency", str(o.concurrency),
            "--workers", str(workers),
            "--timeout", str(o.timeout),
        ]  # fmt: skip
        if o.quick:
            common.append("--quick")
        if o.keep_databases:
            common.append("--keep-database")
        if system == "durable":
            return [
                sys.executable, "-m", "benchmarks.durable_app", *common,
                "--lease-timeout", str(o.lease_timeout),
            ]  # fmt: skip
        return [
            o.dbos_python, "-m", "benchmarks.dbos_app", "run", *common,
            "--poll", str(o.dbos_poll),
            "--style", o.dbos_style,
        ]  # fmt: skip

    def run(self, label: str, argv: Sequence[str], timeout: float) -> list[dict[str, Any]]:
        """Run one launcher; its results (or one error result) tagged with ``label``.

        A run that found the server out of connections (the machine may be shared) is run
        again, up to RETRIES times, after a pause.
        """
        for attempt in range(RETRIES + 1):
            results = self._run_once(label, argv, timeout)
            if attempt == RETRIES or not any(
                "too many clients" in str(r.get("error")) for r in results
            ):
                break
            print(f"{label}: the server is out of connections; again in 10 s", file=sys.stderr)
            time.sleep(10)
        for result in results:
            self.results.append(result)
            _progress(result)
        return results

    def _run_once(self, label: str, argv: Sequence[str], timeout: float) -> list[dict[str, Any]]:
        load = os.getloadavg()[0]
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as errors:
            process = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=bench_env(),
                stdout=subprocess.PIPE,
                stderr=errors,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            try:
                stdout, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                stdout = ""
            except BaseException:
                _kill_group(process)
                raise
            finally:
                _kill_group(process)  # workers left behind by a launcher that crashed
            errors.seek(0)
            stderr = errors.read()
        results = parse_results(stdout)
        if not results:
            tail = " | ".join(stderr.strip().splitlines()[-3:])
            results = [{"system": "?", "workload": label, "metrics": {}, "info": {}, "error": (
                f"no result (exit {process.returncode}): {tail}"
            )}]  # fmt: skip
        for result in results:
            result["label"] = label
            result["info"]["load1_before"] = load
            result["info"]["run_s"] = time.monotonic() - started
        return results


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _progress(result: dict[str, Any]) -> None:
    metrics = ", ".join(f"{k} {v:,.1f}" for k, v in result["metrics"].items())
    status = f"ERROR {result['error']}" if result.get("error") else metrics
    stamp = datetime.now().strftime("%H:%M:%S")
    print(
        f"[{stamp}] {result['label']:<14} {result['system']:<8} {status}"
        f"  ({result['info'].get('run_s', 0):.0f} s, load {result['info']['load1_before']:.1f})",
        file=sys.stderr,
        flush=True,
    )


def run_suite(options: argparse.Namespace) -> Runner:
    runner = Runner(options)
    sizes = Sizes.quick() if options.quick else Sizes()
    timeout = options.timeout + 180
    for workload in WORKLOADS:
        if workload not in options.only:
            continue
        repeats = 1 if workload == "W6" and not options.repeat_w6 else options.repeat
        extra = sizes.w6_sleep if workload == "W6" else 0
        for _ in range(repeats):
            for system in options.systems:
                runner.run(workload, runner.app_argv(system, workload), timeout + extra)
    if "L" in options.only:
        run_ceiling(runner, options)
    if "S" in options.only:
        for workers in options.scaling:
            if workers == 1 and "W1" in options.only:
                continue  # W1's own runs are the one-worker point
            for system in options.systems:
                runner.run(f"S{workers}", runner.app_argv(system, "W1", workers), timeout)
    return runner


def run_ceiling(runner: Runner, options: argparse.Namespace) -> None:
    """L (and LN, with NOTIFY): pgbench at the workers' concurrency and at one client."""
    for _ in range(options.repeat):
        for notify in (False, True):
            for clients in sorted({options.concurrency, 1}, reverse=True):
                argv = [
                    sys.executable, "-m", "benchmarks.ceiling",
                    "--clients", str(clients),
                    "--seconds", str(options.pgbench_seconds),
                    "--server", options.server,
                ]  # fmt: skip
                if notify:
                    argv.append("--notify")
                if options.pgbench:
                    argv += ["--pgbench", options.pgbench]
                label = f"{'LN' if notify else 'L'}{clients}"
                runner.run(label, argv, options.pgbench_seconds + 120)


# -- reporting ---------------------------------------------------------------------------------


def values(results: list[dict[str, Any]], label: str, system: str, metric: str) -> list[float]:
    return [
        r["metrics"][metric]
        for r in results
        if r["label"] == label and r["system"] == system and metric in r["metrics"]
    ]


def errors_of(results: list[dict[str, Any]], label: str, system: str) -> list[str]:
    return [
        str(r["error"])
        for r in results
        if r["label"] == label and r.get("error") and r["system"] in (system, "?")
    ]


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(vals: list[float]) -> str:
    if not vals:
        return "n/a"
    median = statistics.median(vals)
    if len(vals) == 1:
        return fmt(median)
    return f"{fmt(median)} ({fmt(min(vals))}–{fmt(max(vals))})"


def median_or_none(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def target(
    row: Row, durable: float | None, dbos: float | None, ceiling: float | None, o: Any
) -> tuple[str, str]:
    """The target of a row and whether this run met it."""
    if row.workload == "W1":
        ok = None if durable is None or not dbos else durable / dbos >= 10
        return "≥ 10× DBOS", verdict(ok)
    if row.workload == "W2":
        if durable is None or ceiling is None:
            return "≥ 50% of L", "n/a"
        return "≥ 50% of L", f"{verdict(durable >= ceiling / 2)} ({durable / ceiling:.0%} of L)"
    limits = {
        "p50_ms": 5.0,
        "p99_ms": 20.0,
        "seconds_after_restart": o.lease_timeout + 2,
        "seconds": 3.0,
        "rss_mb": 150.0,
        "rss_peak_mb": 150.0,
        "lateness_p99_ms": 1000.0,
    }
    limit = limits[row.metric]
    unit = {"seconds": " s", "seconds_after_restart": " s"}.get(row.metric, " ms")
    if row.metric.startswith("rss"):
        unit = " MB"
    text = f"< {limit:g}{unit}"
    if row.metric == "seconds_after_restart":
        text = f"≤ lease {o.lease_timeout:g} s + 2 s"
    return text, verdict(None if durable is None else durable < limit)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def main_table(results: list[dict[str, Any]], o: Any) -> list[str]:
    ceiling = median_or_none(values(results, f"L{o.concurrency}", "postgres", "tps"))
    lines = [
        "| id | figure | durable | DBOS | durable/DBOS | target (durable) | |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in ROWS:
        if row.workload not in o.only:
            continue
        d_vals = values(results, row.workload, "durable", row.metric)
        b_vals = values(results, row.workload, "dbos", row.metric)
        d, b = median_or_none(d_vals), median_or_none(b_vals)
        ratio = f"{d / b:.2f}×" if d is not None and b else "n/a"
        goal, met = target(row, d, b, ceiling, o)
        arrow = "↑" if row.better == HIGHER else "↓"
        d_cell = cell(d_vals) if d_vals or "durable" not in o.systems else _error_cell(
            results, row.workload, "durable"
        )  # fmt: skip
        b_cell = cell(b_vals) if b_vals or "dbos" not in o.systems else _error_cell(
            results, row.workload, "dbos"
        )  # fmt: skip
        lines.append(
            f"| {row.workload} | {row.figure} {arrow} | {d_cell} | {b_cell} | {ratio}"
            f" | {goal} | {met} |"
        )
    return lines


def _error_cell(results: list[dict[str, Any]], label: str, system: str) -> str:
    errors = errors_of(results, label, system)
    return f"n/a: {errors[0][:60]}" if errors else "n/a"


def ceiling_lines(results: list[dict[str, Any]], o: Any) -> list[str]:
    lines = []
    for prefix, what in (
        ("L", "one single-row INSERT+COMMIT per transaction"),
        ("LN", "the same with `pg_notify` in the transaction"),
    ):
        for clients in sorted({o.concurrency, 1}, reverse=True):
            label = f"{prefix}{clients}"
            vals = values(results, label, "postgres", "tps")
            plural = "s" if clients > 1 else ""
            if vals:
                lines.append(
                    f"- **{prefix}**, pgbench, {what}, {clients} client{plural}: "
                    f"**{cell(vals)} tps**"
                )
            elif errors_of(results, label, "postgres"):
                error = errors_of(results, label, "postgres")[0]
                lines.append(f"- **{prefix}**, {clients} client{plural}: n/a ({error})")
    return lines


def scaling_data(results: list[dict[str, Any]], o: Any) -> dict[str, dict[str, list[float]]]:
    data: dict[str, dict[str, list[float]]] = {}
    for system in o.systems:
        per = {}
        for workers in o.scaling:
            label = "W1" if workers == 1 and "W1" in o.only else f"S{workers}"
            vals = values(results, label, system, "workflows_per_s")
            if vals:
                per[str(workers)] = vals
        if per:
            data[system] = per
    return data


def scaling_table(data: dict[str, dict[str, list[float]]], o: Any) -> list[str]:
    if not data:
        return []
    lines = [
        "| worker processes | durable workflows/s | DBOS workflows/s | durable/DBOS |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for workers in o.scaling:
        d = data.get("durable", {}).get(str(workers), [])
        b = data.get("dbos", {}).get(str(workers), [])
        ratio = (
            f"{statistics.median(d) / statistics.median(b):.2f}×" if d and b else "n/a"
        )  # fmt: skip
        lines.append(f"| {workers} | {cell(d)} | {cell(b)} | {ratio} |")
    return lines


def cpu_lines(results: list[dict[str, Any]], o: Any) -> list[str]:
    """Where the time went in the throughput runs: CPU by process, and Postgres's waits."""
    lines = []
    labels = [w for w in ("W1", "W2", "W5") if w in o.only]
    labels += [f"S{w}" for w in o.scaling if "S" in o.only and not (w == 1 and "W1" in o.only)]
    cores = os.cpu_count() or 1
    for label in labels:
        for system in o.systems:
            runs = [
                r["info"]
                for r in results
                if r["label"] == label and r["system"] == system and "cpu" in r["info"]
            ]
            if not runs:
                continue
            cpu = {k: statistics.fmean(run["cpu"][k] for run in runs) for k in runs[0]["cpu"]}
            busy = cpu["worker_cpu_s"] + cpu["launcher_cpu_s"] + cpu["postgres_cpu_s"]
            lines.append(
                f"| {label} | {system} | {cpu['wall_s']:.1f} | {cpu['worker_cpu_s']:.1f} "
                f"| {cpu['launcher_cpu_s']:.1f} | {cpu['postgres_cpu_s']:.1f} "
                f"| {busy / (cpu['wall_s'] * cores):.0%} | {_waits(runs)} |"
            )
    if not lines:
        return []
    return [
        "| run | system | wall s | worker(s) CPU s | launcher CPU s | Postgres backends CPU s "
        f"| busy, of {cores} cores | Postgres backends: active on average; what they wait on |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *lines,
    ]


def _waits(runs: list[dict[str, Any]]) -> str:
    """Mean over the runs of the sampled wait events (pg_stat_activity) of active backends."""
    waits = [run["waits"] for run in runs if run.get("waits")]
    if not waits:
        return "n/a"
    active = statistics.fmean(w.get("active_backends", 0.0) for w in waits)
    events = {k for w in waits for k in w if k != "active_backends"}
    share = {k: statistics.fmean(w.get(k, 0.0) for w in waits) for k in events}
    top = sorted(share.items(), key=lambda item: -item[1])[:3]
    return f"{active:.1f}; " + ", ".join(f"{k} {v:.0%}" for k, v in top)


# -- machine and versions ----------------------------------------------------------------------


def machine(o: Any) -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n")
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    model = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    info: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "durable_commit": _git("rev-parse", "--short", "HEAD")
        + ("-dirty" if _git("status", "--porcelain", "--", "durable", "cli") else ""),
    }
    info.update(asyncio.run(_postgres_info(o.server)))
    if "dbos" in o.systems:
        info["dbos"] = _dbos_version(o.dbos_python)
    return info


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return done.stdout.strip()


async def _postgres_info(server: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(server)
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
        }
    finally:
        await conn.close()
    return {"postgres": version, "postgres_settings": settings}


def _dbos_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('dbos'))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


# -- output ------------------------------------------------------------------------------------


def report(runner: Runner, o: Any, info: dict[str, Any], plot: str | None) -> str:
    results = runner.results
    sizes = Sizes.quick() if o.quick else Sizes()
    lines = [
        f"# Benchmark run {info['date']} on {info['host']}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gb']} GB RAM, Linux "
        f"{info['kernel']}; PostgreSQL {info['postgres']} on the same machine "
        f"({', '.join(f'{k}={v}' for k, v in info['postgres_settings'].items())}); "
        f"Python {info['python']}; durable {info['durable_commit']}"
        + (f"; DBOS Transact {info['dbos']}" if "dbos" in info else "")
        + ".",
        "",
        f"Settings: concurrency **{o.concurrency}** per worker process for both systems; "
        f"{'quick sizes, ' if o.quick else ''}median (min–max) of {o.repeat} run(s) per "
        f"system, alternating (W6 and the 2- and 4-worker scaling points: "
        f"{o.repeat if o.repeat_w6 else 1} run); every run on a fresh database. "
        f"durable: `durable-worker --concurrency {o.concurrency}` (W4: `--lease-timeout "
        f"{o.lease_timeout:g} --heartbeat-interval 1`)."
        + (
            f" DBOS: `{o.dbos_style}` workflows (W6: async), queue "
            f"`worker_concurrency={o.concurrency}`, `polling_interval_sec={o.dbos_poll:g}`."
            if "dbos" in o.systems
            else ""
        ),
        "",
        _load_line(results),
        "",
        *main_table(results, o),
        "",
        *ceiling_lines(results, o),
        "",
    ]
    data = scaling_data(results, o)
    if data:
        lines += [
            f"Scaling: W1 ({sizes.w1_workflows:,} workflows) with "
            f"{', '.join(map(str, o.scaling))} worker processes on one Postgres, each with "
            f"concurrency {o.concurrency}:",
            "",
            *scaling_table(data, o),
            "",
        ]
        if plot:
            lines += [f"![scaling]({Path(plot).name})", ""]
    cpu = cpu_lines(results, o)
    if cpu:
        lines += [
            "Where the time went in the throughput runs (means over the runs; CPU from /proc; "
            "Postgres = the backends serving the benchmark database, not its background "
            "processes; waits sampled from pg_stat_activity every 50 ms; CPU = running):",
            "",
            *cpu,
            "",
        ]
    lines += ["Workloads:", ""]
    lines += [
        f"- {w}: {DESCRIPTIONS[w].format(**sizes.to_json())}" for w in WORKLOADS if w in o.only
    ]
    if "dbos" in o.systems:
        lines += ["", "How the workloads map onto DBOS:", "", *DBOS_NOTES]
    failures = [r for r in results if r.get("error")]
    if failures:
        lines += ["", "Errors:", ""]
        lines += [f"- {r['label']} {r['system']}: {r['error']}" for r in failures]
    return "\n".join(lines) + "\n"


def _load_line(results: list[dict[str, Any]]) -> str:
    loads = [r["info"]["load1_before"] for r in results if "load1_before" in r["info"]]
    if not loads:
        return ""
    median = statistics.median(loads)
    return (
        f"Machine load (1-minute load average before each run): median {median:.1f}, "
        f"max {max(loads):.1f}. The machine is shared; a load above the core count means "
        "other work competed for the CPUs during the run."
    )


def write_outputs(runner: Runner, o: Any, info: dict[str, Any]) -> tuple[Path, Path, str | None]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now().strftime('%Y-%m-%d-%H%M')}-{info['host']}"
    json_path = RESULTS_DIR / f"{stem}.json"
    scaling = scaling_data(runner.results, o)
    payload = {
        "machine": info,
        "options": {k: v for k, v in vars(o).items() if k != "dbos_python"},
        "sizes": (Sizes.quick() if o.quick else Sizes()).to_json(),
        "scaling": scaling,
        "results": runner.results,
    }
    json_path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    plot = make_plot(json_path, RESULTS_DIR / f"{stem}-scaling.png", o) if scaling else None
    md_path = RESULTS_DIR / f"{stem}.md"
    md_path.write_text(report(runner, o, info, plot))
    return md_path, json_path, plot


def make_plot(json_path: Path, png: Path, o: Any) -> str | None:
    """Draw the scaling plot with whichever environment has matplotlib."""
    for python in dict.fromkeys([sys.executable, o.dbos_python]):
        if not python:
            continue
        done = subprocess.run(
            [python, "-m", "benchmarks.plot", str(json_path), str(png)],
            cwd=ROOT,
            env=bench_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return str(png)
    print("no matplotlib in either environment: no scaling plot", file=sys.stderr)
    return None


# -- command line ------------------------------------------------------------------------------


def find_dbos_python(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("DBOS_PYTHON"), ROOT / ".venv-bench/bin/python"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: ~2 minutes")
    parser.add_argument("--repeat", type=int, default=None, help="runs per system [2; quick 1]")
    parser.add_argument("--repeat-w6", action="store_true", help="repeat W6 too (60 s each)")
    parser.add_argument("--only", default=",".join(ALL), help=f"subset of {','.join(ALL)}")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="durable,dbos")
    parser.add_argument("--concurrency", type=int, default=50, help="per worker, both systems")
    parser.add_argument("--scaling", default="1,2,4", help="worker processes for S")
    parser.add_argument("--lease-timeout", type=float, default=5.0, help="durable, W4")
    parser.add_argument("--dbos-python", default=None, help="python of DBOS's environment")
    parser.add_argument("--dbos-poll", type=float, default=0.01, help="DBOS queue polling, s")
    parser.add_argument("--dbos-style", choices=["sync", "async"], default="sync")
    parser.add_argument("--pgbench", default=None, help="pgbench binary")
    parser.add_argument("--pgbench-seconds", type=float, default=None, help="[3; quick 2]")
    parser.add_argument("--server", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER))
    parser.add_argument("--timeout", type=float, default=300.0, help="per launcher wait, s")
    parser.add_argument(
        "--keep-databases", action="store_true", help="keep each run's database (bench_*)"
    )
    o = parser.parse_args(argv)
    o.only = [w.strip().upper() for w in o.only.split(",") if w.strip()]
    o.systems = [s.strip().lower() for s in o.systems.split(",") if s.strip()]
    o.scaling = [int(w) for w in o.scaling.split(",")]
    unknown = [w for w in o.only if w not in ALL] + [s for s in o.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    if o.repeat is None:
        o.repeat = 1 if o.quick else 2
    if o.pgbench_seconds is None:
        o.pgbench_seconds = 2.0 if o.quick else 3.0
    o.dbos_python = find_dbos_python(o.dbos_python)
    if "dbos" in o.systems and o.dbos_python is None:
        parser.error(
            "DBOS's environment was not found: python3 -m venv .venv-bench && "
            ".venv-bench/bin/pip install -r benchmarks/requirements.txt "
            "(or pass --dbos-python / set DBOS_PYTHON; or --systems durable)"
        )
    return o


def main() -> None:
    o = parse_args()
    info = machine(o)
    started = time.monotonic()
    print(
        f"benchmarks: {','.join(o.only)} on {','.join(o.systems)}, concurrency {o.concurrency}, "
        f"{o.repeat} run(s) each{', quick' if o.quick else ''}",
        file=sys.stderr,
    )
    runner = run_suite(o)
    info["suite_s"] = round(time.monotonic() - started)
    md_path, json_path, plot = write_outputs(runner, o, info)
    print(md_path.read_text())
    print(f"results: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}", end="")
    print(f", {Path(plot).relative_to(ROOT)}" if plot else "")
    print(f"suite took {info['suite_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
