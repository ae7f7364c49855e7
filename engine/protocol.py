"""What the manager and a worker say to each other over the worker's private socket.

Every message is a frame: a 4-byte big-endian length, then the body. The manager's first frame
is the worker's :class:`WorkerSpec`, pickled (the manager trusts itself; settings and secrets
travel there, never on a command line or in the environment). Everything after that, in both
directions, is JSON: a worker runs handler code, and a handler that writes to the socket must
not be able to run code in the manager. The manager validates every frame against the types
below; anything else (a frame too long, not JSON, a field of the wrong type) is a
:class:`ProtocolViolation` and the worker is killed for it.
"""

from __future__ import annotations

import json
import signal
import struct
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from .in_hand import MessageKey
from .settings import Settings

HEARTBEAT_INTERVAL = 1.0  # seconds between a worker's heartbeats
HEADER = struct.Struct(">I")
MAX_FRAME = 1024 * 1024  # bytes; a heartbeat is far smaller (log lines are bounded, see below)
MAX_LOG_LINE = 8192  # characters of one log line; the rest is cut and marked
MAX_LOG_BYTES = 256 * 1024  # log text one heartbeat carries; beyond that lines are counted, not sent
MAX_FAILURES = 32  # failure groups one heartbeat carries; the rest are counted in `failed` only
PAYLOAD_PREVIEW = 200  # bytes of a failed message's payload its report keeps
MAX_TOPIC = 1024  # characters of a topic a report keeps
TRUNCATED = " …[{} more characters cut]"


class ProtocolViolation(Exception):
    """A worker sent something that is not a message of this protocol."""


class ExitCode(IntEnum):
    """How a worker process ends, and why."""

    OK = 0
    CRASH = 1
    ROUTES = 2  # could not load its routes (import error in a router module)
    AUTH = 3  # the broker refused the credentials
    TLS = 4  # the TLS handshake failed
    CONFIG = 5  # the broker refused the connection for another reason (bad client id, protocol)


# A worker whose zygote died before it: its exit status went to init, not to us.
EXIT_UNKNOWN = -1000

# The exit codes by the names they had before ExitCode.
EXIT_OK, EXIT_CRASH, EXIT_ROUTES, EXIT_AUTH, EXIT_TLS, EXIT_CONFIG = (int(code) for code in ExitCode)

_EXIT_MEANINGS = {
    ExitCode.CRASH: " (crashed)",
    ExitCode.ROUTES: " (routes failed to load)",
    ExitCode.AUTH: " (bad credentials)",
    ExitCode.TLS: " (TLS error)",
    ExitCode.CONFIG: " (refused by broker)",
}


def describe_exit(exitcode: int | None) -> str | None:
    """A human description of a process exit code (negative: killed by that signal)."""
    if exitcode is None:
        return None
    if exitcode == EXIT_UNKNOWN:
        return "unknown"
    if exitcode >= 0:
        return str(exitcode) + _EXIT_MEANINGS.get(exitcode, "")  # type: ignore[call-overload]
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"
    if name == "SIGKILL":
        return "SIGKILL (likely OOM or killed)"
    return name


class Failure(StrEnum):
    """Why a worker gave up: a refusal that retrying will not cure."""

    ROUTES = "routes"
    AUTH = "auth"
    TLS = "tls"
    CONFIG = "config"

    @property
    def exit_code(self) -> ExitCode:
        return _FAILURE_EXITS[self]


_FAILURE_EXITS = {
    Failure.ROUTES: ExitCode.ROUTES,
    Failure.AUTH: ExitCode.AUTH,
    Failure.TLS: ExitCode.TLS,
    Failure.CONFIG: ExitCode.CONFIG,
}


# --- manager -> worker ------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutesSource:
    """How a worker gets its routes: import the router package itself, or unpickle a Router."""

    package: str | None = None
    strict: bool = False
    pickled: bytes | None = None


@dataclass(frozen=True)
class Quarantined:
    """A message that killed this slot's worker ``deaths`` times: when it comes back, the worker
    acknowledges it without running the handler and publishes it to the dead-letter topic."""

    key: MessageKey
    deaths: int
    last_exit: str


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs; the manager's first frame, pickled."""

    slot: str
    client_id: str
    group_name: str
    route_topic: str | None  # the pool's route pattern; None for the main worker
    routes: RoutesSource
    settings: Settings
    drain: bool = False  # leaving the pool: serve only what the slot's session still holds
    sys_path: tuple[str, ...] = ()  # the manager's import path, so its router modules import here too
    in_hand_fd: int | None = None  # the shared in-hand table (engine/in_hand.py); None: not tracked
    quarantine: tuple[Quarantined, ...] = ()


class Command(StrEnum):
    RETIRE = "retire"  # unsubscribe, handle what the session still holds, end the session, exit 0


# --- worker -> manager ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogLine:
    level: int
    logger: str
    message: str


@dataclass(frozen=True, slots=True)
class Hello:
    pid: int


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """A quarantined message the worker set aside: published to the dead-letter topic, acknowledged."""

    route: str
    key: MessageKey


@dataclass(frozen=True, slots=True)
class RouteTimes:
    """The handler times of one route since the last heartbeat (buckets of engine/timings.py)."""

    route: str
    buckets: tuple[tuple[int, int], ...]  # (bucket index, count), non-empty buckets only
    sum: float
    max: float


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """The handlers of one route that raised one exception type since the last heartbeat:
    how many, and the latest of them in full."""

    route: str
    handler: str  # the handler's qualified name
    exception: str  # the exception's type, qualified by its module unless a builtin
    message: str  # str() of the latest, cut
    count: int
    time: float  # wall clock of the latest
    topic: str
    payload: bytes  # its first PAYLOAD_PREVIEW bytes
    payload_size: int
    traceback: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker's counters, once a second and on every change of connection."""

    connected: bool = False
    subscribed: bool = False
    detail: str = ""  # what it is doing or waiting for ("connecting", "connection refused ...")
    received: int = 0
    handled: int = 0
    failed: int = 0
    by_route: dict[str, tuple[int, int]] = field(default_factory=dict)  # pattern -> (handled, failed)
    in_flight: int = 0
    last_message_at: float | None = None  # wall clock
    oldest_handler_age: float | None = None  # seconds the longest-running handler has run
    clock: float = 0.0  # the worker's monotonic clock when this was sent
    busy_seconds: float = 0.0  # seconds of that clock the worker was busy (engine/worker/busy.py)
    logs: tuple[LogLine, ...] = ()
    logs_dropped: int = 0
    dead_lettered: tuple[DeadLettered, ...] = ()  # since the last heartbeat
    timings: tuple[RouteTimes, ...] = ()  # since the last heartbeat
    failures: tuple[HandlerFailure, ...] = ()  # since the last heartbeat, one per (route, exception)

    @property
    def done(self) -> int:
        return self.handled + self.failed


@dataclass(frozen=True, slots=True)
class Logs:
    """Log lines sent outside a heartbeat (the last ones, as the worker exits)."""

    logs: tuple[LogLine, ...] = ()
    logs_dropped: int = 0


@dataclass(frozen=True, slots=True)
class Fatal:
    """The worker gives up for a reason retrying cannot cure, and exits with ``failure.exit_code``."""

    failure: Failure
    reason: str


WorkerMessage = Hello | Heartbeat | Logs | Fatal


# --- framing ------------------------------------------------------------------------------------


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def encode(message: WorkerMessage | Command) -> bytes:
    """A frame holding ``message`` as JSON."""
    if isinstance(message, Command):
        data: dict[str, Any] = {"type": "command", "command": message.value}
    elif isinstance(message, Hello):
        data = {"type": "hello", "pid": message.pid}
    elif isinstance(message, Fatal):
        data = {"type": "fatal", "failure": message.failure.value, "reason": message.reason}
    elif isinstance(message, Logs):
        data = {"type": "logs", "logs": _lines_out(message.logs), "logs_dropped": message.logs_dropped}
    else:
        data = _heartbeat_out(message)
    return frame(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _lines_out(lines: tuple[LogLine, ...]) -> list[list[Any]]:
    return [[line.level, line.logger, line.message] for line in lines]


def _heartbeat_out(beat: Heartbeat) -> dict[str, Any]:
    data = {name: getattr(beat, name) for name in Heartbeat.__dataclass_fields__}
    data["type"] = "heartbeat"
    data["by_route"] = {topic: list(counts) for topic, counts in beat.by_route.items()}
    data["logs"] = _lines_out(beat.logs)
    # A key's topic is bytes (cut at a byte count); latin-1 carries any bytes through JSON unchanged.
    data["dead_lettered"] = [
        [d.route, d.key.topic.decode("latin-1"), d.key.payload_length, d.key.payload_crc] for d in beat.dead_lettered
    ]
    data["timings"] = [[t.route, [list(pair) for pair in t.buckets], t.sum, t.max] for t in beat.timings]
    data["failures"] = [
        [f.route, f.handler, f.exception, f.message, f.count, f.time, f.topic, f.payload.decode("latin-1"),
         f.payload_size, f.traceback]
        for f in beat.failures
    ]
    return data


class FrameReader:
    """Cuts a byte stream into frames, however it arrives; refuses a frame over ``limit``."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        while len(buffer) - start >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, start)
            if length > self.limit:
                raise ProtocolViolation(f"a frame of {length} bytes (the limit is {self.limit})")
            end = start + HEADER.size + length
            if len(buffer) < end:
                break
            frames.append(bytes(buffer[start + HEADER.size : end]))
            start = end
        del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of a frame not yet complete."""
        return len(self._buffer)


def cut_line(message: str) -> str:
    """``message`` no longer than MAX_LOG_LINE characters, marked where it was cut."""
    if len(message) <= MAX_LOG_LINE:
        return message
    return message[:MAX_LOG_LINE] + TRUNCATED.format(len(message) - MAX_LOG_LINE)
