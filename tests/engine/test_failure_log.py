"""engine/worker/failures.py: a worker's handler failures, grouped by route and exception type,
each group with its count and its latest failure in full (traceback formatted only when taken)."""

from __future__ import annotations

import time

from engine.protocol import MAX_FAILURES, MAX_LOG_LINE, MAX_TOPIC, PAYLOAD_PREVIEW
from engine.worker.failures import MAX_TRACEBACK_BYTES, FailureLog, exception_name


class SensorError(Exception):
    class Nested(Exception):
        pass


def parse_reading(payload: bytes) -> float:
    raise ValueError(f"not a reading: {payload[:10]!r}")


def handle(payload: bytes) -> float:
    return parse_reading(payload)


def raised(error_type: type[BaseException] = ValueError, payload: bytes = b"{}") -> BaseException:
    """An exception with a real traceback: raised two calls down, caught here."""
    try:
        if error_type is ValueError:
            handle(payload)
        raise error_type("boom")
    except BaseException as error:
        return error
    raise AssertionError("unreachable")


def fail(log: FailureLog, route: str, error: BaseException, topic: str = "sensors/1/temp",
         payload: bytes | bytearray = b"{}") -> None:
    log.failed(route, "app.sensors.handle", error, topic, payload)


def test_failures_are_grouped_by_route_and_exception_type_with_counts():
    log = FailureLog()
    for _ in range(3):
        fail(log, "sensors/{id}/temp", raised(ValueError))
    fail(log, "sensors/{id}/temp", raised(KeyError))
    fail(log, "jobs/#", raised(ValueError))
    reports = {(r.route, r.exception): r.count for r in log.take()}
    assert reports == {("sensors/{id}/temp", "ValueError"): 3, ("sensors/{id}/temp", "KeyError"): 1,
                       ("jobs/#", "ValueError"): 1}


def test_each_group_keeps_its_latest_failure():
    log = FailureLog()
    fail(log, "sensors/{id}/temp", raised(payload=b"first"), topic="sensors/1/temp", payload=b"first")
    before = time.time()
    big = bytes(range(256)) * 4
    fail(log, "sensors/{id}/temp", raised(payload=b"second"), topic="sensors/2/temp", payload=bytearray(big))
    after = time.time()
    (report,) = log.take()
    assert report.count == 2
    assert report.handler == "app.sensors.handle"
    assert report.topic == "sensors/2/temp"
    assert report.payload == big[:PAYLOAD_PREVIEW] and isinstance(report.payload, bytes)
    assert report.payload_size == len(big)
    assert before <= report.time <= after
    assert report.message == "not a reading: b'second'"
    assert "b'second'" in report.traceback


def test_the_traceback_is_the_handlers_and_is_formatted_when_taken():
    log = FailureLog()
    fail(log, "sensors/{id}/temp", raised(payload=b"x"))
    (report,) = log.take()
    assert report.traceback.startswith("Traceback (most recent call last):")
    assert "parse_reading" in report.traceback and "in handle" in report.traceback
    assert report.traceback.endswith("ValueError: not a reading: b'x'")


def test_take_empties_the_log():
    log = FailureLog()
    assert log.take() == ()
    fail(log, "sensors/{id}/temp", raised())
    assert len(log.take()) == 1
    assert log.take() == ()
    fail(log, "sensors/{id}/temp", raised())
    assert [r.count for r in log.take()] == [1]  # counted afresh


def test_long_fields_are_cut():
    log = FailureLog()
    fail(log, "sensors/{id}/temp", ValueError("m" * 5000), topic="t" * (MAX_TOPIC + 100))
    (report,) = log.take()
    assert report.topic == "t" * MAX_TOPIC
    assert report.message == "m" * 500


def test_exception_names_are_qualified_by_module_unless_builtin():
    assert exception_name(ValueError("x")) == "ValueError"
    assert exception_name(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert exception_name(SensorError()) == f"{__name__}.SensorError"
    assert exception_name(SensorError.Nested()) == f"{__name__}.SensorError.Nested"
    log = FailureLog()
    fail(log, "r", raised(SensorError))
    assert log.take()[0].exception == f"{__name__}.SensorError"


def test_beyond_max_failures_new_groups_are_dropped_but_known_ones_still_count():
    log = FailureLog()
    error = raised()
    for index in range(MAX_FAILURES + 5):
        fail(log, f"route/{index}", error)
    fail(log, "route/0", error)
    reports = log.take()
    assert len(reports) == MAX_FAILURES
    routes = {r.route: r.count for r in reports}
    assert set(routes) == {f"route/{index}" for index in range(MAX_FAILURES)}
    assert routes["route/0"] == 2


def deep_failure() -> BaseException:
    try:
        try:
            raise KeyError("k" * (MAX_LOG_LINE * 3))
        except KeyError:
            innermost_raise()
    except ValueError as error:
        return error
    raise AssertionError("unreachable")


def innermost_raise() -> None:
    raise ValueError("the last words")


def test_a_huge_traceback_keeps_its_end_and_says_what_was_cut():
    log = FailureLog()
    fail(log, "r", deep_failure())
    (report,) = log.take()
    text = report.traceback
    assert text.startswith("[") and "characters of the start cut]" in text.splitlines()[0]
    assert text.endswith("ValueError: the last words")
    assert "innermost_raise" in text
    marker = text.splitlines()[0]
    assert len(text) == len(marker) + 1 + MAX_LOG_LINE
    cut = int(marker[1:].split(" ")[0])
    assert cut > MAX_LOG_LINE  # the KeyError's message, mostly


def test_the_tracebacks_of_one_heartbeat_share_a_byte_budget():
    log = FailureLog()

    def deep(n: int) -> None:
        if n:
            deep(n - 1)
        raise ValueError("é" * 8000)  # two bytes a character in the heartbeat's UTF-8

    kinds = [type(f"Error{i}", (ValueError,), {}) for i in range(MAX_FAILURES)]
    for kind in kinds:
        try:
            try:
                deep(30)
            except ValueError as inner:
                raise kind("wrapped") from inner
        except ValueError as error:
            fail(log, "r", error)
    taken = log.take()
    assert len(taken) == MAX_FAILURES
    sent = sum(len(f.traceback.encode()) for f in taken)
    assert sent <= MAX_TRACEBACK_BYTES + 200 * MAX_FAILURES  # the notes that replace what did not fit
    assert any(f.traceback.startswith("(traceback not sent:") for f in taken)
    assert taken[0].traceback.startswith("Traceback") or "characters of the start cut" in taken[0].traceback
