"""JSON in and out: refuse what would not come back as itself, and say where it was."""

from __future__ import annotations

import datetime

import pytest

from durable import serialization
from durable.errors import SerializationError
from durable.retry import RetryPolicy


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1, 2}, "set"), (datetime.date(2020, 1, 1), "date"), (object(), "object"),
     (float("nan"), "float"), ({1: "a"}, "int"), ([b"x"], "bytes")],
)  # fmt: skip
def test_refuses_non_json_values_naming_type_and_place(value: object, type_name: str) -> None:
    with pytest.raises(SerializationError) as caught:
        serialization.dumps(value, "launch args")
    assert type_name in str(caught.value)
    assert "launch args" in str(caught.value)


def test_round_trips_json_values() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    assert serialization.loads(serialization.dumps(value, "here")) == value
    assert serialization.check((1, 2), "here") == [1, 2]


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, initial_interval=1.0, backoff=2.0, max_interval=5.0)
    assert [policy.interval(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.retries(ValueError(), 4)
    assert not policy.retries(ValueError(), 5)
    assert not RetryPolicy(non_retryable=[ValueError]).retries(ValueError(), 1)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
