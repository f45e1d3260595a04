"""One WorkerSettings: defaults and checks in one place, taken by the CLI and durable.Worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import durable
from durable_cli import worker as worker_cli


@pytest.mark.parametrize(
    ("heartbeat", "lease"),
    [("1", "0.5"), ("5", "5")],
)
def test_a_lease_no_longer_than_the_heartbeat_is_a_usage_error(heartbeat: str, lease: str) -> None:
    result = CliRunner().invoke(
        worker_cli.worker,
        [
            "--database-url",
            "postgresql://127.0.0.1:1/unused",
            "--heartbeat-interval",
            heartbeat,
            "--lease-timeout",
            lease,
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--lease-timeout" in result.output and "--heartbeat-interval" in result.output


def test_defaults() -> None:
    settings = durable.WorkerSettings()
    assert (settings.concurrency, settings.queues) == (100, ("default",))
    assert (settings.heartbeat_interval, settings.lease_timeout) == (5.0, 30.0)
    assert (settings.max_attempts, settings.shutdown_grace) == (5, 10.0)
    assert (settings.imports, settings.allow_modules, settings.app_dir) == ((), (), None)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"lease_timeout": 5.0}, ValueError, "lease_timeout .* longer than heartbeat_interval"),
        ({"concurrency": 0}, ValueError, "concurrency must be at least 1"),
        ({"concurrency": True}, TypeError, "concurrency must be an integer"),
        ({"queues": "emails"}, TypeError, "queues must be a list of strings"),
        ({"queues": ["ok", ""]}, ValueError, "queues must hold non-empty strings"),
        ({"imports": "pkg"}, TypeError, "imports must be a list"),
        ({"heartbeat_interval": float("nan")}, ValueError, "heartbeat_interval must be"),
        ({"shutdown_grace": -1}, ValueError, "shutdown_grace must be at least 0"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be at least 1"),
        ({"app_dir": 3}, TypeError, "app_dir must be a path"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    changes: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        durable.WorkerSettings(**changes)
    with pytest.raises(error, match=match):
        durable.Worker("postgresql://unused", **changes)


def test_settings_are_frozen_and_normalised() -> None:
    settings = durable.WorkerSettings(queues=[], imports=["a"], concurrency=3)  # type: ignore[arg-type]
    assert settings.queues == ("default",) and settings.imports == ("a",)
    with pytest.raises(AttributeError):
        settings.concurrency = 4  # type: ignore[misc]


def test_worker_takes_settings_or_keywords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    by_keywords = durable.Worker("postgresql://unused", concurrency=7, queues=["q"])
    assert by_keywords.settings == durable.WorkerSettings(
        concurrency=7, queues=("q",), app_dir=tmp_path
    )
    assert (by_keywords.concurrency, by_keywords.queues) == (7, ["q"])
    # Embedded use: the application directory is the current directory at construction.
    assert by_keywords.loader.app_dir == tmp_path.resolve()
    base = durable.WorkerSettings(concurrency=3, lease_timeout=60.0, app_dir=Path("/srv/app"))
    combined = durable.Worker("postgresql://unused", settings=base, concurrency=9)
    assert combined.settings == base.replace(concurrency=9)
    assert combined.lease_timeout == 60.0 and combined.loader.app_dir == Path("/srv/app")
