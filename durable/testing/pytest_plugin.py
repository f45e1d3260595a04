"""The pytest plugin of durable (entry point ``pytest11``): the ``durable_env`` fixture.

``durable_env`` is a started `WorkflowEnvironment` with time skipping on, for one test, on
the test's event loop (pytest-asyncio). Its keyword arguments can be set per test or module
with the ``durable_env`` marker::

    @pytest.mark.durable_env(time_skipping=False)
    async def test_with_a_clock_moved_by_hand(durable_env): ...

Each process (each pytest-xdist worker) migrates one template database on first use; every
environment is a copy of it, so environments run in parallel without seeing each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from durable.testing.environment import WorkflowEnvironment


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (``--strict-markers`` refuses unknown ones)."""
    config.addinivalue_line(
        "markers",
        "durable_env(**kwargs): WorkflowEnvironment arguments for the durable_env fixture",
    )


async def _environment(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    # Imported here: pytest loads this plugin in every session of a project that has durable.
    from durable.testing.environment import WorkflowEnvironment

    options: dict[str, Any] = {"time_skipping": True}
    marker = request.node.get_closest_marker("durable_env")
    if marker is not None:
        options.update(marker.kwargs)
    async with WorkflowEnvironment(**options) as env:
        yield env


def _missing_runner() -> None:
    raise pytest.UsageError("the durable_env fixture needs pytest-asyncio (pip install it)")


def _fixture() -> Any:
    # pytest loads this plugin wherever durable is installed: without pytest-asyncio, only
    # the fixture fails (saying why), not the whole session.
    try:
        import pytest_asyncio
    except ImportError:
        return pytest.fixture(name="durable_env")(_missing_runner)
    return pytest_asyncio.fixture(_environment, name="durable_env")


durable_env = _fixture()
