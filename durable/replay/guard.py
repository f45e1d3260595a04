"""The determinism guard: workflow code that reaches for the world raises DeterminismViolation.

Inside workflow code (not in steps), reading the wall clock (``time.time``, ``time.monotonic``,
``datetime.now``/``utcnow``/``today``), drawing from the ``random`` module, ``uuid.uuid1/4``,
``asyncio.sleep`` with a delay, and opening files or sockets raise
`durable.DeterminismViolation`, naming the call and the file and line that made it. Such
calls give another answer on replay (``ctx.now()``, ``ctx.random()``, ``ctx.uuid4()``,
``ctx.sleep()`` and steps are the recorded ways).

How: `GuardedWorkflowLoop` installs a profile function (``sys.setprofile``) for the duration
of each burst of workflow code, on the worker's thread only; steps run outside the bursts
(async ones as tasks of the worker's loop, sync ones in threads), so they are not guarded.
A call counts when the code making it is the application's: not durable's own, not the
standard library's, not a package durable itself depends on (their internals read clocks for
good reasons, e.g. asyncio's loop time, structlog's timestamps). Cost: none when off (the
engine picks the plain loop); when on, every Python and C call of workflow code goes through
the profile function (``benchmarks/guard_cost.py`` prints what that costs).

Python unsets a profile function that raised, so after a violation the rest of that burst is
not guarded; the next burst is.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import io
import os
import pathlib
import random
import socket
import sys
import sysconfig
import time
import types
import uuid
from functools import cache
from typing import Any

from durable.errors import DeterminismViolation
from durable.replay.loop import WorkflowLoop

_ADVICE = {
    "clock": "use ctx.now()",
    "random": "use ctx.random() or a step",
    "uuid": "use ctx.uuid4()",
    "sleep": "use ctx.sleep()",
    "io": "do I/O in a step",
}

# C functions, by identity: what they are and what to use instead.
_C_CALLS: dict[Any, tuple[str, str]] = {
    time.time: ("time.time()", "clock"),
    time.time_ns: ("time.time_ns()", "clock"),
    time.monotonic: ("time.monotonic()", "clock"),
    time.monotonic_ns: ("time.monotonic_ns()", "clock"),
    builtins.open: ("open()", "io"),
    io.open: ("open()", "io"),
    os.open: ("os.open()", "io"),
    os.urandom: ("os.urandom()", "random"),
}
_DATETIME_READS = {"now", "utcnow", "today"}

# Python functions, by code object.
_PY_CALLS: dict[types.CodeType, tuple[str, str]] = {
    uuid.uuid4.__code__: ("uuid.uuid4()", "uuid"),
    uuid.uuid1.__code__: ("uuid.uuid1()", "uuid"),
    socket.socket.__init__.__code__: ("socket.socket()", "io"),
    socket.create_connection.__code__: ("socket.create_connection()", "io"),
}
for _name in ("open", "read_text", "read_bytes", "write_text", "write_bytes"):
    _PY_CALLS[getattr(pathlib.Path, _name).__code__] = (f"Path.{_name}()", "io")
_ASYNCIO_SLEEP = asyncio.sleep.__code__
_RANDOM_FILE = random.__file__

# Code that is not the application's: its clock reads and I/O are its own business.
_DEPENDENCIES = ("structlog", "asyncpg", "uvloop", "sqlalchemy", "alembic", "click", "httpx")


def _exempt_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = [paths["stdlib"], paths["platstdlib"], os.path.dirname(os.path.dirname(__file__))]
    for name in _DEPENDENCIES:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            dirs.append(os.path.dirname(location))
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


@cache
def _is_application(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return not os.path.realpath(filename).startswith(_exempt_dirs())


def _violation(call: str, kind: str, frame: types.FrameType | None) -> DeterminismViolation:
    where = "workflow code"
    if frame is not None:
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return DeterminismViolation(call, where, _ADVICE[kind])


def _c_call(frame: types.FrameType, function: Any) -> None:
    found = _C_CALLS.get(function) if _hashable(function) else None
    if found is None:
        owner = getattr(function, "__self__", None)
        name = getattr(function, "__name__", "")
        if isinstance(owner, type) and issubclass(owner, datetime.date):
            if name not in _DATETIME_READS:
                return
            found = (f"{owner.__name__}.{name}()", "clock")
        elif isinstance(owner, random.Random):
            found = (f"random.{name}()", "random")
        elif isinstance(owner, socket.socket) or owner is socket:
            found = (f"socket.{name}()", "io")
        else:
            return
    if _is_application(frame.f_code.co_filename):
        raise _violation(found[0], found[1], frame)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _py_call(frame: types.FrameType) -> None:
    code = frame.f_code
    caller = frame.f_back
    if caller is None:
        return
    found = _PY_CALLS.get(code)
    if found is None:
        if code.co_filename == _RANDOM_FILE:
            found = (f"random.{code.co_name}()", "random")
        elif code is _ASYNCIO_SLEEP:
            delay = frame.f_locals.get("delay", 0)
            if not isinstance(delay, int | float) or delay <= 0:
                return
            found = (f"asyncio.sleep({delay!r})", "sleep")
        else:
            return
    if _is_application(caller.f_code.co_filename):
        raise _violation(found[0], found[1], caller)


def _profile(frame: types.FrameType, event: str, arg: Any) -> None:
    if event == "c_call":
        _c_call(frame, arg)
    elif event == "call":
        _py_call(frame)


class GuardedWorkflowLoop(WorkflowLoop):
    """The workflow loop with the determinism guard on during each burst."""

    def run_ready(self) -> None:
        """One burst of workflow code, guarded."""
        previous = sys.getprofile()
        sys.setprofile(_profile)
        try:
            super().run_ready()
        finally:
            sys.setprofile(previous)
