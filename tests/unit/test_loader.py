"""The worker runs only @durable.workflow functions: os:system must never run."""

from __future__ import annotations

import pytest

from durable.errors import WorkflowNotFound
from durable.worker.loader import Loader


def test_loads_a_registered_workflow() -> None:
    workflow = Loader().load("examples.hello_world:main")
    assert workflow.reference == "examples.hello_world:main"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("os:system", "not a @durable.workflow"),
        ("tests.acceptance.workflows:not_a_workflow", "not a @durable.workflow"),
        ("no_such_module_xyz:main", "cannot import module"),
        ("examples.hello_world:nope", "has no attribute"),
        ("nocolon", "bad workflow reference"),
    ],
)
def test_refuses_what_is_not_a_workflow(reference: str, reason: str) -> None:
    with pytest.raises(WorkflowNotFound, match=reason):
        Loader().load(reference)


def test_allow_module_restricts_imports() -> None:
    loader = Loader(["tests."])
    assert loader.allowed("tests.acceptance.workflows")
    assert not loader.allowed("examples.hello_world")
    assert not loader.allowed("testsuite")
    with pytest.raises(WorkflowNotFound, match="not allowed"):
        loader.load("examples.hello_world:main")
