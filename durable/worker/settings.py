"""WorkerSettings: every setting of a worker, its default and its check, in one place.

``durable-worker`` builds one from its flags and `durable.Worker` takes it (or builds one from
its keyword arguments), so a default or a rule is written once: the CLI's flags, the embedded
worker and the README table read the same values.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _names(value: Sequence[str] | str, setting: str) -> tuple[str, ...]:
    # A bare string is a sequence of characters: queues="emails" must not claim from "e", "m"...
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{setting} must be a list of strings, not {type(value).__name__}")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{setting} must hold non-empty strings, not {name!r}")
    return names


def _number(value: Any, setting: str, *, minimum: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{setting} must be a number of seconds, not {type(value).__name__}")
    too_small = value < minimum if inclusive else value <= minimum
    if not math.isfinite(value) or too_small:
        bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
        raise ValueError(f"{setting} must be {bound} s and finite, not {value!r}")
    return float(value)


def _count(value: Any, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{setting} must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{setting} must be at least 1, not {value!r}")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    """The settings of a worker, checked when built (``ValueError``/``TypeError`` if wrong).

    Args:
        concurrency: tasks run at once.
        queues: queues claimed from (empty means ``("default",)``).
        heartbeat_interval: seconds between heartbeats.
        lease_timeout: seconds without a heartbeat after which the worker's tasks are taken
            over; must be longer than ``heartbeat_interval``.
        max_attempts: claims lost to crashed workers after which a task ends failed.
        shutdown_grace: seconds running effects get to finish when the worker stops.
        imports: modules imported when the worker starts (``--import``); tasks may name them.
        allow_modules: module prefixes tasks may import from besides the application
            directory (``--allow-module``), e.g. an installed package of workflows.
        app_dir: the application directory: modules whose file lies under it are imported on
            demand. None: the current directory when the `durable.Worker` is built.
        poll_interval: seconds between claims when no notification arrives (a fallback).
        suspend_after: a task that only waits on a timer further away than this is
            suspended (no worker holds it) and resumed by replay when it is due.
        strict: the determinism guard: workflow code that reads a clock, draws a random or
            does I/O outside a step raises `durable.DeterminismViolation` (``--strict``).
    """

    concurrency: int = 100
    queues: tuple[str, ...] = ("default",)
    heartbeat_interval: float = 5.0
    lease_timeout: float = 30.0
    max_attempts: int = 5
    shutdown_grace: float = 10.0
    imports: tuple[str, ...] = ()
    allow_modules: tuple[str, ...] = ()
    app_dir: Path | None = field(default=None)
    poll_interval: float = 5.0
    suspend_after: float = 2.0
    strict: bool = False

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "concurrency": _count(self.concurrency, "concurrency"),
            "queues": _names(self.queues, "queues") or ("default",),
            "heartbeat_interval": _number(
                self.heartbeat_interval, "heartbeat_interval", minimum=0, inclusive=False
            ),
            "lease_timeout": _number(
                self.lease_timeout, "lease_timeout", minimum=0, inclusive=False
            ),
            "max_attempts": _count(self.max_attempts, "max_attempts"),
            "shutdown_grace": _number(
                self.shutdown_grace, "shutdown_grace", minimum=0, inclusive=True
            ),
            "imports": _names(self.imports, "imports"),
            "allow_modules": _names(self.allow_modules, "allow_modules"),
            "poll_interval": _number(
                self.poll_interval, "poll_interval", minimum=0, inclusive=False
            ),
            "suspend_after": _number(
                self.suspend_after, "suspend_after", minimum=0, inclusive=True
            ),
        }
        if not isinstance(self.strict, bool):
            raise TypeError(f"strict must be True or False, not {self.strict!r}")
        if self.app_dir is not None:
            if not isinstance(self.app_dir, (str, os.PathLike)):
                raise TypeError(f"app_dir must be a path, not {type(self.app_dir).__name__}")
            checked["app_dir"] = Path(self.app_dir).absolute()
        if checked["lease_timeout"] <= checked["heartbeat_interval"]:
            # Every worker would be declared dead between two of its own heartbeats.
            raise ValueError(
                f"lease_timeout ({checked['lease_timeout']:g} s) must be longer than "
                f"heartbeat_interval ({checked['heartbeat_interval']:g} s): a few intervals "
                "is usual"
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> WorkerSettings:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def with_app_dir(self) -> WorkerSettings:
        """These settings with ``app_dir`` fixed: the current directory if it was None."""
        return self if self.app_dir is not None else self.replace(app_dir=Path.cwd())
