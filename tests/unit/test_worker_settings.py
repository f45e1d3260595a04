"""durable-worker refuses timing settings that cannot work, before it connects (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

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
