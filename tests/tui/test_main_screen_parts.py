"""The plain parts behind the main screen's diagnosis features: column fitting, stable sorting,
the events feed's bounds and narrowing, toast rate limits, the scale-to answer, p99 format."""

from __future__ import annotations

import logging

from tui import format as fmt
from tui.event_feed import EventFeed
from tui.screens.scale import parse_count
from tui.toasts import ToastLimiter
from tui.widgets.column_layout import Column, distinct_floor, fit, plan, shorten
from tui.widgets.stable_order import StableOrder, ages, linear, relative

from .fixtures import event


class TestShortening:
    def test_a_text_that_fits_is_left_alone(self):
        assert shorten("1 (crashed)", 11) == "1 (crashed)"

    def test_the_end_or_the_middle_gives_way_to_an_ellipsis(self):
        assert shorten("SIGKILL (likely OOM or killed)", 12) == "SIGKILL (li…"
        assert shorten("sensors/+/temperature", 12) == "sensors/+/t…"
        middle = shorten("sensors/+/temperature", 13, "middle")
        assert len(middle) == 13 and middle.startswith("sensor") and middle.endswith("ature") and "…" in middle

    def test_wide_characters_count_as_two_cells(self):
        shortened = shorten("温度センサー/temperature", 9)
        assert shortened == "温度セン…"  # 8 cells of text, then the ellipsis


class TestPlan:
    # slot, route (shrinks to 12), pid, state, exit (shrinks to 9, capped at 36), busy (1), detail (2)
    NATURAL = [6, 30, 7, 12, 40, 8, 30]
    PRIORITIES = [0, 0, 0, 0, 0, 1, 2]
    FLOORS = [6, 14, 7, 12, 11, 8, 14]
    CAPS: list[int | None] = [None, None, None, None, 38, None, 50]

    def widths(self, available: int) -> list[int]:
        return plan(self.NATURAL, self.PRIORITIES, self.FLOORS, self.CAPS, available)

    def test_too_narrow_the_columns_that_always_show_keep_their_floors(self):
        assert self.widths(40) == [6, 14, 7, 12, 11, 0, 0]

    def test_room_grows_the_shrunk_columns_in_turn(self):
        widths = self.widths(70)  # 20 cells over the floors: 10 each
        assert widths == [6, 24, 7, 12, 21, 0, 0]

    def test_then_the_others_appear_in_order_of_priority_and_a_shrinkable_one_takes_the_rest(self):
        assert self.widths(101) == [6, 30, 7, 12, 38, 8, 0]  # 0 left for detail
        assert self.widths(120) == [6, 30, 7, 12, 38, 8, 19]
        assert self.widths(500) == [6, 30, 7, 12, 38, 8, 30]

    def test_the_first_column_that_does_not_fit_ends_the_list(self):
        natural, priorities = [10, 20, 4], [0, 1, 2]
        assert plan(natural, priorities, natural, [None] * 3, 25) == [10, 0, 0]  # the narrow one waits its turn


class TestNamesReadApart:
    def test_rows_that_differ_only_in_the_middle_get_a_route_wide_enough_to_tell_them_apart(self):
        names = [("#0", "plant/alpha/line/sensor"), ("#0", "plant/omega/line/sensor")]
        width = distinct_floor(names, 1, 8, 23, "middle")
        shown = {shorten(route, width, "middle") for _, route in names}
        assert len(shown) == 2
        assert width > 8 and shorten(names[0][1], 8, "middle") == shorten(names[1][1], 8, "middle")

    def test_the_slot_tells_rows_of_one_route_apart(self):
        names = [("#0", "sensors/+/temperature"), ("#1", "sensors/+/temperature")]
        assert distinct_floor(names, 1, 8, 21, "middle") == 8

    def test_fit_applies_it_to_the_frozen_column(self):
        columns = [Column("slot", "slot", frozen=True), Column("route", "route", frozen=True, min_width=8,
                                                                elide="middle")]
        names = [("#0", "plant/alpha/line/sensor"), ("#0", "plant/omega/line/sensor")]
        widths = fit(columns, [6, 25], names, 10)  # far too narrow: the floors
        assert widths[1] - 2 > 8


class TestStableOrder:
    def test_rates_that_wobble_do_not_reshuffle_the_rows(self):
        order = StableOrder()
        first = order.order([("a", 131.0), ("b", 133.0), ("c", 20.0)], relative(), {}, reverse=True, fresh=True)
        assert first == ["b", "a", "c"]
        previous = {key: index for index, key in enumerate(first)}
        for a, b in ((134.0, 130.0), (129.0, 136.0), (133.5, 131.0)):
            again = order.order([("a", a), ("b", b), ("c", 20.0)], relative(), previous, reverse=True, fresh=False)
            assert again == first

    def test_a_row_that_clearly_passes_its_neighbour_moves(self):
        order = StableOrder()
        first = order.order([("a", 131.0), ("b", 133.0)], relative(), {}, reverse=True, fresh=True)
        previous = {key: index for index, key in enumerate(first)}
        assert order.order([("a", 400.0), ("b", 133.0)], relative(), previous, reverse=True, fresh=False) == ["a", "b"]

    def test_a_value_sitting_on_a_bucket_edge_does_not_flip(self):
        order = StableOrder()
        bucket = linear(5.0)
        first = order.order([("a", 9.9), ("b", 10.0)], bucket, {}, reverse=True, fresh=True)
        assert first == ["b", "a"]
        previous = {key: index for index, key in enumerate(first)}
        # a crosses 10 and b drops under it, but neither by a quarter of a bucket: nothing moves.
        assert order.order([("a", 10.6), ("b", 9.5)], bucket, previous, reverse=True, fresh=False) == ["b", "a"]
        # Far enough past the edges: they swap.
        assert order.order([("a", 11.5), ("b", 8.2)], bucket, previous, reverse=True, fresh=False) == ["a", "b"]


class TestEventFeed:
    def test_a_flood_of_log_lines_does_not_push_lifecycle_events_out(self):
        feed = EventFeed(max_events=3, max_logs=5)
        feed.add(0, "exited", "a#0", "worker a#0 exited with 1", logging.WARNING)
        for n in range(100):
            feed.add(n, "log", "a#1", f"line {n}", logging.INFO)
        messages = [entry.message for entry in feed.shown()]
        assert messages == ["worker a#0 exited with 1", *(f"line {n}" for n in range(95, 100))]

    def test_it_narrows_to_warnings_and_to_a_slot(self):
        feed = EventFeed()
        feed.add(0, "log", "a#0", "fine", logging.INFO)
        feed.add(1, "log", "a#0", "oops", logging.ERROR)
        feed.add(2, "exited", "b#0", "b died", logging.WARNING)
        feed.warnings_only = True
        assert [e.message for e in feed.shown()] == ["oops", "b died"]
        feed.slot = "a#0"
        assert [e.message for e in feed.shown()] == ["oops"]
        assert feed.describe() == "warnings and errors, only a#0"
        feed.warnings_only = False
        assert [e.message for e in feed.shown()] == ["fine", "oops"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestToastLimiter:
    def test_a_crash_loop_toasts_once_per_slot_then_sums_up_what_it_held_back(self):
        clock = FakeClock()
        limiter = ToastLimiter(interval=30.0, clock=clock)
        seq = 0

        def death(slot: str) -> list:
            nonlocal seq
            seq += 2
            return [event(seq, 0, "exited", f"{slot} exited with 1", slot, logging.WARNING),
                    event(seq + 1, 0, "restarted", f"{slot} restarted", slot)]

        assert [t.title for t in limiter.toasts_for(death("a#0"))] == ["Worker died"]
        for _ in range(4):  # dies every 5 s: nothing new to say
            clock.now += 5
            assert limiter.toasts_for(death("a#0")) == []
        assert [t.title for t in limiter.toasts_for(death("b#0"))] == ["Worker died"]  # another slot: its own toast
        # Worse news gets through at once.
        crash_loop = [event(90, 0, "crash-loop", "a#0 is crash-looping", "a#0", logging.ERROR)]
        assert [t.severity for t in limiter.toasts_for(crash_loop)] == ["error"]
        clock.now += 30  # a#0's and b#0's intervals are over: one summary
        (summary,) = limiter.toasts_for([])
        assert summary.title == "10 more notifications"
        assert "a#0 (9)" in summary.message and "b#0 (1)" in summary.message
        assert limiter.toasts_for([]) == []

    def test_events_without_a_slot_are_not_limited(self):
        limiter = ToastLimiter(interval=30.0, clock=FakeClock())
        restart = [event(1, 0, "restarted", "restarted 2 dead workers by request")]
        assert len(limiter.toasts_for(restart)) == 1
        assert len(limiter.toasts_for([event(2, 0, "restarted", "restarted 1 dead worker by request")])) == 1


class TestAgeBuckets:
    def test_ages_under_two_seconds_share_a_bucket_and_a_bucket_doubles(self):
        bucket = ages()
        assert {int(bucket(age)) for age in (0.0, 0.3, 0.9, 1.5, 1.99)} == {0}
        assert [int(bucket(age)) for age in (2.0, 6.0, 14.0, 30.0)] == [1, 2, 3, 4]

    def test_a_heartbeat_cycling_under_a_second_never_moves_a_row(self):
        order = StableOrder()
        first = order.order([("a", 0.9), ("b", 0.5), ("c", 0.1)], ages(), {}, reverse=True, fresh=True)
        assert first == ["a", "b", "c"]
        previous = {key: index for index, key in enumerate(first)}
        for a, b, c in ((0.1, 0.9, 0.5), (0.5, 0.1, 0.95), (0.0, 0.7, 0.3)):
            assert order.order([("a", a), ("b", b), ("c", c)], ages(), previous, reverse=True, fresh=False) == first
        late = order.order([("a", 0.2), ("b", 0.4), ("c", 4.6)], ages(), previous, reverse=True, fresh=False)
        assert late[0] == "c"


class TestScaleToAnswer:
    def test_a_whole_number_of_at_least_one(self):
        assert parse_count(" 7 ") == 7
        assert parse_count("0") == "A pool needs at least 1 worker; to stop every worker, press s instead."
        assert parse_count("2.5") == "'2.5' is not a whole number: type a whole number of workers, at least 1."
        # Nothing typed is the same kind of answer as a bad number: what to type.
        assert parse_count("") == "Nothing typed: type a whole number of workers, at least 1 (Esc cancels)."
        assert parse_count("   ") == parse_count("")


class TestMillis:
    def test_p99_reads_in_milliseconds(self):
        assert [fmt.millis(s) for s in (0.00042, 0.0124, 0.34, 12.4)] == ["0.42", "12.4", "340", "12,400"]
        assert fmt.millis(None) == fmt.MISSING
