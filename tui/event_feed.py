"""EventFeed: what the main screen's events panel holds, and which of it shows.

Two bounds, not one: worker log lines (and handler failures) can come by the thousand a second,
lifecycle events (started, exited, hung, crash-loop, scaled) a few a minute. In one bounded list
a flood of log lines would push the one line that says a worker died out within a second; here
each kind is bounded on its own, so the last lifecycle events stay however loud the logs are.

The panel can be narrowed (a key each): to warnings and errors, or to one slot's events.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

LOG_KINDS = frozenset({"log", "failure"})  # the kinds that can flood (the engine's journal says the same)
MAX_EVENTS = 500  # lifecycle and other events kept
MAX_LOG_LINES = 500  # log lines and failures kept


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the panel."""

    number: int  # arrival order, across both kinds
    time: float  # wall clock
    kind: str
    source: str | None  # the slot (or logger) it came from
    message: str
    level: int

    @property
    def is_log(self) -> bool:
        return self.kind in LOG_KINDS


class EventFeed:
    """The lines kept, each kind in its own bound, and the narrowing asked for."""

    def __init__(self, max_events: int = MAX_EVENTS, max_logs: int = MAX_LOG_LINES) -> None:
        self._events: deque[Entry] = deque(maxlen=max_events)
        self._logs: deque[Entry] = deque(maxlen=max_logs)
        self._count = 0
        self.warnings_only = False  # only WARNING and above
        self.slot: str | None = None  # only this slot's lines

    def add(self, time: float, kind: str, source: str | None, message: str, level: int) -> Entry:
        entry = Entry(self._count, time, kind, source, message, level)
        self._count += 1
        (self._logs if entry.is_log else self._events).append(entry)
        return entry

    def shows(self, entry: Entry) -> bool:
        """Whether the narrowing lets this line through."""
        if self.warnings_only and entry.level < logging.WARNING:
            return False
        return self.slot is None or entry.source == self.slot

    def shown(self) -> list[Entry]:
        """The lines kept that the narrowing lets through, oldest first."""
        merged: Iterable[Entry] = heapq.merge(self._events, self._logs, key=lambda entry: entry.number)
        if self.warnings_only or self.slot is not None:
            merged = filter(self.shows, merged)
        return list(merged)

    @property
    def narrowed(self) -> bool:
        return self.warnings_only or self.slot is not None

    def describe(self) -> str:
        """The narrowing in words, for the panel's title ("" when everything shows)."""
        parts = []
        if self.warnings_only:
            parts.append("warnings and errors")
        if self.slot is not None:
            parts.append(f"only {self.slot}")
        return ", ".join(parts)
