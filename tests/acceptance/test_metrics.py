"""SPEC 13: Prometheus metrics on `durable-worker --metrics-port` and on `durable serve`."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

import durable
from tests.helpers.processes import WorkerProcess
from tests.helpers.server import running_server
from tests.helpers.waiting import follow_until, poll_until, wait_for_state

WF = "tests.acceptance.workflows_server"


async def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _metrics_url(worker: WorkerProcess) -> str:
    [line] = [line for line in worker.lines if line.get("event") == "metrics served"]
    return str(line["url"])


async def test_worker_and_server_metrics_count_what_happened(
    db_url: str, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # A first worker dies holding a task; the scraped worker takes it over.
    doomed = await workers().start()
    gate = tmp_path / "gate"
    async with durable.Client(db_url) as client:
        held = await client.launch("tests.acceptance.workflows:waits_for_gate", args=[str(gate)])
        await follow_until(client, held.id, "waiting")
        assert doomed.process is not None
        doomed.process.send_signal(signal.SIGKILL)
        await doomed.process.wait()

        worker = await workers("--metrics-port", "0").start()
        await worker.wait_for_log("metrics served")
        url = _metrics_url(worker)
        await wait_for_state(client, held.id, "running", timeout=30)

        tasks = [(await client.launch(f"{WF}:approval", args=[f"m-{n}"])).id for n in range(5)]
        for task_id in tasks:
            await wait_for_state(client, task_id, "suspended")
        for n in range(3):
            await client.resolve(f"approve-m-{n}", n)
        for task_id in tasks[:3]:
            await client.result(task_id, timeout=30)
        gate.touch()
        assert await client.result(held.id, timeout=30) == "opened"
        unserved = await client.launch(f"{WF}:approval", args=["x"], queue="nobody")

        async def counted() -> bool:
            scraped = await _scrape(url)
            return scraped.get(("durable_tasks_finished_total", (("state", "complete"),))) == 4

        await poll_until(counted, "the worker to count its 4 finished tasks")
        scraped = await _scrape(url)

    # 1 takeover + 5 approvals + 3 resumed after their promise.
    assert scraped[("durable_claims_total", ())] == 9
    assert scraped[("durable_takeovers_total", ())] == 1
    assert scraped[("durable_suspensions_total", ())] == 5
    # The 5 `check` steps and the gate step (run again after the takeover); replays run none.
    assert scraped[("durable_steps_total", (("outcome", "complete"),))] == 6
    assert scraped[("durable_step_duration_seconds_count", ())] == 6
    # First claims only: the taken-over task had been claimed before.
    assert scraped[("durable_launch_to_start_seconds_count", ())] == 5
    assert scraped[("durable_worker_slots_in_use", ())] == 0
    # Gauges read from the database at scrape time.
    assert scraped[("durable_tasks", (("queue", "default"), ("state", "suspended")))] == 2
    assert scraped[("durable_tasks", (("queue", "nobody"), ("state", "pending")))] == 1
    assert scraped[("durable_oldest_pending_age_seconds", (("queue", "nobody"),))] >= 0

    async with running_server(db_url, token="t") as base:
        served = await _scrape(base + "/metrics")  # no token needed for /metrics
    assert served[("durable_tasks", (("queue", "default"), ("state", "suspended")))] == 2
    assert served[("durable_tasks", (("queue", "nobody"), ("state", "pending")))] == 1
    assert ("durable_oldest_pending_age_seconds", (("queue", "nobody"),)) in served
    assert ("durable_tasks", (("queue", "default"), ("state", "complete"))) not in served
    assert ("durable_claims_total", ()) not in served  # the server counts nothing itself
    assert unserved.created
