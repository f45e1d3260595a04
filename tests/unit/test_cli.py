"""The CLI without a database: parsing, the error boundary, exit codes and rendering.

Commands that need a database run against `FakeClient`, which stands in for `durable.Client`
with canned answers; the real thing is covered by tests/integration/test_cli_db.py and
tests/acceptance/test_cli.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import durable
from durable_cli import exit_codes, main, output, signals
from durable_cli import worker as worker_cli
from durable_cli.exit_codes import ExitCode

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DOWN_URL = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"
COMMANDS = sorted(main.cli.commands)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main.cli, list(args), env=env)


def assert_one_line_error(result: Result, code: int, needle: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def task_info(task_id: int = 7, state: str = "pending", **fields: Any) -> durable.TaskInfo:
    values: dict[str, Any] = {
        "id": task_id,
        "name": "my task",
        "workflow": "examples.hello_world:main",
        "state": durable.TaskState(state),
        "queue": "default",
        "key": None,
        "parent_id": None,
        "args": [],
        "kwargs": {},
        "result": None,
        "error": None,
        "attempts": 0,
        "created_at": NOW,
        "started_at": None,
        "finished_at": None,
    }
    values.update(fields)
    return durable.TaskInfo(**values)


class FakeClient:
    """Answers like `durable.Client` for one task; ``raises`` makes every call fail."""

    task = task_info()
    lines: tuple[str, ...] = ()
    log: list[tuple[str, Any]]
    raises: BaseException | None = None
    after_cancel = durable.TaskState.PENDING  # what cancel() returns: woken for its cleanup
    ends: str | None = "cancelled"  # the state wait() returns; None: wait() times out
    promises: dict[str, durable.PromiseState]

    def __init__(self, database_url: str | None = None, *, check_schema: bool = True) -> None:
        self.url = database_url
        self.log.append(("init", database_url))

    async def __aenter__(self) -> FakeClient:
        if self.raises is not None:
            raise self.raises
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def launch(self, workflow: str, **kwargs: Any) -> durable.TaskHandle:
        self.log.append(("launch", {"workflow": workflow, **kwargs}))
        return durable.TaskHandle(id=self.task.id, name="n", workflow=workflow, created=True)

    async def get(self, task_id: int) -> durable.TaskInfo:
        if task_id != self.task.id:
            raise durable.TaskNotFound(f"no task with id {task_id}")
        return self.task

    async def tail(self, task_id: int, *, follow: bool = True) -> AsyncIterator[str]:
        await self.get(task_id)
        for line in self.lines:
            yield line

    async def events(self, task_id: int) -> list[durable.Event]:
        await self.get(task_id)
        payload = {"long": "x" * 200}
        return [durable.Event(task_id, 0, "step", "fetch", payload, NOW)]

    async def list_tasks(self, **kwargs: Any) -> list[durable.TaskInfo]:
        self.log.append(("list", kwargs))
        return [self.task]

    async def cancel(self, task_id: int) -> durable.TaskState:
        await self.get(task_id)
        self.log.append(("cancel", task_id))
        return self.after_cancel

    async def wait(self, task_id: int, timeout: float | None = None) -> durable.TaskInfo:
        self.log.append(("wait", timeout))
        if self.ends is None:
            raise durable.Timeout(f"task {task_id} did not finish within {timeout} s")
        return task_info(task_id, state=self.ends)

    async def retry(self, task_id: int) -> durable.TaskState:
        return durable.TaskState.PENDING

    async def workers(self) -> list[durable.WorkerInfo]:
        return []

    async def resolve(self, promise_id: str, value: Any) -> Any:
        self.log.append(("resolve", (promise_id, value)))
        won = self.promises.setdefault(promise_id, durable.PromiseState("resolved", value=value))
        if won.state == "rejected":
            raise durable.PromiseRejected(won.message)
        return won.value

    async def reject(self, promise_id: str, message: str) -> Any:
        self.log.append(("reject", (promise_id, message)))
        won = self.promises.setdefault(
            promise_id, durable.PromiseState("rejected", message=message)
        )
        return won.value

    async def peek(self, promise_id: str) -> durable.PromiseState:
        return self.promises.get(promise_id, durable.PromiseState("pending"))

    async def wait_promise(self, promise_id: str, timeout: float | None = None) -> Any:
        if promise_id == "late":
            raise durable.Timeout(f"promise {promise_id!r} not completed within {timeout} s")
        if promise_id == "no":
            raise durable.PromiseRejected("refused")
        return "yes"

    async def notify(self, task_id: int, event: str, data: Any = None) -> None:
        await self.get(task_id)
        self.log.append(("notify", (task_id, event, data)))

    async def migrate(self) -> None:
        self.log.append(("migrate", None))

    async def schema_is_current(self) -> bool:
        return self.task.state == durable.TaskState.COMPLETE


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeClient]]:
    class Fake(FakeClient):
        log: list[tuple[str, Any]] = []  # noqa: RUF012 - one list per test
        promises: dict[str, durable.PromiseState] = {}  # noqa: RUF012 - one dict per test

    monkeypatch.setattr(durable, "Client", Fake)
    yield Fake


# -- help and parsing ----------------------------------------------------------------------


def test_durable_alone_prints_the_usage_as_click_lays_it_out() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: durable [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n" in result.stderr  # one command per line, not one flattened line


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage: durable " + command in result.stdout
    # `durable server` manages the embedded server of DURABLE_HOME, whatever URL is set.
    assert ("--database-url" in result.stdout) == (command != "server")


def test_the_group_and_the_worker_have_help() -> None:
    assert invoke("--help").exit_code == 0
    result = CliRunner().invoke(worker_cli.worker, ["--help"])
    assert result.exit_code == 0
    for flag in ("--migrate", "--concurrency", "--queue", "--import", "--allow-module",
                 "--heartbeat-interval", "--lease-timeout", "--max-attempts",
                 "--shutdown-grace", "--log-format", "--log-level", "--database-url"):  # fmt: skip
        assert flag in result.stdout


def test_the_commands_of_the_spec_exist() -> None:
    expected = {"launch", "tail", "cancel", "retry", "show", "list", "workers", "logs", "events"}
    assert expected | {"migrate", "notify", "promise"} <= set(COMMANDS)
    for sub in ("resolve", "reject", "peek", "await"):
        result = invoke("promise", sub, "--help")
        assert result.exit_code == 0 and "--database-url" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["launch", "--arg", "{bad", "x", "m:f"], "--arg"),
        (["launch", "--arg", "", "x", "m:f"], "--arg"),
        (["launch", "--kwargs", "{bad", "x", "m:f"], "--kwargs"),
        (["launch", "--kwargs", "[1]", "x", "m:f"], "--kwargs"),
        (["launch", "x", "nocolon"], "module:function"),
        (["launch", "x", ":f"], "module:function"),
        (["list", "--state", "sleeping"], "sleeping"),
        (["list", "--limit", "0"], "--limit"),
        (["show", "abc"], "integer"),
        (["show"], "ID"),
        (["nope"], "nope"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    fake: type[FakeClient], args: list[str], needle: str
) -> None:
    assert_one_line_error(invoke(*args), 2, needle)
    assert not [entry for entry in fake.log if entry[0] == "launch"]


def test_an_unreachable_database_exits_2_with_the_password_masked() -> None:
    for args in (["list"], ["show", "1"], ["launch", "x", "m:f"], ["migrate", "--check"]):
        result = invoke("--database-url", DOWN_URL, *args)
        assert_one_line_error(result, 2, "")
        assert "s3cret-pw" not in result.output
    result = invoke("show", "1", "--database-url", DOWN_URL)  # on the subcommand as well
    assert_one_line_error(result, 2, "")
    assert "s3cret-pw" not in result.output


# -- the error boundary --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (durable.TaskNotFound("no task with id 9"), 2),
        (durable.DatabaseUnavailable("cannot reach the database"), 2),
        (durable.SchemaOutdated(), 2),
        (durable.SerializationError("set is not JSON"), 2),
        (durable.Timeout(), 124),
        (durable.DurableError("something else"), 1),
        (RuntimeError("a bug"), 1),
    ],
)
def test_errors_become_one_line_and_an_exit_code(
    fake: type[FakeClient], error: BaseException, code: int
) -> None:
    fake.raises = error
    result = invoke("list")
    assert_one_line_error(result, code, str(error))


def test_an_interrupt_exits_130_quietly(fake: type[FakeClient]) -> None:
    fake.raises = KeyboardInterrupt()
    result = invoke("list")
    assert result.exit_code == 130
    assert "Traceback" not in result.output


def test_passwords_are_masked_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_DATABASE_URL", "postgresql://u:env-secret@h/db")
    text = "failed for postgresql://u:other-pw@h/db with env-secret and arg-secret"
    masked = main._mask(text, ["--database-url", "postgresql://a:arg-secret@h/db"])
    for secret in ("other-pw", "env-secret", "arg-secret"):
        assert secret not in masked


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (durable.TaskFailed("x"), ExitCode.FAILED),
        (durable.TaskCancelled("x"), ExitCode.CANCELLED),
        (durable.Timeout(), ExitCode.TIMEOUT),
        (durable.TaskNotFound(), ExitCode.BAD_INPUT),
        (click.BadParameter("x"), ExitCode.BAD_INPUT),
        (exit_codes.CommandFailed("x"), ExitCode.FAILED),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
    ],
)
def test_exit_code_for_exceptions(error: BaseException, code: ExitCode) -> None:
    assert exit_codes.for_exception(error) == code


def test_exit_code_for_states() -> None:
    assert [exit_codes.for_state(s) for s in ("complete", "failed", "cancelled")] == [0, 1, 3]
    assert exit_codes.for_state(durable.TaskState.RUNNING) == 0


# -- commands on a fake client -------------------------------------------------------------


def test_launch_prints_the_id_alone(fake: type[FakeClient]) -> None:
    result = invoke(
        "launch", "--arg", "1", "--arg", '{"a": null}', "--kwargs", '{"k": "v"}',
        "--key", "K", "--queue", "q", "my task", "examples.hello_world:main",
    )  # fmt: skip
    assert (result.exit_code, result.stdout, result.stderr) == (0, "7\n", "")
    assert ("launch", {"workflow": "examples.hello_world:main", "name": "my task",
                       "args": [1, {"a": None}], "kwargs": {"k": "v"}, "key": "K",
                       "queue": "q"}) in fake.log  # fmt: skip


@pytest.mark.parametrize(("state", "code"), [("complete", 0), ("failed", 1), ("cancelled", 3)])
def test_launch_tail_streams_the_log_and_exits_by_state(
    fake: type[FakeClient], state: str, code: int
) -> None:
    error = {"type": "ValueError", "message": "nope", "traceback": "Traceback ...\nValueError"}
    fake.task = task_info(state=state, error=error if state == "failed" else None)
    fake.lines = ("one", "two")
    result = invoke("launch", "--tail", "x", "m:f")
    assert result.exit_code == code
    assert result.stdout == "one\ntwo\n"
    assert result.stderr.splitlines()[0] == "7"
    if state == "failed":
        assert "ValueError: nope" in result.stderr and "Traceback" in result.stderr


def test_tail_and_logs(fake: type[FakeClient]) -> None:
    fake.task = task_info(state="cancelled")
    fake.lines = ("a",)
    assert (invoke("tail", "7").exit_code, invoke("tail", "7").stdout) == (3, "a\n")
    assert (invoke("logs", "7").exit_code, invoke("logs", "7").stdout) == (0, "a\n")
    assert invoke("logs", "-f", "7").exit_code == 3
    assert_one_line_error(invoke("tail", "8"), 2, "no task with id 8")


def test_cancel_waits_for_the_task_to_end_and_prints_its_state(fake: type[FakeClient]) -> None:
    result = invoke("cancel", "7")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "cancelled\n", "")
    assert ("cancel", 7) in fake.log and ("wait", 10.0) in fake.log


def test_cancel_that_runs_out_of_time_prints_the_current_state(fake: type[FakeClient]) -> None:
    fake.ends = None  # no worker runs the cleanup: the wait runs out
    result = invoke("cancel", "7", "--wait", "2.5")
    assert (result.exit_code, result.stdout) == (0, "pending\n")
    assert ("wait", 2.5) in fake.log
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cancellation requested" in lines[0]
    assert "ends cancelled once a worker runs its cleanup" in lines[0]


def test_cancel_wait_0_does_not_wait(fake: type[FakeClient]) -> None:
    fake.after_cancel = durable.TaskState.RUNNING
    result = invoke("cancel", "--wait", "0", "7")
    assert (result.exit_code, result.stdout) == (0, "running\n")
    assert "cancellation requested" in result.stderr
    assert not [entry for entry in fake.log if entry[0] == "wait"]
    fake.after_cancel = durable.TaskState.CANCELLED  # a pending task is cancelled at once
    result = invoke("cancel", "--wait", "0", "7")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "cancelled\n", "")


def test_cancel_of_a_task_that_ended_otherwise_says_so(fake: type[FakeClient]) -> None:
    fake.ends = "complete"  # it completed before the cancellation landed
    result = invoke("cancel", "7")
    assert (result.exit_code, result.stdout) == (0, "complete\n")
    assert "already ended as complete" in result.stderr


def test_cancel_of_a_final_task_leaves_it(fake: type[FakeClient]) -> None:
    fake.task = task_info(state="complete")
    result = invoke("cancel", "7")
    assert (result.exit_code, result.stdout) == (0, "complete\n")
    assert "already complete" in result.stderr
    assert ("cancel", 7) not in fake.log


@pytest.mark.parametrize("args", [["--wait", "-1"], ["--wait", "soon"]])
def test_cancel_bad_wait_exits_2(fake: type[FakeClient], args: list[str]) -> None:
    assert_one_line_error(invoke("cancel", "7", *args), 2, "--wait")
    assert ("cancel", 7) not in fake.log
    assert_one_line_error(invoke("cancel", "8"), 2, "no task with id 8")


def test_retry_only_failed_or_cancelled(fake: type[FakeClient]) -> None:
    assert_one_line_error(invoke("retry", "7"), 1, "pending")
    fake.task = task_info(state="failed")
    result = invoke("retry", "7")
    assert (result.exit_code, result.stdout) == (0, "pending\n")


def test_show_and_events(fake: type[FakeClient]) -> None:
    fake.task = task_info(state="complete", result={"ok": True})
    result = invoke("show", "7")
    assert result.exit_code == 0
    assert "state:    complete" in result.stdout and '{"ok":true}' in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("seq"))
    assert header.split() == ["seq", "kind", "label", "payload", "at"]
    assert max(len(line) for line in result.stdout.splitlines()) < 120  # payload truncated
    shown = json.loads(invoke("show", "7", "--json").stdout)
    assert shown["state"] == "complete" and shown["events"][0]["payload"]["long"] == "x" * 200
    result = invoke("events", "7")
    assert result.stdout.splitlines()[0].split() == ["seq", "kind", "label", "payload"]
    assert json.loads(invoke("events", "7", "--json").stdout)[0]["label"] == "fetch"


def test_list_and_workers(fake: type[FakeClient]) -> None:
    result = invoke("list", "--state", "FAILED", "--workflow", "m:f", "--limit", "3")
    assert result.exit_code == 0
    assert ("list", {"state": "failed", "workflow": "m:f", "limit": 3}) in fake.log
    assert json.loads(invoke("list", "--json").stdout)[0]["id"] == 7
    assert json.loads(invoke("workers", "--json").stdout) == []
    assert invoke("workers").stdout.split() == list(output.WORKER_COLUMNS)


def test_database_url_on_the_group_or_the_command(fake: type[FakeClient]) -> None:
    invoke("--database-url", "postgresql://group/db", "list")
    invoke("--database-url", "postgresql://group/db", "list", "--database-url", "postgresql://c/db")
    invoke("list")
    urls = [url for kind, url in fake.log if kind == "init"]
    assert urls == ["postgresql://group/db", "postgresql://c/db", None]


def test_migrate_check(fake: type[FakeClient]) -> None:
    assert_one_line_error(invoke("migrate", "--check"), 1, "durable migrate")
    fake.task = task_info(state="complete")
    assert invoke("migrate", "--check").exit_code == 0
    assert invoke("migrate").exit_code == 0 and ("migrate", None) in fake.log


def test_promises_and_notify(fake: type[FakeClient]) -> None:
    result = invoke("promise", "resolve", "p1", '{"ok": true}')
    assert (result.exit_code, result.stdout, result.stderr) == (0, '{"ok":true}\n', "")
    assert ("resolve", ("p1", {"ok": True})) in fake.log
    result = invoke("promise", "reject", "p2", "why not")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert ("reject", ("p2", "why not")) in fake.log
    assert json.loads(invoke("promise", "peek", "p1").stdout) == {
        "state": "resolved", "value": {"ok": True}, "message": None}  # fmt: skip
    assert invoke("promise", "await", "p1").stdout == '"yes"\n'
    assert_one_line_error(invoke("promise", "await", "no"), 1, "refused")
    assert_one_line_error(invoke("promise", "await", "late", "--timeout", "0.5"), 124, "late")
    assert_one_line_error(invoke("promise", "resolve", "p1", "{bad"), 2, "JSON")
    assert invoke("notify", "7", "approved", '{"by": "ana"}').exit_code == 0
    assert ("notify", (7, "approved", {"by": "ana"})) in fake.log
    assert_one_line_error(invoke("notify", "8", "approved"), 2, "no task with id 8")


def test_resolve_an_already_resolved_promise_prints_the_winner(fake: type[FakeClient]) -> None:
    fake.promises["p"] = durable.PromiseState("resolved", value={"a": 1, "b": [2]})
    same = invoke("promise", "resolve", "p", '{"b": [2], "a": 1}')  # keys in another order
    assert (same.exit_code, same.stdout, same.stderr) == (0, '{"a":1,"b":[2]}\n', "")
    other = invoke("promise", "resolve", "p", "3")
    assert (other.exit_code, other.stdout) == (0, '{"a":1,"b":[2]}\n')
    assert "already resolved with another value" in other.stderr


def test_resolve_an_already_rejected_promise_exits_1(fake: type[FakeClient]) -> None:
    fake.promises["p"] = durable.PromiseState("rejected", message="no way")
    result = invoke("promise", "resolve", "p", "1")
    assert_one_line_error(result, 1, "promise p was already rejected: no way")


def test_reject_an_already_resolved_promise_prints_the_winner_and_exits_1(
    fake: type[FakeClient],
) -> None:
    fake.promises["p"] = durable.PromiseState("resolved", value=None)  # null won: still a value
    result = invoke("promise", "reject", "p", "too late")
    assert (result.exit_code, result.stdout) == (1, "null\n")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "promise p was already resolved" in lines[0]


def test_reject_an_already_rejected_promise_names_the_winner(fake: type[FakeClient]) -> None:
    fake.promises["p"] = durable.PromiseState("rejected", message="first\nreason")
    same = invoke("promise", "reject", "p", "first\nreason")
    assert (same.exit_code, same.stdout, same.stderr) == (0, "", "")
    other = invoke("promise", "reject", "p", "second")
    assert (other.exit_code, other.stdout) == (0, "")
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "already rejected with another message" in lines[0]
    assert lines[0].endswith("first reason")


# -- exit codes come only from ExitCode ----------------------------------------------------


@pytest.mark.parametrize(
    ("result", "code"), [(None, 0), (ExitCode.CANCELLED, 3), (124, 124), (True, 1)]
)
def test_a_command_returns_its_exit_code(result: object, code: int) -> None:
    assert main.guarded(lambda: result) == code


def test_a_number_that_is_not_an_exit_code_never_becomes_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.guarded(lambda: 438) == ExitCode.FAILED  # not 438 % 256 == 182
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "438" in lines[0] and "not an exit code" in lines[0]


def test_a_stray_cancellation_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def cancelled() -> None:
        raise asyncio.CancelledError("stray")

    assert main.guarded(cancelled) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "CancelledError" in err


# -- rendering -----------------------------------------------------------------------------


def test_tables_align_and_truncate() -> None:
    text = output.table(("a", "bb"), [[1, "x" * 100], [None, {"k": [1]}]])
    lines = text.splitlines()
    assert lines[0] == "a  bb"
    assert lines[1].startswith("1  xxx") and lines[1].endswith("…")
    assert len(lines[1]) == 3 + output.CELL_WIDTH
    assert lines[2] == '-  {"k":[1]}'


# -- durable-worker ------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    async def serve(
        url: str | None,
        migrate_first: bool,
        settings: durable.WorkerSettings,
        timeout: float,
        metrics_at: tuple[str, int] | None = None,
    ) -> int:
        calls.append((url, migrate_first, settings, timeout))
        return 0

    monkeypatch.setattr(worker_cli, "serve", serve)
    monkeypatch.setattr(durable.logs, "configure", lambda *args: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return calls


def test_worker_flags_reach_the_worker(served: list[tuple[Any, ...]]) -> None:
    result = CliRunner().invoke(
        worker_cli.worker,
        ["--migrate", "--concurrency", "3", "--queue", "a", "--queue", "b",
         "--allow-module", "examples", "--heartbeat-interval", "0.2", "--lease-timeout", "1.5",
         "--max-attempts", "2", "--shutdown-grace", "0.5", "--import", "examples.hello_world",
         "--connect-timeout", "7", "--database-url", "postgresql://x/y"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert served == [
        ("postgresql://x/y", True, durable.WorkerSettings(
            concurrency=3, queues=("a", "b"), heartbeat_interval=0.2, lease_timeout=1.5,
            max_attempts=2, shutdown_grace=0.5, imports=("examples.hello_world",),
            allow_modules=("examples",), app_dir=Path.cwd()), 7.0),
    ]  # fmt: skip
    assert sys.path[0] == os.getcwd()


def test_worker_defaults_are_the_settings_defaults(served: list[tuple[Any, ...]]) -> None:
    result = CliRunner().invoke(worker_cli.worker, [])
    assert result.exit_code == 0, result.output
    assert served == [(None, False, durable.WorkerSettings(app_dir=Path.cwd()), 60.0)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--queue", " "], "--queue must hold non-empty strings"),
        (["--concurrency", "0"], "--concurrency"),
        (["--log-level", "loud"], "--log-level"),
        (["--heartbeat-interval", "soon"], "--heartbeat-interval"),
    ],
)
def test_worker_bad_input_exits_2(
    served: list[tuple[Any, ...]], args: list[str], needle: str
) -> None:
    assert_one_line_error(CliRunner().invoke(worker_cli.worker, args), 2, needle)
    assert served == []


def test_first_signal_stops_second_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    exited = threading.Event()

    def fake_exit(code: int) -> None:
        exits.append(code)
        exited.set()

    monkeypatch.setattr(signals.os, "_exit", fake_exit)

    async def scenario() -> int:
        stopped = asyncio.Event()
        with signals.on_stop(stopped.set):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stopped.wait(), 5)
            os.kill(os.getpid(), signal.SIGINT)
            # The handler runs on the loop: wait for the exit call as an event, not a sleep.
            await asyncio.wait_for(asyncio.to_thread(exited.wait, 5), 6)
        return len(exits)

    assert asyncio.run(scenario()) == 1
    assert exits == [128 + signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
