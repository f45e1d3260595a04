"""Retry policies for steps and the backoff arithmetic behind them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast a failing step is tried again.

    Attributes:
        max_attempts: total attempts, the first included (1 means no retry).
        initial_interval: seconds before the second attempt.
        backoff: factor applied to the interval after each attempt.
        max_interval: ceiling on the interval, in seconds.
        non_retryable: exception type names (or types) that fail the step at once.
    """

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    non_retryable: Sequence[str | type[BaseException]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff < 1:
            raise ValueError("RetryPolicy intervals must be >= 0 and backoff >= 1")

    def interval(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        value = self.initial_interval * self.backoff ** (attempt - 1)
        return float(min(value, self.max_interval))

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether ``error`` on attempt number ``attempt`` deserves another attempt."""
        if attempt >= self.max_attempts:
            return False
        for item in self.non_retryable:
            if isinstance(item, str):
                if type(error).__name__ == item or _qualified(type(error)) == item:
                    return False
            elif isinstance(error, item):
                return False
        return True


def _qualified(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


NO_RETRY = RetryPolicy(max_attempts=1)
