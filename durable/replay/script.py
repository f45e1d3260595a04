"""The delivery script: the order in which a replay hands recorded outcomes to the workflow.

Built once per run from the recorded history. Entries come in recorded delivery order; a
replay consumes them one at a time, each only once the workflow is quiescent (engine.py).

`durable retry` cuts the order: a retry marker event says that deliveries from position
``cut`` up to ``resume_delivered`` belong to a branch the task no longer takes (the failed
step outcomes, or the cancellation, that ended it, and whatever followed). The replay stops
delivering at the cut, moves its seq and log-line counters past that branch's records, and
goes on with the deliveries made after the retry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from durable.replay.history import CANCEL, RETRY, Recorded, retry_cut


@dataclass(frozen=True)
class Delivery:
    """Hand the outcome recorded at ``seq`` to the workflow (delivery number ``position``)."""

    position: int
    seq: int


@dataclass(frozen=True)
class Cut:
    """A branch that `durable retry` set aside: skip to these counters."""

    position: int
    resume_seq: int
    resume_position: int
    resume_line: int


Entry = Delivery | Cut


class Script:
    """Recorded deliveries, in order, with the retry cuts between them."""

    def __init__(self, history: Iterable[Recorded]) -> None:
        events = list(history)
        cuts = sorted(
            (Cut(*retry_cut(e.payload)) for e in events if e.kind == RETRY),
            key=lambda cut: cut.position,
        )
        entries: list[Entry] = list(cuts)
        highest = -1
        for event in events:
            position = event.delivered
            if position is None:
                continue
            highest = max(highest, position)
            if not any(c.position <= position < c.resume_position for c in cuts):
                entries.append(Delivery(position, event.seq))
        entries.sort(key=lambda entry: entry.position)
        self._entries = entries
        self._next = 0
        for cut in cuts:
            highest = max(highest, cut.resume_position - 1)
        # Where new deliveries are numbered from once the script is played out.
        self.next_position = highest + 1
        # Cancellation markers written before delivery order was recorded (none in new
        # histories): delivered where the replay reaches their seq, as that version did.
        self.unordered_cancels = sorted(
            (e for e in events if e.kind == CANCEL and e.delivered is None),
            key=lambda e: e.seq,
        )

    def peek(self) -> Entry | None:
        """The next entry, if the script is not played out."""
        return self._entries[self._next] if self._next < len(self._entries) else None

    def advance(self) -> None:
        """The entry returned by `peek` is done."""
        self._next += 1

    @property
    def done(self) -> bool:
        """Every recorded delivery has been made again."""
        return self._next >= len(self._entries)
