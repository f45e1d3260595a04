"""JSON in and out, refusing what JSON cannot hold and saying where it was."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from durable.errors import SerializationError

# Postgres's numeric type holds at most 131,072 digits before the point: 435,411 bits.
_MAX_INT_BITS = 435_411
# "\u0000" in JSON text that is an escape (an odd number of backslashes before the "u"), not
# the six characters of a string that spells it (``"\\u0000"`` in JSON).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _check(value: Any, where: str) -> None:
    # json.dumps would turn tuples into lists and NaN into an invalid token; we refuse
    # anything that would not come back as itself, so replay returns what the first run saw.
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, (int, float)):
        _check_number(value, where)
        return
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


def _check_number(value: float, where: str) -> None:
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise SerializationError(
                f"{where}: an integer of {value.bit_length()} bits is too large"
            )
    elif not math.isfinite(value):
        raise SerializationError(f"{where}: float {value!r} is not JSON-serialisable")


def dumps(value: Any, where: str) -> str:
    """Serialise ``value`` to JSON text, or raise SerializationError naming ``where``.

    Besides what JSON cannot hold, refuses what Postgres cannot store: a NUL character and a
    lone surrogate in any string (key or value), and integers beyond its numeric type.
    """
    try:
        _check(value, where)
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        raise SerializationError(f"{where}: the value is circular or nested too deeply") from None
    except ValueError as error:  # an int longer than sys.get_int_max_str_digits() allows
        raise SerializationError(f"{where}: an integer too long for JSON ({error})") from None
    _check_storable(text, where)
    return text


def _check_storable(text: str, where: str) -> None:
    # One pass over the whole document in C each, rather than one per string.
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise SerializationError(
            f"{where}: a string holds a NUL character (\\u0000), which Postgres cannot store"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise SerializationError(
            f"{where}: a string holds a lone surrogate (U+{code:04X}), which is not valid "
            "Unicode text"
        ) from None


def check_text(value: Any, where: str) -> str:
    """``value`` if it is a string Postgres can store as text.

    Raises:
        TypeError: it is not a string.
        SerializationError: it holds a NUL character or a lone surrogate.
    """
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise SerializationError(f"{where} holds a NUL character, which Postgres cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(value[error.start])
        raise SerializationError(
            f"{where} holds a lone surrogate (U+{code:04X}), which is not valid Unicode text"
        ) from None
    return value


def storable_text(text: str) -> str:
    """``text`` with what a Postgres text column cannot hold escaped, for what durable must
    store whatever it holds (printed lines, error messages): a NUL as ``\\x00``, a lone
    surrogate as ``\\udXXX``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


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
