"""Handler time: a fixed-bucket histogram cheap enough to record every message.

Workers record each handler's time in :class:`Histogram` (a ``bisect`` over constant bounds and
two additions) and send what they recorded since the last heartbeat; the manager adds those up
per route (since start, and per second for the last minute) and answers quantiles from the
buckets with :class:`Timings`, a frozen view. The bounds are the Renard R10 series, ten buckets
a decade from 10 µs to 100 s (each about 1.26 times the last), so a quantile is known within
about a quarter, and every Prometheus-style 1-2.5-5 bound is one of them. Standard library only:
both sides use it.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

_R10 = (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0)
BOUNDS: tuple[float, ...] = (*(round(m * 10.0**e, 12) for e in range(-5, 2) for m in _R10), 100.0)
BUCKETS = len(BOUNDS) + 1  # the last one counts everything above 100 s
# The subset /metrics exposes as `le` bounds: a Prometheus histogram wants few buckets.
EXPORTED_BOUNDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
    50.0, 100.0,
)


def bucket_of(seconds: float) -> int:
    """The bucket a duration falls in: the first bound at or above it (the last for above 100 s)."""
    return bisect_left(BOUNDS, seconds)


class Histogram:
    """A worker's record of handler times for one route since it last sent them."""

    __slots__ = ("counts", "max", "sum")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.sum = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds


@dataclass(frozen=True, slots=True)
class Timings:
    """Handler times over some span: counts per bucket of :data:`BOUNDS`, their sum and the max."""

    counts: tuple[int, ...] = (0,) * BUCKETS
    sum: float = 0.0
    max: float | None = None

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float | None:
        count = self.count
        return self.sum / count if count else None

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q <= 1) in seconds, interpolated within its bucket as
        Prometheus's histogram_quantile does, and never above the largest time seen."""
        count = self.count
        if not count:
            return None
        rank = q * count
        seen = 0
        for index, n in enumerate(self.counts):
            if n and seen + n >= rank:
                low = BOUNDS[index - 1] if index > 0 else 0.0
                high = BOUNDS[index] if index < len(BOUNDS) else (self.max or low)
                value = low + (high - low) * (rank - seen) / n
                return min(value, self.max) if self.max is not None else value
            seen += n
        return self.max

    def cumulative(self, bounds: tuple[float, ...] = EXPORTED_BOUNDS) -> list[tuple[float, int]]:
        """(bound, how many took at most that long) for each of ``bounds`` (each one of BOUNDS),
        as a Prometheus histogram's buckets."""
        out, seen, index = [], 0, 0
        for bound in bounds:
            while index < len(BOUNDS) and BOUNDS[index] <= bound:
                seen += self.counts[index]
                index += 1
            out.append((bound, seen))
        return out

    def merged(self, other: Timings) -> Timings:
        top = max((m for m in (self.max, other.max) if m is not None), default=None)
        return Timings(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)), self.sum + other.sum, top)

