"""Cron arithmetic for schedules (SPEC 12), on `cronsim` with `zoneinfo` time zones.

cronsim (the parser of healthchecks.io) is small, has no dependencies, is kept up to date, and
handles daylight-saving changes the way cron does (a 02:30 tick in a skipped hour fires at
03:00, a repeated hour fires once). Five fields (minute hour day month weekday), or six with
seconds first. Ticks are handed out in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (ValueError if unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error


def check(expr: str, timezone: str) -> None:
    """ValueError if ``expr`` is not a cron expression or ``timezone`` not a time zone."""
    next_after(expr, timezone, datetime.now(UTC))


def ticks_after(expr: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The ticks strictly after ``after``, in UTC."""
    try:
        sim = CronSim(expr, after.astimezone(zone(timezone)))
    except CronSimError as error:
        raise ValueError(f"bad cron expression {expr!r}: {error}") from None
    for tick in sim:
        yield tick.astimezone(UTC)


def next_after(expr: str, timezone: str, after: datetime) -> datetime:
    """The first tick strictly after ``after``, in UTC."""
    return next(ticks_after(expr, timezone, after))


def ticks_between(expr: str, timezone: str, start: datetime, end: datetime) -> list[datetime]:
    """The ticks from ``start`` to ``end``, both included, in UTC."""
    found = []
    for tick in ticks_after(expr, timezone, start - timedelta(microseconds=1)):
        if tick > end:
            break
        found.append(tick)
    return found
