"""The manager's strict decoder of what workers send (and a worker's decoder of commands).

Every frame after the spec is JSON from a process that runs handler code, so nothing is
trusted: each message is checked field by field against the types of engine/protocol.py,
strings and lists are cut to their bounds, and anything else is a ProtocolViolation (the
manager kills the worker for it). Decoding executes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .in_hand import MessageKey
from .protocol import (
    MAX_FAILURES,
    MAX_LOG_LINE,
    MAX_TOPIC,
    PAYLOAD_PREVIEW,
    Command,
    DeadLettered,
    Failure,
    Fatal,
    HandlerFailure,
    Heartbeat,
    Hello,
    LogLine,
    Logs,
    ProtocolViolation,
    RouteTimes,
    WorkerMessage,
)
from .timings import BUCKETS

MAX_COUNT = 2**53  # beyond any honest count, and every float holds it exactly
MAX_SECONDS = 1e12  # likewise for sums and times in seconds (about 31,700 years)


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
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_count(n) for n in pair)):
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
            if not (isinstance(pair, list) and len(pair) == 2 and _is_int(pair[0]) and _is_count(pair[1])
                    and 0 <= pair[0] < BUCKETS):
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
        if not (isinstance(item, list) and len(item) == 10 and _is_count(item[4]) and _is_count(item[8])
                and all(isinstance(item[i], str) for i in (0, 1, 2, 3, 6, 7, 9))):
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
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= MAX_SECONDS:
        raise TypeError(f"{name} not a non-negative number")
    return float(value)


def _dead_lettered_in(value: Any) -> tuple[DeadLettered, ...]:
    if not isinstance(value, list):
        raise TypeError("dead_lettered not a list")
    found = []
    for item in value[:1000]:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and isinstance(item[1], str)):
            raise TypeError("a dead letter not [route, topic, length, crc]")
        if not (_is_count(item[2]) and _is_count(item[3])):
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
        lines.append(LogLine(max(0, min(item[0], logging.CRITICAL)), item[1][:200], item[2][: MAX_LOG_LINE + 64]))
    return tuple(lines)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    # Bounded: a count is added up and turned into rates and quantiles (floats); 10**400 would
    # overflow there, in the supervisor's thread.
    return _is_int(value) and 0 <= value <= MAX_COUNT


def _int(data: dict[str, Any], name: str) -> int:
    value: Any = data.get(name)
    if not _is_count(value):
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
