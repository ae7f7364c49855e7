"""engine/timings.py: the R10 bounds, which bucket a time falls in, and quantiles read back from
the buckets (interpolated within one, never above the largest time seen)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from engine.timings import BOUNDS, BUCKETS, EXPORTED_BOUNDS, Histogram, Timings, bucket_of


def timings_of(*seconds: float) -> Timings:
    histogram = Histogram()
    for value in seconds:
        histogram.record(value)
    return Timings(tuple(histogram.counts), histogram.sum, histogram.max)


def bucket_range(seconds: float) -> tuple[float, float]:
    """(low, high]: the range of the bucket ``seconds`` falls in."""
    index = bucket_of(seconds)
    return (BOUNDS[index - 1] if index else 0.0), BOUNDS[index]


# --- bounds ---------------------------------------------------------------------------------------


def test_the_bounds_are_the_r10_series_from_10_us_to_100_s():
    assert BOUNDS[0] == 0.00001
    assert BOUNDS[-1] == 100.0
    assert len(BOUNDS) == 7 * 10 + 1  # ten a decade over seven decades, and 100 s itself
    assert len(BOUNDS) + 1 == BUCKETS
    assert all(low < high for low, high in pairwise(BOUNDS))
    ratios = [high / low for low, high in pairwise(BOUNDS)]
    assert all(1.2 < ratio < 1.3 for ratio in ratios), ratios
    for decade in (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0):
        assert decade in BOUNDS  # exact, not 0.0009999999


def test_every_exported_bound_is_a_bound():
    assert set(EXPORTED_BOUNDS) <= set(BOUNDS)
    assert list(EXPORTED_BOUNDS) == sorted(EXPORTED_BOUNDS)
    assert EXPORTED_BOUNDS[-1] == BOUNDS[-1]


# --- bucket_of ------------------------------------------------------------------------------------


def test_a_time_equal_to_a_bound_falls_in_that_bounds_bucket():
    for index, bound in enumerate(BOUNDS):
        assert bucket_of(bound) == index
        assert bucket_of(bound * 1.000001) == index + 1  # just above: the next one


def test_zero_falls_in_the_first_bucket_and_above_100_s_in_the_last():
    assert bucket_of(0.0) == 0
    assert bucket_of(0.000001) == 0
    assert bucket_of(100.0) == BUCKETS - 2
    assert bucket_of(100.5) == BUCKETS - 1
    assert bucket_of(1e9) == BUCKETS - 1


# --- Histogram ------------------------------------------------------------------------------------


def test_a_histogram_records_counts_sum_and_max():
    histogram = Histogram()
    assert histogram.counts == [0] * BUCKETS and histogram.sum == 0.0 and histogram.max == 0.0
    for value in (0.001, 0.001, 0.05, 0.002, 500.0):
        histogram.record(value)
    assert histogram.counts[bucket_of(0.001)] == 2
    assert histogram.counts[bucket_of(0.002)] == 1
    assert histogram.counts[bucket_of(0.05)] == 1
    assert histogram.counts[-1] == 1
    assert sum(histogram.counts) == 5
    assert histogram.sum == pytest.approx(500.054)
    assert histogram.max == 500.0


# --- Timings --------------------------------------------------------------------------------------


def test_nothing_recorded_has_no_quantile_mean_or_max():
    empty = Timings()
    assert empty.count == 0
    assert empty.mean is None
    assert empty.max is None
    assert empty.quantile(0.5) is None
    assert empty.quantile(1.0) is None


def test_count_and_mean():
    timings = timings_of(0.001, 0.003, 0.005, 0.011)
    assert timings.count == 4
    assert timings.mean == pytest.approx(0.005)


def test_a_quantile_is_interpolated_within_its_bucket():
    index = bucket_of(0.001)  # (0.0008, 0.001]
    counts = [0] * BUCKETS
    counts[index] = 4
    timings = Timings(tuple(counts), 0.0036, BOUNDS[index])
    low, high = BOUNDS[index - 1], BOUNDS[index]
    assert timings.quantile(0.25) == pytest.approx(low + (high - low) / 4)
    assert timings.quantile(0.5) == pytest.approx(low + (high - low) / 2)
    assert timings.quantile(0.75) == pytest.approx(low + (high - low) * 3 / 4)


def test_a_quantile_is_never_above_the_largest_time_seen():
    timings = timings_of(0.00085)  # alone in (0.0008, 0.001]: interpolation alone would say 0.0009 for p50
    for q in (0.01, 0.5, 0.9, 0.99, 1.0):
        value = timings.quantile(q)
        assert value is not None and value <= 0.00085


def test_q_1_is_the_max():
    timings = timings_of(0.0003, 0.0021, 0.0123, 0.0123, 0.0456)
    assert timings.quantile(1.0) == 0.0456
    assert timings_of(250.0, 700.0).quantile(1.0) == 700.0  # above the last bound too


def test_quantiles_of_a_known_mix():
    timings = timings_of(*[0.001] * 90, *[0.1] * 10)
    p50, p90, p99 = timings.quantile(0.5), timings.quantile(0.9), timings.quantile(0.99)
    assert p50 is not None and p90 is not None and p99 is not None
    low, high = bucket_range(0.001)
    assert low < p50 <= high
    assert low < p90 <= high  # the 90th of 100 is still a 1 ms one
    low, high = bucket_range(0.1)
    assert low < p99 <= high
    assert timings.quantile(1.0) == 0.1


def test_above_100_s_interpolates_up_to_the_max():
    timings = timings_of(300.0, 500.0)
    p50 = timings.quantile(0.5)
    assert p50 is not None and 100.0 < p50 <= 500.0


def test_merged_adds_counts_and_sums_and_keeps_the_larger_max():
    a = timings_of(0.001, 0.002)
    b = timings_of(0.002, 0.5)
    merged = a.merged(b)
    assert merged.count == 4
    assert merged.counts[bucket_of(0.002)] == 2
    assert merged.sum == pytest.approx(0.505)
    assert merged.max == 0.5
    assert b.merged(a) == merged
    assert a.merged(Timings()) == a  # nothing seen has no max to win with
    assert Timings().merged(Timings()).max is None
    assert a.count == 2  # frozen: merging made a new one


def test_cumulative_counts_at_the_exported_bounds():
    timings = timings_of(0.0001, 0.0009, 0.001, 0.003, 200.0)
    cumulative = dict(timings.cumulative())
    assert list(cumulative) == list(EXPORTED_BOUNDS)
    assert cumulative[0.0001] == 1  # a time equal to a bound counts at that bound ("le")
    assert cumulative[0.001] == 3
    assert cumulative[0.005] == 4
    assert cumulative[100.0] == 4  # the one above 100 s only in +Inf, which is the count
