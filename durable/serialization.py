"""JSON in and out, refusing what JSON cannot hold and saying where it was."""

from __future__ import annotations

import json
import math
from typing import Any

from durable.errors import SerializationError


def _check(value: Any, where: str) -> None:
    # json.dumps would turn tuples into lists and NaN into an invalid token; we refuse
    # anything that would not come back as itself, so replay returns what the first run saw.
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
        raise SerializationError(f"{where}: float {value!r} is not JSON-serialisable")
    if isinstance(value, list):
        for item in value:
            _check(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{where}: dict key of type {type(key).__name__} is not JSON-serialisable"
                )
            _check(item, where)
        return
    if isinstance(value, tuple):
        for item in value:
            _check(item, where)
        return
    raise SerializationError(
        f"{where}: value of type {type(value).__name__} is not JSON-serialisable"
    )


def dumps(value: Any, where: str) -> str:
    """Serialise ``value`` to JSON text, or raise SerializationError naming ``where``."""
    _check(value, where)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check(value: Any, where: str) -> Any:
    """Return ``value`` normalised through JSON (tuples become lists)."""
    return json.loads(dumps(value, where))


def encode(value: Any, where: str) -> tuple[str, Any]:
    """``value`` as JSON text, and normalised as a replay would return it (`check`).

    One serialisation for both: the hot path records a step's result and hands it back.
    """
    text = dumps(value, where)
    if value is None or isinstance(value, (bool, int, str, float)):
        return text, value  # a scalar comes back from JSON as itself
    return text, json.loads(text)


def loads(text: str | None) -> Any:
    """Parse JSON text; None stays None."""
    return None if text is None else json.loads(text)
