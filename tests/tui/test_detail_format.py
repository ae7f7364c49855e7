"""The detail screens' plain functions: text made safe, handler times, the histogram, the sparklines."""

from __future__ import annotations

import re

from engine.details import FailureExample, FailureGroup, HeldMessage, WorkerDetail
from engine.text import printable
from engine.timings import BOUNDS, BUCKETS, bucket_of
from tui import format as fmt
from tui.detail_format import bound, handler_time, payload_size
from tui.widgets.failure_example import example_text, preview_lines
from tui.widgets.handler_times import header_row, quantile_row
from tui.widgets.held_messages import held_lines
from tui.widgets.histogram import bucket_range, histogram_lines
from tui.widgets.spark_bars import compress
from tui.widgets.worker_summary import summary_lines

from .fixtures import (
    BINARY_PAYLOAD,
    BROKER_DOWN,
    LONG_TRACEBACK,
    broker_down_snapshot,
    temperature_route_detail,
    temperature_worker_detail,
    timings,
)


class TestPrintable:
    def test_escape_sequences_and_control_characters_show_as_text(self):
        assert printable("a\x1b[31mred\x07\x00") == "a\\x1b[31mred\\x07\\x00"

    def test_newlines_stay_and_tabs_become_spaces(self):
        assert printable("line 1\n\tline 2") == "line 1\n    line 2"

    def test_invisible_unicode_controls_show_too(self):
        assert printable("abc\u202edef\x9b") == "abc\\u202edef\\x9b"

    def test_printable_text_is_returned_as_is(self):
        text = "sensor s-17: 21.4 °C [bold]"
        assert printable(text) is text


class TestHandlerTime:
    def test_each_range_in_at_most_six_characters(self):
        shown = [handler_time(s) for s in (0.0000123, 0.00085, 0.0012, 0.038, 0.25, 2.5, 42.0, 250.0)]
        assert shown == ["12µs", "850µs", "1.2ms", "38ms", "250ms", "2.50s", "42.0s", "250s"]
        assert all(len(text) <= 6 for text in shown)

    def test_no_time_is_a_dash(self):
        assert handler_time(None) == fmt.MISSING

    def test_bounds_read_as_written(self):
        assert [bound(b) for b in (1e-5, 0.00025, 0.00315, 0.001, 0.25, 2.5, 100.0)] == [
            "10µs", "250µs", "3.15ms", "1ms", "250ms", "2.5s", "100s"]

    def test_payload_size_says_when_only_the_first_bytes_were_kept(self):
        assert payload_size(29, 29) == "29 B"
        assert payload_size(200, 4096) == "first 200 of 4,096 B"


class TestHistogram:
    def test_only_the_range_of_non_empty_buckets_is_drawn_with_its_bounds_beneath(self):
        counts = timings({0.0004: 10, 0.0011: 40, 0.0021: 20}).counts
        first, last = bucket_range(counts) or (0, 0)
        lines = histogram_lines(counts, 40, 3)
        assert len(lines) == 4
        buckets = last - first + 1
        assert all(len(row) == 3 * buckets for row in lines[:3])  # three columns a bucket when they fit
        assert lines[-1].startswith(bound(BOUNDS[first - 1]))
        assert lines[-1].rstrip().endswith(bound(BOUNDS[last]))
        assert "█" in lines[0]  # the fullest bucket reaches the top

    def test_more_buckets_than_columns_are_added_together(self):
        counts = [1] * BUCKETS
        lines = histogram_lines(counts, 20, 2)
        assert all(len(row) <= 20 for row in lines[:2])
        assert lines[-1].endswith(">100s")

    def test_nothing_counted_draws_nothing(self):
        assert histogram_lines([0] * BUCKETS, 40, 3) == []

    def test_the_quantile_table_lines_up_under_its_header(self):
        minute = timings({0.0011: 100, 0.041: 1})
        row, header = quantile_row("1 min", minute), header_row()
        assert len(row) == len(header)
        assert row.split() == ["1", "min", "1.1ms", "1.2ms", "1.2ms", "41ms", "101"]


class TestSparkBars:
    def test_a_long_history_keeps_each_stretchs_peak(self):
        samples = [1.0] * 300
        samples[150] = 9.0
        compressed = compress(samples, 30)
        assert len(compressed) == 30 and max(compressed) == 9.0

    def test_a_short_history_is_kept_whole(self):
        assert compress([1.0, 2.0], 30) == [1.0, 2.0]


class TestWorkerText:
    def test_the_summary_says_who_the_worker_is_and_why_it_last_exited(self):
        lines = summary_lines(temperature_worker_detail())
        fields = {label: value for line in lines for label, value, _ in line}
        assert fields["last exit"] == "SIGKILL (killed: hung, no heartbeat for 60 s)"
        assert fields["heartbeat"] == "0.4s ago"
        assert fields["restarts"] == "1"
        assert fields["client id"].startswith("routemq-edge01-")

    def test_a_running_worker_cut_off_from_the_broker_is_not_shown_as_healthy(self):
        info = broker_down_snapshot().workers[0]
        lines = summary_lines(WorkerDetail(info))
        state = next(field for line in lines for field in line if field[0] == "state")
        assert state == ("state", f"disconnected: {BROKER_DOWN}", "worker-summary--warning")

    def test_held_messages_fit_their_height(self):
        held = tuple(HeldMessage(f"sensors/s-{n}/temperature", n * 0.5) for n in range(6))
        lines = held_lines(held, 4)
        assert lines[0] == "holds 6 messages"
        assert len(lines) == 4 and lines[-1].strip() == "… 4 more"


class TestFailureExample:
    def test_the_example_shows_where_what_and_the_whole_traceback(self):
        group = temperature_route_detail().failures[0]
        text = example_text(group).plain
        assert "UnicodeDecodeError, 3 times; the latest:" in text
        assert "2026-01-01 01:01:42 UTC" in text
        assert "sensors/+/temperature#1" in text
        assert group.latest.preview in text
        assert LONG_TRACEBACK.count("\n") >= 60
        assert LONG_TRACEBACK.rstrip("\n") in text

    def test_a_binary_payload_shows_no_control_character(self):
        example = FailureExample(0.0, "s#0", "t", BINARY_PAYLOAD, 4096, "Traceback\x1b[2J\n  boom\x00")
        text = example_text(FailureGroup("ValueError", 1, example)).plain
        assert not any(c != "\n" and not c.isprintable() for c in text)
        assert "\\x1b[31mRED" in text and "Traceback\\x1b[2J" in text

    def test_no_failure_says_so(self):
        assert example_text(None).plain.startswith("No failure")

    def test_a_preview_is_cut_between_escapes_never_inside_one(self):
        preview = FailureExample(0.0, "s#0", "t", BINARY_PAYLOAD, 4096, "").preview
        for width in range(1, 50):
            lines = preview_lines(preview, width)
            assert "".join(lines) == preview
            for line in lines:
                # Every line is whole escapes and characters, and fits unless one escape is wider.
                assert re.fullmatch(r"(?:\\(?:x[0-9a-f]{2}|[tnr])|[^\\])+", line), (width, line)
                assert len(line) <= max(width, 4)

    def test_with_its_width_the_preview_lines_up_under_its_label(self):
        group = temperature_route_detail().failures[0]
        lines = example_text(group, width=40).plain.splitlines()
        start = lines.index("payload   first 200 of 4,096 B") + 1
        preview = lines[start:lines.index("traceback")]
        assert len(preview) > 5 and all(line.startswith(" " * 10) and len(line) <= 40 for line in preview)
        assert "".join(line[10:] for line in preview) == group.latest.preview


def test_fixture_timings_fall_in_their_buckets():
    minute = timings({0.0011: 3})
    assert minute.counts[bucket_of(0.0011)] == 3 and minute.count == 3
