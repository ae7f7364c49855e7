"""SlotJournal: each slot's own log lines and lifecycle, kept across restarts of the slot.

The event stream (event_log.py) mixes every slot and bounds them together: a worker that logs a
lot would push a quiet one's history out. Here each slot keeps its last LOG_LINES_KEPT log lines
(its handlers' logging and output, and the failures reported for it), at most
LOG_CHARACTERS_KEPT characters of them, and its last LIFECYCLE_KEPT lifecycle events (started,
exited with the cause, restarted, hung, recycled, ...), so that its worker screen opens on
history. Beyond SLOTS_KEPT slots, the one heard from least recently is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ..details import LIFECYCLE_KEPT, LOG_LINES_KEPT
from ..snapshot import EngineEvent

SLOTS_KEPT = 256
LOG_CHARACTERS_KEPT = 512 * 1024  # per slot: 1,000 lines of 8 KiB tracebacks would be too many
LOG_KINDS = frozenset({"log", "failure"})


class _Entries:
    __slots__ = ("characters", "lifecycle", "logs")

    def __init__(self) -> None:
        self.logs: deque[EngineEvent] = deque()
        self.characters = 0
        self.lifecycle: deque[EngineEvent] = deque(maxlen=LIFECYCLE_KEPT)

    def log(self, event: EngineEvent) -> None:
        logs = self.logs
        logs.append(event)
        self.characters += len(event.message)
        while len(logs) > LOG_LINES_KEPT or (self.characters > LOG_CHARACTERS_KEPT and len(logs) > 1):
            self.characters -= len(logs.popleft().message)


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
        if event.kind in LOG_KINDS:
            entries.log(event)
        else:
            entries.lifecycle.append(event)

    def of(self, slot: str) -> tuple[tuple[EngineEvent, ...], tuple[EngineEvent, ...]]:
        """The slot's (log lines, lifecycle events), oldest first."""
        entries = self._slots.get(slot)
        return ((), ()) if entries is None else (tuple(entries.logs), tuple(entries.lifecycle))
