"""Sorting by a value that moves every second (msg/s, busy, cpu, ages) without reshuffling the rows.

Sorting by the exact value would swap two workers at 131 and 133 msg/s back and forth on every
refresh, and the row under the operator's eye would jump. Instead a column that moves has a
*bucket* function that maps a value to a position on a coarse scale (5 cpu points, 25 % of a
rate, an age doubling); rows sort by their bucket and, within one, keep the order they had. A
row changes bucket only once its value is a quarter of a bucket past the edge (hysteresis), so
that a value sitting on an edge does not flip between two buckets. A row therefore moves only when its value moved
clearly past its neighbours', and ties in a bucket keep their place rather than follow noise.

A fresh sort (a sort key pressed, a header clicked) orders by the exact value within each
bucket, so the first view is exact; the refreshes after it move rows only as above.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Bucket = Callable[[float], float]  # a value -> its position on the bucket scale (bucket = floor)

MARGIN = 0.25  # how far past a bucket's edge (in buckets) a value must go to change bucket


def linear(step: float) -> Bucket:
    """Buckets ``step`` wide: for percentages, where 5 points apart matters wherever it is."""
    return lambda value: value / step


def relative(ratio: float = 1.25, unit: float = 1.0) -> Bucket:
    """Buckets growing by ``ratio``: for rates and sizes, where 25 % apart matters at any scale
    above one ``unit`` (values are counted in units of 1/``unit``: 1000 for seconds shown in ms)."""
    scale = math.log(ratio)
    return lambda value: math.log1p(max(value * unit, 0.0)) / scale


AGE_FIRST = 2.0  # seconds: every age below this is one bucket (a heartbeat comes every second)


def ages(first: float = AGE_FIRST) -> Bucket:
    """Buckets for ages (since the last heartbeat, the last message; uptime), each twice as wide as
    the one before: 0 to 2 s, 2 to 6 s, 6 to 14 s, 14 to 30 s, ...

    An age grows every second and falls back to zero when the next heartbeat or message comes, so
    a worker heard every second has a beat that cycles between 0 and 1 s: with buckets as fine as a
    rate's, rows would swap at every refresh. In these, the ages of workers that are heard, or
    busy, share the first bucket (and keep their order); a row moves when its age doubles.
    """
    return lambda value: math.log2(1.0 + max(value, 0.0) / first)


class StableOrder:
    """The bucket each row was in at the last ordering, so that the next one can hold it."""

    def __init__(self) -> None:
        self._buckets: dict[str, int] = {}

    def forget(self) -> None:
        """A fresh sort: buckets are worked out from the values alone."""
        self._buckets.clear()

    def order(
        self,
        values: Sequence[tuple[str, Any]],
        bucket: Bucket,
        previous: Mapping[str, int],
        *,
        reverse: bool,
        fresh: bool,
    ) -> list[str]:
        """The keys of ``values`` (key, value; no None) sorted by bucket, ``reverse`` for the biggest first.

        Within a bucket: by the exact value when ``fresh``, else in the ``previous`` order (key ->
        place; new rows after the others, in the given order).
        """
        held: dict[str, int] = {}
        for key, value in values:
            held[key] = self._bucket_of(key, bucket(value))
        self._buckets = held  # rows gone are forgotten
        if fresh:
            ranked = sorted(values, key=lambda pair: (held[pair[0]], pair[1]), reverse=reverse)
            return [key for key, _ in ranked]
        sign = -1 if reverse else 1
        late = len(previous)
        places = {key: previous.get(key, late + index) for index, (key, _) in enumerate(values)}
        return sorted(held, key=lambda key: (sign * held[key], places[key]))

    def _bucket_of(self, key: str, position: float) -> int:
        old = self._buckets.get(key)
        if old is not None and old - MARGIN <= position < old + 1 + MARGIN:
            return old
        return math.floor(position)
