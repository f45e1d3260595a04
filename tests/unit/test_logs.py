"""Records of the standard library's logging come out as one structlog line each."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

import durable.logs


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    durable.logs.configure("json", "info")
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_a_stdlib_warning_with_a_traceback_is_one_json_line(
    json_logs: None, capfd: pytest.CaptureFixture[str]
) -> None:
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; retrying", exc_info=True
        )
    logging.getLogger("asyncpg.pool").debug("below the level: not written")
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "Failed to restore the pool connection floor; retrying"
    assert record["level"] == "warning" and record["logger"] == "asyncpg.pool"
    assert record["error"] == "ConnectionResetError: [Errno 104] Connection reset by peer"
