"""engine/supervisor/route_history.py: a route's handler times since start and over the last
minute, and its failures grouped by cause, whichever workers reported them."""

from __future__ import annotations

from engine.details import FailureExample
from engine.protocol import HandlerFailure, RouteTimes
from engine.supervisor.route_history import MAX_GROUPS, MINUTE, RouteHistories, RouteHistory, example_of
from engine.timings import bucket_of

T0 = 1_700_000_000.0


def times(count: int, seconds: float, route: str = "jobs/{name}") -> RouteTimes:
    """``count`` handler runs of ``seconds`` each."""
    return RouteTimes(route, ((bucket_of(seconds), count),), count * seconds, seconds)


def example(topic: str = "jobs/a", at: float = T0, slot: str = "jobs/{name}#0") -> FailureExample:
    return FailureExample(at, slot, topic, b'{"n": 1}', 8, "Traceback ...\nValueError: bad")


# --- handler times --------------------------------------------------------------------------------


def test_reports_add_up_in_the_minute_and_in_the_total():
    history = RouteHistory()
    assert history.minute(T0).count == 0 and history.minute(T0).max is None
    history.add_times(times(3, 0.001), T0)
    history.add_times(times(2, 0.05), T0 + 10.5)
    minute = history.minute(T0 + 20)
    assert minute.count == 5
    assert minute.max == 0.05
    assert minute.counts[bucket_of(0.001)] == 3
    assert minute.counts[bucket_of(0.05)] == 2
    assert history.total() == minute


def test_a_report_older_than_a_minute_falls_out_of_the_minute_but_stays_in_the_total():
    history = RouteHistory()
    history.add_times(times(3, 0.001), T0)
    history.add_times(times(1, 0.2), T0 + 30)
    assert history.minute(T0 + MINUTE - 1).count == 4
    later = history.minute(T0 + MINUTE + 1)
    assert later.count == 1
    assert later.max == 0.2
    assert history.total().count == 4
    assert history.total().counts[bucket_of(0.001)] == 3
    gone = history.minute(T0 + 30 + MINUTE + 1)
    assert gone.count == 0 and gone.max is None and gone.quantile(0.99) is None
    assert history.total().count == 4


def test_a_report_after_a_quiet_minute_starts_a_new_one():
    history = RouteHistory()
    history.add_times(times(3, 0.001), T0)
    history.add_times(times(1, 0.3), T0 + 2 * MINUTE)
    minute = history.minute(T0 + 2 * MINUTE)
    assert minute.count == 1
    assert minute.max == 0.3
    assert history.total().count == 4


def test_the_minute_is_merged_again_after_a_new_report_in_the_same_second():
    history = RouteHistory()
    history.add_times(times(3, 0.001), T0 + 0.1)
    assert history.minute(T0 + 0.2).count == 3
    history.add_times(times(2, 0.004), T0 + 0.4)
    assert history.minute(T0 + 0.6).count == 5  # the same second as the last answer: not the cached one
    assert history.minute(T0 + 0.6).max == 0.004
    history.add_times(times(1, 0.01), T0 + 0.7)
    assert history.minute(T0 + 0.8).count == 6


def test_the_minute_moves_on_with_the_clock_without_new_reports():
    history = RouteHistory()
    history.add_times(times(3, 0.001), T0)
    assert history.minute(T0 + 1).count == 3
    assert history.minute(T0 + MINUTE + 1).count == 0  # asked at a later second: not the cached answer


# --- failures -------------------------------------------------------------------------------------


def test_failures_are_grouped_by_cause_counts_add_up_and_the_latest_example_is_kept():
    history = RouteHistory()
    history.failed("ValueError", 2, example("jobs/1", T0))
    history.failed("KeyError", 1, example("jobs/2", T0 + 1))
    latest = example("jobs/3", T0 + 2, slot="jobs/{name}#1")
    history.failed("ValueError", 3, latest)
    groups = history.failure_groups()
    assert [(g.exception, g.count) for g in groups] == [("ValueError", 5), ("KeyError", 1)]
    assert groups[0].latest == latest
    assert groups[1].latest.topic == "jobs/2"
    assert sum(g.count for g in groups) == 6


def test_failure_groups_come_most_recently_seen_first():
    history = RouteHistory()
    for index, cause in enumerate(("A", "B", "C")):
        history.failed(cause, 1, example(at=T0 + index))
    assert [g.exception for g in history.failure_groups()] == ["C", "B", "A"]
    history.failed("A", 1, example(at=T0 + 10))
    assert [g.exception for g in history.failure_groups()] == ["A", "C", "B"]


def test_beyond_max_groups_the_least_recently_seen_goes():
    history = RouteHistory()
    for index in range(MAX_GROUPS):
        history.failed(f"Error{index}", 1, example(at=T0 + index))
    history.failed("Error0", 1, example(at=T0 + 100))  # seen again: now the most recent
    history.failed("NewError", 1, example(at=T0 + 101))
    causes = [g.exception for g in history.failure_groups()]
    assert len(causes) == MAX_GROUPS
    assert causes[:2] == ["NewError", "Error0"]
    assert "Error1" not in causes  # the least recently seen
    assert "Error2" in causes
    assert next(g for g in history.failure_groups() if g.exception == "Error0").count == 2


def test_an_example_is_timed_when_received_not_when_the_worker_says():
    report = HandlerFailure(
        "jobs/{name}", "app.jobs.handle", "ValueError", "bad", 4, 1e17, "jobs/x", b"\x00\xff", 5000, "Traceback ...",
    )
    assert example_of(report, "jobs/{name}#2", T0) == FailureExample(
        T0, "jobs/{name}#2", "jobs/x", b"\x00\xff", 5000, "Traceback ..."
    )


# --- RouteHistories -------------------------------------------------------------------------------


def test_histories_are_kept_by_route():
    histories = RouteHistories()
    assert histories.get("jobs/{name}") is None
    jobs = histories.of("jobs/{name}")
    assert histories.of("jobs/{name}") is jobs
    assert histories.get("jobs/{name}") is jobs
    jobs.add_times(times(1, 0.001), T0)
    sensors = histories.of("sensors/#")
    assert sensors is not jobs and sensors.total().count == 0
    assert histories.items() == [("jobs/{name}", jobs), ("sensors/#", sensors)]
    assert histories.get("other/#") is None
