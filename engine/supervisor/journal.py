"""SlotJournal: each slot's own log lines and lifecycle, kept across restarts of the slot.

The event stream (event_log.py) mixes every slot and bounds them together: a worker that logs a
lot would push a quiet one's history out. Here each slot keeps its last LOG_LINES_KEPT log lines
(its handlers' logging and output, and the failures reported for it) and its last LIFECYCLE_KEPT
lifecycle events (started, exited with the cause, restarted, hung, recycled, ...), so that its
worker screen opens on history. Slots that leave for good are forgotten beyond SLOTS_KEPT.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ..details import LIFECYCLE_KEPT, LOG_LINES_KEPT
from ..snapshot import EngineEvent

SLOTS_KEPT = 512
LOG_KINDS = frozenset({"log", "failure"})


class _Entries:
    __slots__ = ("lifecycle", "logs")

    def __init__(self) -> None:
        self.logs: deque[EngineEvent] = deque(maxlen=LOG_LINES_KEPT)
        self.lifecycle: deque[EngineEvent] = deque(maxlen=LIFECYCLE_KEPT)


class SlotJournal:
    """Written and read under the event log's lock (see EventLog)."""

    def __init__(self) -> None:
        self._slots: OrderedDict[str, _Entries] = OrderedDict()

    def add(self, event: EngineEvent) -> None:
        slot = event.slot
        if slot is None:
            return
        entries = self._slots.get(slot)
        if entries is None:
            entries = self._slots[slot] = _Entries()
            if len(self._slots) > SLOTS_KEPT:
                self._slots.popitem(last=False)
        else:
            self._slots.move_to_end(slot)  # the least recently heard from goes first, not the oldest
        (entries.logs if event.kind in LOG_KINDS else entries.lifecycle).append(event)

    def of(self, slot: str) -> tuple[tuple[EngineEvent, ...], tuple[EngineEvent, ...]]:
        """The slot's (log lines, lifecycle events), oldest first."""
        entries = self._slots.get(slot)
        return ((), ()) if entries is None else (tuple(entries.logs), tuple(entries.lifecycle))
