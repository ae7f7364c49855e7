"""The detail views: everything known about one worker slot or one route, for the screens that
answer "why". Frozen dataclasses of plain values, like ``snapshot.py``; the manager builds one
when asked (:meth:`WorkerManager.worker_detail`, :meth:`WorkerManager.route_detail`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from .protocol import PAYLOAD_PREVIEW  # noqa: F401  (bytes of a failed message's payload kept)
from .snapshot import EngineEvent, RouteInfo, WorkerInfo
from .timings import Timings

LOG_LINES_KEPT = 1000  # log lines kept per slot, across restarts of the slot
LIFECYCLE_KEPT = 200  # lifecycle events kept per slot
HISTORY_SECONDS = 300  # seconds of CPU, memory and throughput history kept

_CONTROL_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def safe_preview(payload: bytes) -> str:
    """``payload`` as text that is safe to print: UTF-8 where it decodes, ``\\xNN`` for every
    other byte and every control character (no terminal escape ever reaches the screen), and
    ``\\uNNNN`` for invisible format characters (a right-to-left override would make the text
    read otherwise than it is)."""
    text = payload.decode("utf-8", errors="backslashreplace")
    return text if text.isascii() and text.isprintable() else "".join(_safe_char(c) for c in text)


def _safe_char(c: str) -> str:
    code = ord(c)
    if code < 32 or 127 <= code < 160:
        return _CONTROL_ESCAPES.get(c) or f"\\x{code:02x}"
    if code > 127 and unicodedata.category(c) == "Cf":
        return f"\\u{code:04x}"
    return c


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A message a worker's handler holds right now."""

    topic: str
    age: float | None  # seconds since its handler started; None when not known
    qos: int = 0


@dataclass(frozen=True, slots=True)
class WorkerDetail:
    """One slot: who it is, its log (handler output included), lifecycle and resource history."""

    info: WorkerInfo
    logs: tuple[EngineEvent, ...] = ()  # kinds "log" and "failure", oldest first, across restarts
    lifecycle: tuple[EngineEvent, ...] = ()  # started, exited (cause), restarted, hung, recycled, ...
    cpu_history: tuple[float, ...] = ()  # CPU % once a second while a process filled the slot, oldest first
    memory_history: tuple[int, ...] = ()  # RSS bytes, likewise
    held: tuple[HeldMessage, ...] = ()  # oldest first
    heartbeat_age: float | None = None  # seconds since the worker was last heard; None: no process


@dataclass(frozen=True, slots=True)
class FailureExample:
    """The latest message of a failure group: what failed, where and how."""

    time: float  # wall clock
    slot: str
    topic: str
    payload: bytes  # the first PAYLOAD_PREVIEW bytes
    payload_size: int  # the whole payload's size in bytes
    traceback: str  # the handler's traceback, or a dying worker's last words

    @property
    def preview(self) -> str:
        """The payload preview, safe to print."""
        return safe_preview(self.payload)


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failures of one route with one cause: an exception type, or "worker died (SIGSEGV)"."""

    exception: str
    count: int
    latest: FailureExample


@dataclass(frozen=True, slots=True)
class RouteDetail:
    """One route: handler times, throughput over time, failures grouped by cause, its pool."""

    info: RouteInfo
    timings_minute: Timings = field(default_factory=Timings)  # the last 60 s
    timings_total: Timings = field(default_factory=Timings)  # since the manager started
    throughput: tuple[float, ...] = ()  # messages/s once a second, oldest first
    failures: tuple[FailureGroup, ...] = ()  # the most recent first (the last 50 causes)
    workers: tuple[WorkerInfo, ...] = ()
    # Failures by cause since start, counts that only go up ("other" past 100 causes): /metrics.
    failure_counts: tuple[tuple[str, int], ...] = ()
