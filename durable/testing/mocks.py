"""Mocked steps: what a `WorkflowEnvironment` runs instead of a step's code, and its calls."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True)
class Call:
    """One call of a mocked step."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class StepMock:
    """Stands in for a step: returns ``returns``, raises ``raises``, or calls ``side_effect``.

    ``side_effect`` is a callable (sync or async) given the step's arguments, or a list
    whose items are used one per call (an exception instance in it is raised): a step that
    fails twice, then succeeds, is ``side_effect=[Declined(), Declined(), {"ok": True}]``.
    """

    target: str
    returns: Any = None
    raises: BaseException | type[BaseException] | None = None
    side_effect: Any = None
    calls: list[Call] = field(default_factory=list)
    _items: Iterator[Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.side_effect, list | tuple):
            self._items = iter(list(self.side_effect))

    async def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls.append(Call(args, dict(kwargs)))
        if self._items is not None:
            try:
                item = next(self._items)
            except StopIteration:
                raise AssertionError(
                    f"mocked step {self.target!r} called {len(self.calls)} times, "
                    "more than its side_effect list has items"
                ) from None
            if isinstance(item, BaseException):
                raise item
            return item
        if callable(self.side_effect):
            value = self.side_effect(*args, **kwargs)
            return await value if inspect.isawaitable(value) else value
        if self.raises is not None:
            raise self.raises
        return self.returns

    def replica(self, skip: int = 0) -> StepMock:
        """The same answers, from the ``skip``-th call on, with calls of its own: what a run
        from a crash point gets, once ``skip`` calls had their outcomes recorded."""
        copy = StepMock(self.target, self.returns, self.raises, self.side_effect)
        if copy._items is not None:
            for _ in range(skip):
                next(copy._items, None)
        return copy

    @property
    def call_count(self) -> int:
        """How many times the step ran (each retry attempt counts)."""
        return len(self.calls)

    @property
    def called(self) -> bool:
        """The step ran at least once."""
        return bool(self.calls)

    def assert_called_with(self, *args: Any, **kwargs: Any) -> None:
        """The last call had these arguments."""
        if not self.calls:
            raise AssertionError(f"mocked step {self.target!r} was not called")
        expected, actual = Call(args, kwargs), self.calls[-1]
        if actual != expected:
            raise AssertionError(
                f"mocked step {self.target!r}: expected call {_show(expected)}, "
                f"last call was {_show(actual)}"
            )

    def assert_called_once_with(self, *args: Any, **kwargs: Any) -> None:
        """The step ran exactly once, with these arguments."""
        self.assert_called_once()
        self.assert_called_with(*args, **kwargs)

    def assert_called_once(self) -> None:
        """The step ran exactly once."""
        if len(self.calls) != 1:
            raise AssertionError(
                f"mocked step {self.target!r} expected to be called once, "
                f"called {len(self.calls)} times"
            )

    def assert_not_called(self) -> None:
        """The step never ran."""
        if self.calls:
            raise AssertionError(
                f"mocked step {self.target!r} expected not to be called, "
                f"called {len(self.calls)} times: {', '.join(map(_show, self.calls))}"
            )


def _show(call: Call) -> str:
    parts = [repr(a) for a in call.args] + [f"{k}={v!r}" for k, v in call.kwargs.items()]
    return f"({', '.join(parts)})"


class Mocks:
    """The mocked steps of an environment, found by function or by label."""

    def __init__(self) -> None:
        self._by_function: dict[Any, StepMock] = {}
        self._by_label: dict[str, StepMock] = {}

    def add(
        self,
        target: Callable[..., Any] | str,
        *,
        returns: Any = _UNSET,
        raises: BaseException | type[BaseException] | None = None,
        side_effect: Any = None,
    ) -> StepMock:
        """Mock the step ``target`` (a step function, or the label it is recorded under)."""
        given = sum(x is not None for x in (raises, side_effect)) + (returns is not _UNSET)
        if given > 1:
            raise TypeError("mock_step takes one of returns=, raises= or side_effect=")
        value = None if returns is _UNSET else returns
        if isinstance(target, str):
            mock = StepMock(target, value, raises, side_effect)
            self._by_label[target] = mock
            return mock
        if not callable(target):
            raise TypeError(f"mock_step needs a step function or a label, not {target!r}")
        # @durable.step wraps the function: the engine hands the host the wrapped one.
        function = getattr(target, "__wrapped__", target)
        name = getattr(function, "__qualname__", repr(function))
        mock = StepMock(name, value, raises, side_effect)
        self._by_function[function] = mock
        return mock

    def find(self, fn: Callable[..., Any], label: str) -> StepMock | None:
        """The mock standing in for this step, if any."""
        for key in (fn, getattr(fn, "__wrapped__", None), getattr(fn, "func", None)):
            if key is not None:
                found = self._by_function.get(key)
                if found is not None:
                    return found
        return self._by_label.get(label)
