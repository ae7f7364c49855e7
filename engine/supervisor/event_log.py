"""EventLog: what happened to the workers, in order, for the dashboard and the headless output.

Every event also goes to Python logging (``routemq.manager``; a worker's log lines to
``routemq.worker.<slot>``), so a deployment's own log handlers see them too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from ..snapshot import EngineEvent
from .journal import SlotJournal

log = logging.getLogger("routemq.manager")
EVENTS_KEPT = 2000


class EventLog:
    def __init__(self, kept: int = EVENTS_KEPT) -> None:
        self._events: deque[EngineEvent] = deque(maxlen=kept)
        self._lock = threading.Lock()  # written by the supervisor, read by the UI's thread
        self._seq = 0
        self._journal = SlotJournal()

    def emit(
        self,
        kind: str,
        message: str,
        slot: str | None = None,
        level: int = logging.INFO,
        logger: str | None = None,
        **fields: str,
    ) -> None:
        """Record an event; ``fields`` are EngineEvent's optional ones (a failure's exception,
        topic and traceback), kept as values and passed to logging as extras."""
        with self._lock:
            self._seq += 1
            event = EngineEvent(self._seq, time.time(), kind, message, slot, level, **fields)
            self._events.append(event)
            self._journal.add(event)
        target = logging.getLogger(f"routemq.worker.{slot}") if kind in ("log", "failure") else log
        if target.isEnabledFor(level):
            target.log(level, "%s", message, extra={"slot": slot, "event": kind, "origin": logger, **fields})

    @property
    def last_seq(self) -> int:
        return self._seq

    def journal(self, slot: str) -> tuple[tuple[EngineEvent, ...], tuple[EngineEvent, ...]]:
        """The slot's own (log lines, lifecycle events), across its restarts (see journal.py)."""
        with self._lock:
            return self._journal.of(slot)

    def since(self, seq: int) -> list[EngineEvent]:
        """Events with a sequence number above ``seq``, oldest first (the last few thousand)."""
        with self._lock:
            if not self._events or self._events[-1].seq <= seq:
                return []
            return [e for e in self._events if e.seq > seq]
