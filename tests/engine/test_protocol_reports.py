"""engine/protocol.py, the heartbeat's handler times and failure reports: they round-trip
unchanged (a binary payload included), and a hostile worker's versions are refused or cut."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.protocol import (
    HEADER,
    MAX_FAILURES,
    MAX_LOG_LINE,
    MAX_TOPIC,
    PAYLOAD_PREVIEW,
    FrameReader,
    HandlerFailure,
    Heartbeat,
    ProtocolViolation,
    RouteTimes,
    encode,
)
from engine.protocol_decode import decode
from engine.timings import BUCKETS, bucket_of

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/sensors.py", line 12, in handle\n'
    "    value = parse(payload)\n"
    "ValueError: température «21,5» not a number"
)


def failure(**changes: Any) -> HandlerFailure:
    fields: dict[str, Any] = dict(
        route="sensors/{id}/temp", handler="app.sensors.handle", exception="ValueError",
        message="température «21,5» not a number", count=3, time=1_700_000_000.25, topic="sensors/7/temp",
        payload=b'{"t": "21,5"}', payload_size=13, traceback=TRACEBACK,
    )
    fields.update(changes)
    return HandlerFailure(**fields)


BEAT = Heartbeat(
    connected=True,
    handled=10,
    failed=4,
    by_route={"sensors/{id}/temp": (10, 4)},
    clock=5.0,
    timings=(
        RouteTimes("sensors/{id}/temp", ((0, 1), (bucket_of(0.001), 7), (BUCKETS - 1, 2)), 250.5, 180.0),
        RouteTimes("jobs/#", (), 0.0, 0.0),
    ),
    failures=(
        failure(),
        failure(exception="app.errors.Binary", payload=bytes(range(PAYLOAD_PREVIEW)), payload_size=4096),
        failure(exception="KeyError", payload=bytes(range(256 - PAYLOAD_PREVIEW, 256)), payload_size=PAYLOAD_PREVIEW),
    ),
)


def through_the_wire(message: Heartbeat) -> Any:
    reader = FrameReader()
    data = encode(message)
    frames = [f for i in range(0, len(data), 7) for f in reader.feed(data[i : i + 7])]
    assert len(frames) == 1 and reader.pending == 0
    return decode(frames[0])


def good_beat() -> dict[str, Any]:
    data = encode(BEAT)
    return json.loads(data[HEADER.size :])


def with_changes(change: Any) -> bytes:
    """The good heartbeat's JSON after ``change(data)``; NaN and Infinity as JSON writes them."""
    data = copy.deepcopy(good_beat())
    change(data)
    return json.dumps(data).encode()


# --- round trips ----------------------------------------------------------------------------------


def test_a_heartbeat_with_timings_and_failures_round_trips_unchanged():
    assert through_the_wire(BEAT) == BEAT


def test_every_byte_value_of_a_payload_comes_through():
    beat = through_the_wire(BEAT)
    payloads = b"".join(f.payload for f in beat.failures)
    assert set(payloads) == set(range(256))
    assert beat.failures[1].payload == bytes(range(PAYLOAD_PREVIEW))


def test_a_cut_traceback_comes_through_whole():
    traceback = "[20000 characters of the start cut]…\n" + "x" * MAX_LOG_LINE
    beat = through_the_wire(Heartbeat(failures=(failure(traceback=traceback),)))
    assert beat.failures[0].traceback == traceback


def test_an_older_worker_without_timings_or_failures_is_understood():
    data = good_beat()
    del data["timings"], data["failures"]
    beat = decode(json.dumps(data).encode())
    assert isinstance(beat, Heartbeat) and beat.timings == () and beat.failures == ()


# --- hostile frames -------------------------------------------------------------------------------


def set_timing(index: int, value: Any) -> Any:
    return lambda data: data["timings"][0].__setitem__(index, value)


def set_failure(index: int, value: Any) -> Any:
    return lambda data: data["failures"][0].__setitem__(index, value)


HOSTILE = {
    "timings not a list": lambda d: d.__setitem__("timings", {"a": 1}),
    "too many routes' timings": lambda d: d.__setitem__("timings", [["r", [], 0.0, 0.0]] * 1001),
    "timings of three": lambda d: d["timings"][0].pop(),
    "timings of five": lambda d: d["timings"][0].append(1),
    "timings route a number": set_timing(0, 5),
    "timings buckets an object": set_timing(1, {"0": 1}),
    "bucket index past the last": set_timing(1, [[BUCKETS, 1]]),
    "bucket index negative": set_timing(1, [[-1, 1]]),
    "bucket count negative": set_timing(1, [[3, -1]]),
    "bucket count a float": set_timing(1, [[3, 1.5]]),
    "bucket count a bool": set_timing(1, [[3, True]]),
    "bucket index a string": set_timing(1, [["3", 1]]),
    "bucket of three": set_timing(1, [[3, 1, 1]]),
    "bucket not a pair": set_timing(1, [3]),
    "sum NaN": set_timing(2, float("nan")),
    "sum infinite": set_timing(2, float("inf")),
    "sum negative": set_timing(2, -1.0),
    "sum a string": set_timing(2, "1.0"),
    "sum a bool": set_timing(2, True),
    "max NaN": set_timing(3, float("nan")),
    "max negative": set_timing(3, -0.5),
    "max missing": set_timing(3, None),
    "failures not a list": lambda d: d.__setitem__("failures", "boom"),
    "a failure of nine": lambda d: d["failures"][0].pop(),
    "a failure of eleven": lambda d: d["failures"][0].append("x"),
    "a failure an object": lambda d: d["failures"].__setitem__(0, {"route": "r"}),
    "failure route a number": set_failure(0, 1),
    "failure handler null": set_failure(1, None),
    "failure exception a list": set_failure(2, ["ValueError"]),
    "failure message a number": set_failure(3, 5),
    "failure count a string": set_failure(4, "3"),
    "failure count a float": set_failure(4, 3.0),
    "failure time NaN": set_failure(5, float("nan")),
    "failure time infinite": set_failure(5, float("inf")),
    "failure time negative": set_failure(5, -1.0),
    "failure time a string": set_failure(5, "now"),
    "failure topic null": set_failure(6, None),
    "failure payload a list": set_failure(7, [0, 1]),
    "failure payload beyond latin-1": set_failure(7, "ok \u0100"),
    "failure payload an emoji": set_failure(7, "\U0001f4a5"),
    "failure size a string": set_failure(8, "13"),
    "failure size negative": set_failure(8, -13),
    "failure traceback a number": set_failure(9, 0),
    # Numbers past any honest count would overflow the floats they become (rates, quantiles).
    "bucket count astronomical": set_timing(1, [[3, 10**400]]),
    "failure count astronomical": set_failure(4, 10**400),
    "failure count negative": set_failure(4, -5),
    "failure size astronomical": set_failure(8, 2**60),
    "failure time astronomical": set_failure(5, 1e300),
    "sum astronomical": set_timing(2, 1e300),
}


@pytest.mark.parametrize("change", HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_report_is_a_protocol_violation(change):
    with pytest.raises(ProtocolViolation, match="a heartbeat message with"):
        decode(with_changes(change))


def test_the_good_frame_the_hostile_ones_start_from_is_accepted():
    assert decode(with_changes(lambda data: None)) == BEAT


def test_a_failures_count_is_at_least_one():
    beat = decode(with_changes(set_failure(4, 0)))
    assert isinstance(beat, Heartbeat) and beat.failures[0].count == 1


def test_oversized_strings_are_cut():
    def enlarge(data: dict[str, Any]) -> None:
        data["timings"][0][0] = "r" * (MAX_TOPIC * 3)
        item = data["failures"][0]
        item[0] = "r" * (MAX_TOPIC * 3)
        item[1] = "h" * 5000
        item[2] = "E" * 5000
        item[3] = "m" * 5000
        item[6] = "t" * (MAX_TOPIC * 3)
        item[7] = "\xff" * (PAYLOAD_PREVIEW * 10)
        item[9] = "x" * (MAX_LOG_LINE * 4)

    beat = decode(with_changes(enlarge))
    assert isinstance(beat, Heartbeat)
    assert beat.timings[0].route == "r" * MAX_TOPIC
    (cut, *_) = beat.failures
    assert cut.route == "r" * MAX_TOPIC
    assert cut.topic == "t" * MAX_TOPIC
    assert cut.payload == b"\xff" * PAYLOAD_PREVIEW
    assert cut.exception == "E" * 200
    assert cut.handler == "h" * 200
    assert cut.message == "m" * 500
    assert len(cut.traceback) <= MAX_LOG_LINE + 64


def test_more_failure_groups_than_a_heartbeat_carries_are_dropped_not_refused():
    def flood(data: dict[str, Any]) -> None:
        data["failures"] = data["failures"][:1] * (MAX_FAILURES * 3)

    beat = decode(with_changes(flood))
    assert isinstance(beat, Heartbeat) and len(beat.failures) == MAX_FAILURES


def test_more_buckets_than_there_are_are_not_read():
    beat = decode(with_changes(set_timing(1, [[0, 1]] * (BUCKETS * 10))))
    assert isinstance(beat, Heartbeat) and len(beat.timings[0].buckets) == BUCKETS
