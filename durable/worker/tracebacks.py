"""A failed task's traceback as its author wants to read it: their frames, not durable's.

The runner stores the traceback of what ended a task, and ``durable show`` / ``launch --tail``
print it. Formatted as is, it is mostly durable's machinery: the engine's step runner, the
timeout and cancellation wrappers, the thread a synchronous step ran in. `user_traceback`
formats the same exception chain (causes, contexts and exception groups alike) with the
frames of durable's own package and of ``concurrent.futures``' worker threads left out.
"""

from __future__ import annotations

import concurrent.futures.thread
import traceback
from collections.abc import Iterable
from pathlib import Path

import durable

DURABLE_DIR = Path(durable.__file__).resolve().parent
HIDDEN_DIRS: tuple[Path, ...] = (DURABLE_DIR,)
# The frame a synchronous step runs under in its thread (ThreadPoolExecutor's _WorkItem.run).
HIDDEN_FILES: tuple[Path, ...] = (Path(concurrent.futures.thread.__file__).resolve(),)


def user_traceback(
    error: BaseException,
    *,
    hidden_dirs: Iterable[Path] = HIDDEN_DIRS,
    hidden_files: Iterable[Path] = HIDDEN_FILES,
) -> str:
    """``error`` formatted like `traceback.format_exception`, without durable's own frames."""
    dirs, files = tuple(hidden_dirs), frozenset(hidden_files)
    formatted = traceback.TracebackException.from_exception(error)
    _strip(formatted, dirs, files, set())
    return "".join(formatted.format())


def _strip(
    formatted: traceback.TracebackException,
    dirs: tuple[Path, ...],
    files: frozenset[Path],
    seen: set[int],
) -> None:
    if id(formatted) in seen:  # chains may loop (an exception's context set to itself)
        return
    seen.add(id(formatted))
    kept = [frame for frame in formatted.stack if not _hidden(frame.filename, dirs, files)]
    formatted.stack = traceback.StackSummary.from_list(kept)
    linked = [formatted.__cause__, formatted.__context__, *(formatted.exceptions or ())]
    for other in linked:
        if other is not None:
            _strip(other, dirs, files, seen)


def _hidden(filename: str, dirs: tuple[Path, ...], files: frozenset[Path]) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return path in files or any(path.is_relative_to(d) for d in dirs)
