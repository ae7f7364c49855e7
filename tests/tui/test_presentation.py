"""The plain functions behind the widgets: number formats, the throughput bars, toast choice."""

from __future__ import annotations

import logging

from tui import format as fmt
from tui.toasts import BURST, toasts_for
from tui.widgets.throughput import bar_rows

from .fixtures import event


class TestFormats:
    def test_durations_use_two_units_at_most(self):
        assert [fmt.duration(s) for s in (0, 45, 725, 3_725, 4 * 86_400 + 7 * 3_600)] == [
            "0s", "45s", "12m 05s", "1h 02m", "4d 07h",
        ]
        assert fmt.duration(None) == fmt.MISSING

    def test_sizes_are_binary_units(self):
        assert fmt.size(512) == "512 B"
        assert fmt.size(int(48.2 * 1024 * 1024)) == "48.2 MiB"
        assert fmt.size(3 * 1024**4) == "3.0 TiB"
        assert fmt.size(None) == fmt.MISSING

    def test_rates_stay_short(self):
        assert [fmt.rate(r) for r in (0, 7.54, 152.4, 12_345, 25_000_000)] == ["0", "7.5", "152", "12.3k", "25.0M"]

    def test_clock_is_utc(self):
        assert fmt.clock(1_767_225_600.0 + 3_725) == "01:02:05"


class TestThroughputBars:
    def test_bars_start_at_zero_so_a_small_wobble_stays_small(self):
        top, bottom = bar_rows([100, 101], width=2, height=2)
        assert top == "██"  # 100 of 101 is nearly full, not empty
        assert bottom == "██"

    def test_newest_sample_is_on_the_right_and_missing_history_is_blank(self):
        (row,) = bar_rows([8, 4], width=4, height=1)
        assert row == "  █▄"

    def test_a_trickle_shows_a_sliver_and_silence_nothing(self):
        (row,) = bar_rows([0, 0.1, 1000], width=3, height=1)
        assert row == " ▁█"

    def test_bars_from_a_floor_show_the_change_above_it(self):
        (row,) = bar_rows([45, 46.6, 48.2], width=3, height=1, floor=45)
        assert row == "▁▄█"  # the floor is a sliver, not nothing

    def test_a_ceiling_keeps_a_small_wobble_small(self):
        (row,) = bar_rows([47.0, 47.01], width=2, height=1, floor=47.0, ceiling=48.0)
        assert row == "▁▁"

    def test_only_the_last_width_samples_show(self):
        (row,) = bar_rows([1000, 1, 1], width=2, height=1)
        assert row == "██"  # scaled to the visible peak


class TestToastChoice:
    def test_bad_news_and_restarts_become_toasts_routine_events_do_not(self):
        events = [
            event(1, 0, "started", "workers starting"),
            event(2, 0, "exited", "worker a#0 stopped", "a#0"),
            event(3, 0, "exited", "worker a#1 exited with 1", "a#1", logging.WARNING),
            event(4, 0, "hung", "worker a#2: hung", "a#2", logging.WARNING),
            event(5, 0, "restarted", "worker a#1 restarted", "a#1"),
            event(6, 0, "log", "handler failed", "a#0", logging.ERROR),
        ]
        toasts = toasts_for(events)
        assert [(t.title, t.severity) for t in toasts] == [
            ("Worker died", "warning"), ("Worker hung", "warning"), ("Worker restarted", "information"),
        ]

    def test_a_burst_of_deaths_is_one_toast(self):
        deaths = [event(i, 0, "exited", "exited", f"a#{i}", logging.WARNING) for i in range(BURST + 2)]
        (toast,) = toasts_for(deaths)
        assert toast.title == f"Worker died ({BURST + 2})"
        assert "a#0" in toast.message and f"a#{BURST + 1}" in toast.message

    def test_crash_loops_stay_up_longer(self):
        (toast,) = toasts_for([event(1, 0, "crash-loop", "crash-looping", "a#0", logging.ERROR)])
        assert toast.severity == "error"
        assert toast.timeout and toast.timeout > 5
