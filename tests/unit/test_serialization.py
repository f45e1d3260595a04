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


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("a\x00b", "NUL character"),
        ({"key\x00": 1}, "NUL character"),
        (["\\\x00"], "NUL character"),  # a backslash, then NUL: still the NUL escape
        ("a\ud800", r"lone surrogate \(U\+D800\)"),
        ({"\udcff": 1}, r"lone surrogate \(U\+DCFF\)"),
        pytest.param(10**5000, "integer too long", id="5000-digits"),
        pytest.param(2**435_412, "too large", id="beyond-numeric"),
    ],
)
def test_refuses_what_postgres_cannot_store(value: object, needle: str) -> None:
    with pytest.raises(SerializationError, match=needle) as caught:
        serialization.dumps(value, "launch args")
    assert "launch args" in str(caught.value)


def test_refuses_circular_values() -> None:
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(SerializationError, match="circular or nested too deeply"):
        serialization.dumps(circular, "step 'x' result")


def test_text_that_spells_an_escape_is_fine() -> None:
    # Six characters, \ u 0 0 0 0: JSON writes the backslash escaped, and Postgres stores it.
    assert serialization.loads(serialization.dumps("a\\u0000b", "here")) == "a\\u0000b"
    assert serialization.loads(serialization.dumps("\\\\u0000", "here")) == "\\\\u0000"


def test_check_text() -> None:
    assert serialization.check_text("fine é", "name") == "fine é"
    with pytest.raises(TypeError, match="name must be a string, not NoneType"):
        serialization.check_text(None, "name")
    with pytest.raises(SerializationError, match="NUL"):
        serialization.check_text("a\x00", "name")
    with pytest.raises(SerializationError, match="surrogate"):
        serialization.check_text("\udcff", "name")
