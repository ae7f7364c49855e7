"""RouteHistory: what is known of one route over time, whichever workers served it.

Handler times add up from every worker's heartbeats: since start, and per second for the last
minute (a ring of one-second histograms); throughput is sampled once a second; failures are
grouped by cause (an exception type, or a worker's death with the message in hand), each group
with its count and its latest example. Keyed by route pattern, so it outlives restarts,
scaling and reloads.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ..details import HISTORY_SECONDS, FailureExample, FailureGroup
from ..protocol import HandlerFailure, RouteTimes
from ..timings import BUCKETS, Timings

MINUTE = 60  # seconds of the "last minute" window
MAX_GROUPS = 50  # failure groups kept per route; the least recently seen goes first


class _Second:
    __slots__ = ("at", "counts", "max", "sum")

    def __init__(self, at: int) -> None:
        self.at = at
        self.counts = [0] * BUCKETS
        self.sum = 0.0
        self.max = 0.0

    def add(self, times: RouteTimes) -> None:
        counts = self.counts
        for index, count in times.buckets:
            counts[index] += count
        self.sum += times.sum
        self.max = max(self.max, times.max)

    def timings(self) -> Timings:
        return Timings(tuple(self.counts), self.sum, self.max if any(self.counts) else None)


class RouteHistory:
    def __init__(self) -> None:
        self._total = _Second(0)
        self._seconds: deque[_Second] = deque()
        self.throughput: deque[float] = deque(maxlen=HISTORY_SECONDS)
        self._failures: OrderedDict[str, tuple[int, FailureExample]] = OrderedDict()
        self._version = 0  # moves with every report: the last minute is merged again only then
        self._minute: tuple[int, int, Timings] | None = None  # (second, version, the merge)

    def add_times(self, times: RouteTimes, now: float) -> None:
        self._version += 1
        second = int(now)
        if not self._seconds or self._seconds[-1].at != second:
            self._seconds.append(_Second(second))
            while self._seconds[0].at <= second - MINUTE:
                self._seconds.popleft()
        self._seconds[-1].add(times)
        self._total.add(times)

    def minute(self, now: float) -> Timings:
        """Handler times over the last minute before ``now`` (the supervisor's monotonic clock,
        as add_times was given: a step of the wall clock must not empty or freeze the minute)."""
        cached = self._minute
        if cached is not None and cached[0] == int(now) and cached[1] == self._version:
            return cached[2]
        merged = _Second(0)
        for second in self._seconds:
            if second.at > now - MINUTE:
                for index, count in enumerate(second.counts):
                    merged.counts[index] += count
                merged.sum += second.sum
                merged.max = max(merged.max, second.max)
        timings = merged.timings()
        self._minute = (int(now), self._version, timings)
        return timings

    def total(self) -> Timings:
        return self._total.timings()

    def failed(self, cause: str, count: int, example: FailureExample) -> None:
        before = self._failures.pop(cause, None)
        self._failures[cause] = ((before[0] if before else 0) + count, example)
        if len(self._failures) > MAX_GROUPS:
            self._failures.popitem(last=False)

    def failure_groups(self) -> tuple[FailureGroup, ...]:
        """The most recently seen first."""
        groups = reversed(self._failures.items())
        return tuple(FailureGroup(cause, count, example) for cause, (count, example) in groups)


def example_of(report: HandlerFailure, slot: str, received: float) -> FailureExample:
    """The report's latest failure, timed when the manager ``received`` it (wall clock)."""
    return FailureExample(received, slot, report.topic, report.payload, report.payload_size, report.traceback)


class RouteHistories:
    """Every route's history, by pattern."""

    def __init__(self) -> None:
        self._routes: dict[str, RouteHistory] = {}

    def of(self, route: str) -> RouteHistory:
        history = self._routes.get(route)
        if history is None:
            history = self._routes[route] = RouteHistory()
        return history

    def get(self, route: str) -> RouteHistory | None:
        return self._routes.get(route)

    def items(self) -> list[tuple[str, RouteHistory]]:
        return list(self._routes.items())
