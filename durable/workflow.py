"""The decorators ``@workflow``, ``@step`` and ``@transaction``, and workflow references.

A workflow's reference is ``module:qualname``; the worker resolves it by importing the module and
runs it only if the object found there was made by ``@durable.workflow``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from durable.replay import effects
from durable.retry import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class WorkflowOptions:
    """What ``@durable.workflow(...)`` was given."""

    queue: str = "default"
    retry: RetryPolicy | None = None
    timeout: float | None = None


class Workflow:
    """A function registered with ``@durable.workflow``; calling it calls the function."""

    def __init__(self, fn: Callable[..., Awaitable[Any]], options: WorkflowOptions) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"@durable.workflow needs an `async def`; {fn.__qualname__} is not a coroutine "
                "function"
            )
        self.fn = fn
        self.options = options
        self.reference = f"{fn.__module__}:{fn.__qualname__}"
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<durable workflow {self.reference}>"


@overload
def workflow(fn: Callable[..., Awaitable[Any]], /) -> Workflow: ...


@overload
def workflow(
    *,
    queue: str = "default",
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Workflow]: ...


def workflow(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    queue: str = "default",
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> Workflow | Callable[[Callable[..., Awaitable[Any]]], Workflow]:
    """Register ``async def f(ctx, *args, **kwargs)`` as a durable workflow.

    Args:
        fn: the workflow function (when used as a bare ``@durable.workflow``).
        queue: the default queue its tasks are launched on.
        retry: the default retry policy of its steps (a step's own ``retry=`` wins).
            Without one, a step is attempted once.
        timeout: seconds after which a task of this workflow is cancelled.

    Raises:
        TypeError: at import, if the function is not an ``async def``.
    """
    options = WorkflowOptions(queue=queue, retry=retry, timeout=timeout)
    if fn is not None:
        return Workflow(fn, options)

    def decorate(inner: Callable[..., Awaitable[Any]]) -> Workflow:
        return Workflow(inner, options)

    return decorate


def reference_of(target: Workflow | str) -> str:
    """The ``module:qualname`` reference of a workflow (a string is checked for shape)."""
    if isinstance(target, Workflow):
        return target.reference
    if isinstance(target, str):
        module, sep, qualname = target.partition(":")
        if not sep or not module or not qualname:
            raise ValueError(f"a workflow reference looks like 'module:function', not {target!r}")
        return target
    raise TypeError(f"expected a @durable.workflow or a 'module:function' string, got {target!r}")


def declared_queue(target: Workflow | str) -> str | None:
    """The queue a workflow declares, if known without importing anything.

    A string reference is looked up only in modules the process has already imported:
    launching must not run a module's code (the client may not even have it).
    """
    if isinstance(target, Workflow):
        return target.options.queue
    module_name, _, qualname = target.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found.options.queue if isinstance(found, Workflow) else None


def step(
    fn: F | None = None,
    /,
    *,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    name: str | None = None,
) -> Any:
    """Make a function a step: inside a workflow a call goes through ``ctx.step``.

    Outside a workflow (and inside another step) a call is a plain call.

    Args:
        fn: the function (when used as a bare ``@durable.step``).
        retry: its retry policy.
        timeout: seconds per attempt.
        name: the label it is recorded under (default: the function's qualified name).
    """

    def decorate(inner: F) -> F:
        label = effects.step_label(inner, name)

        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            engine = effects.current_engine.get()
            if engine is None:
                return inner(*args, **kwargs)
            from durable.context import issue_step

            return issue_step(
                engine, inner, args, kwargs, label=label, retry=retry, timeout=timeout
            )

        return wrapper  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate


def transaction(fn: F | None = None, /, *, name: str | None = None) -> Any:
    """Make ``async def f(conn, *args)`` a transaction step: inside a workflow a call goes
    through ``ctx.transaction`` (exactly once); outside, ``f`` needs its ``conn`` argument
    and is a plain call.

    Args:
        fn: the function (when used as a bare ``@durable.transaction``).
        name: the label it is recorded under (default: the function's qualified name).
    """

    def decorate(inner: F) -> F:
        label = effects.step_label(inner, name)

        @functools.wraps(inner)
        def wrapper(*args: Any) -> Any:
            engine = effects.current_engine.get()
            if engine is None:
                return inner(*args)
            seq = engine.next_seq()
            return effects.run_transaction(engine, seq, inner, args, label=label)

        return wrapper  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate
