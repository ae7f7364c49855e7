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
from .timings import BUCKETS

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


def decode_command(body: bytes) -> Command:
    data = _json_object(body)
    if data.get("type") != "command":
        raise ProtocolViolation(f"expected a command, got {str(data.get('type'))[:40]!r}")
    command: Any = data.get("command")
    try:
        return Command(command)
    except ValueError:
        raise ProtocolViolation(f"unknown command {str(data.get('command'))[:40]!r}") from None


def decode(body: bytes) -> WorkerMessage:
    """The worker message in ``body``; ProtocolViolation for anything else. Executes nothing."""
    data = _json_object(body)
    kind = data.get("type")
    try:
        if kind == "heartbeat":
            return _heartbeat_in(data)
        if kind == "hello":
            return Hello(_int(data, "pid"))
        if kind == "logs":
            return Logs(_lines_in(data.get("logs")), _int(data, "logs_dropped"))
        if kind == "fatal":
            failure: Any = data.get("failure")
            return Fatal(Failure(failure), _str(data, "reason"))
    except (TypeError, ValueError) as exc:
        raise ProtocolViolation(f"a {kind} message with {exc}") from None
    raise ProtocolViolation(f"unknown message type {str(kind)[:40]!r}")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ProtocolViolation("a frame that is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolViolation("a frame that is not a JSON object")
    return data


def _heartbeat_in(data: dict[str, Any]) -> Heartbeat:
    by_route = data.get("by_route")
    if not isinstance(by_route, dict):
        raise TypeError("by_route not an object")
    counts = {}
    for topic, pair in by_route.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(n) for n in pair)):
            raise TypeError(f"by_route[{topic[:40]!r}] not two counts")
        counts[topic] = (pair[0], pair[1])
    return Heartbeat(
        connected=_bool(data, "connected"),
        subscribed=_bool(data, "subscribed"),
        detail=_str(data, "detail"),
        received=_int(data, "received"),
        handled=_int(data, "handled"),
        failed=_int(data, "failed"),
        by_route=counts,
        in_flight=_int(data, "in_flight"),
        last_message_at=_optional_float(data, "last_message_at"),
        oldest_handler_age=_optional_float(data, "oldest_handler_age"),
        clock=_seconds(data, "clock"),
        busy_seconds=_seconds(data, "busy_seconds"),
        logs=_lines_in(data.get("logs")),
        logs_dropped=_int(data, "logs_dropped"),
        dead_lettered=_dead_lettered_in(data.get("dead_lettered", [])),
        timings=_timings_in(data.get("timings", [])),
        failures=_failures_in(data.get("failures", [])),
    )


def _timings_in(value: Any) -> tuple[RouteTimes, ...]:
    if not isinstance(value, list) or len(value) > 1000:
        raise TypeError("timings not a list of routes")
    found = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and isinstance(item[1], list)):
            raise TypeError("a route's timings not [route, buckets, sum, max]")
        buckets = []
        for pair in item[1][:BUCKETS]:
            if not (isinstance(pair, list) and len(pair) == 2 and _is_int(pair[0]) and _is_int(pair[1])
                    and 0 <= pair[0] < BUCKETS and pair[1] >= 0):
                raise TypeError("a timings bucket not [index, count]")
            buckets.append((pair[0], pair[1]))
        total, top = _number(item[2], "timings sum"), _number(item[3], "timings max")
        found.append(RouteTimes(item[0][:MAX_TOPIC], tuple(buckets), total, top))
    return tuple(found)


def _failures_in(value: Any) -> tuple[HandlerFailure, ...]:
    if not isinstance(value, list):
        raise TypeError("failures not a list")
    found = []
    for item in value[:MAX_FAILURES]:
        if not (isinstance(item, list) and len(item) == 10 and _is_int(item[4]) and _is_int(item[8])
                and item[8] >= 0 and all(isinstance(item[i], str) for i in (0, 1, 2, 3, 6, 7, 9))):
            raise TypeError("a failure not [route, handler, exception, message, count, time, topic, payload, "
                            "size, traceback]")
        try:
            payload = item[7][:PAYLOAD_PREVIEW].encode("latin-1")
        except UnicodeEncodeError:
            raise TypeError("a failure's payload not bytes") from None
        found.append(HandlerFailure(
            item[0][:MAX_TOPIC], item[1][:200], item[2][:200], item[3][:500], max(1, item[4]),
            _number(item[5], "failure time"), item[6][:MAX_TOPIC], payload, item[8], item[9][: MAX_LOG_LINE + 64],
        ))
    return tuple(found)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < float("inf"):
        raise TypeError(f"{name} not a non-negative number")
    return float(value)


def _dead_lettered_in(value: Any) -> tuple[DeadLettered, ...]:
    if not isinstance(value, list):
        raise TypeError("dead_lettered not a list")
    found = []
    for item in value[:1000]:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and isinstance(item[1], str)):
            raise TypeError("a dead letter not [route, topic, length, crc]")
        if not (_is_int(item[2]) and _is_int(item[3])):
            raise TypeError("a dead letter not [route, topic, length, crc]")
        try:
            topic = item[1].encode("latin-1")
        except UnicodeEncodeError:
            raise TypeError("a dead letter's topic not bytes") from None
        found.append(DeadLettered(item[0], MessageKey(topic, item[2], item[3])))
    return tuple(found)


def _lines_in(value: Any) -> tuple[LogLine, ...]:
    if not isinstance(value, list):
        raise TypeError("logs not a list")
    lines = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and _is_int(item[0])):
            raise TypeError("a log line not [level, logger, message]")
        if not (isinstance(item[1], str) and isinstance(item[2], str)):
            raise TypeError("a log line not [level, logger, message]")
        lines.append(LogLine(item[0], item[1][:200], item[2][: MAX_LOG_LINE + 64]))
    return tuple(lines)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(data: dict[str, Any], name: str) -> int:
    value: Any = data.get(name)
    if not _is_int(value) or value < 0:
        raise TypeError(f"{name} not a count")
    return int(value)


def _bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise TypeError(f"{name} not true or false")
    return value


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise TypeError(f"{name} not a string")
    return value[:2000]


def _seconds(data: dict[str, Any], name: str) -> float:
    value = _optional_float(data, name)
    if value is None or not 0.0 <= value < float("inf"):
        raise TypeError(f"{name} not a number of seconds")
    return value


def _optional_float(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} not a number")
    return float(value)


def cut_line(message: str) -> str:
    """``message`` no longer than MAX_LOG_LINE characters, marked where it was cut."""
    if len(message) <= MAX_LOG_LINE:
        return message
    return message[:MAX_LOG_LINE] + TRUNCATED.format(len(message) - MAX_LOG_LINE)
