"""Message rates and per-route totals, from the counters in workers' heartbeats.

Plain objects with no clock of their own: the supervisor passes the time, tests pass any time.
"""

from __future__ import annotations

from collections import deque

from ..protocol import HEARTBEAT_INTERVAL, Heartbeat

RATE_WINDOW_MIN = 0.8 * HEARTBEAT_INTERVAL  # shortest window a message rate is measured over
SILENCE_MIN = 3 * HEARTBEAT_INTERVAL  # no heartbeat for this long: no rate either


class RateMeter:
    """A worker's message rates, overall and per route, from one heartbeat to the next.

    Measured between heartbeats rather than between samples: with both once a second, a
    sample's window would hold none or two heartbeats' worth of counts and the rates would
    flicker between 0 and double. A heartbeat sent early (on subscribing, say) does not close
    a window.
    """

    def __init__(self) -> None:
        self.rate = 0.0
        self.route_rates: dict[str, float] = {}  # route pattern -> msg/s
        self._mark: tuple[float, int, dict[str, tuple[int, int]]] | None = None

    def heartbeat(self, beat: Heartbeat, now: float) -> None:
        done = beat.done
        mark = self._mark
        if mark is not None:
            elapsed = now - mark[0]
            if elapsed < RATE_WINDOW_MIN:
                return
            before = mark[2]
            self.rate = max(0.0, (done - mark[1]) / elapsed)
            self.route_rates = {
                topic: max(0.0, (handled + failed - sum(before.get(topic, (0, 0)))) / elapsed)
                for topic, (handled, failed) in beat.by_route.items()
            }
        self._mark = (now, done, beat.by_route)

    def silent(self, now: float) -> None:
        """No news for a while (hung, or stopped): not busy."""
        if self._mark is not None and now - self._mark[0] > SILENCE_MIN:
            self.rate, self.route_rates = 0.0, {}

    def reset(self) -> None:
        self.rate, self.route_rates, self._mark = 0.0, {}, None


BUSY_WINDOW = 3 * HEARTBEAT_INTERVAL  # a worker's busy fraction is measured over about this long


class BusyMeter:
    """A worker's busy fraction over its last few seconds, from the busy seconds and the clock in
    its heartbeats (both the worker's own, so the manager's scheduling delays do not blur it)."""

    def __init__(self) -> None:
        self.busy: float | None = None  # 0..1; None until two heartbeats have come
        self._marks: deque[tuple[float, float]] = deque()  # (worker clock, busy seconds)

    def heartbeat(self, beat: Heartbeat) -> None:
        marks = self._marks
        if marks and beat.clock <= marks[-1][0]:
            return  # the same instant, or a clock that went back: nothing to measure
        marks.append((beat.clock, beat.busy_seconds))
        while len(marks) > 2 and marks[1][0] <= beat.clock - BUSY_WINDOW:
            marks.popleft()
        if len(marks) >= 2:
            (start, busy_start), (end, busy_end) = marks[0], marks[-1]
            self.busy = min(1.0, max(0.0, (busy_end - busy_start) / (end - start)))

    def reset(self) -> None:
        self.busy = None
        self._marks.clear()


MAX_CAUSES = 100  # failure causes counted apart per route
OTHER_CAUSE = "other"


class RouteTotals:
    """Handled and failed per route pattern, cumulative: they outlive worker restarts."""

    def __init__(self) -> None:
        self._totals: dict[str, tuple[int, int]] = {}
        self._dead_letters: dict[str, int] = {}
        self._causes: dict[str, dict[str, int]] = {}  # route -> failure cause -> count

    def add(self, before: Heartbeat | None, after: Heartbeat) -> None:
        """Count what a worker handled between two of its heartbeats."""
        old = before.by_route if before is not None else {}
        for topic, (handled, failed) in after.by_route.items():
            old_handled, old_failed = old.get(topic, (0, 0))
            total_handled, total_failed = self._totals.get(topic, (0, 0))
            self._totals[topic] = (total_handled + handled - old_handled, total_failed + failed - old_failed)

    def add_failure(self, topic: str) -> None:
        """A message of ``topic``'s route killed its worker: a failure no heartbeat will report."""
        handled, failed = self._totals.get(topic, (0, 0))
        self._totals[topic] = (handled, failed + 1)

    def add_cause(self, topic: str, cause: str, count: int) -> None:
        """Failures by cause, for a counter that only goes up: past MAX_CAUSES causes of a
        route, new ones count as "other" (a hostile worker could name a new one every time)."""
        causes = self._causes.setdefault(topic, {})
        if cause not in causes and len(causes) >= MAX_CAUSES:
            cause = OTHER_CAUSE
        causes[cause] = causes.get(cause, 0) + count

    def causes(self, topic: str) -> dict[str, int]:
        return dict(self._causes.get(topic, {}))

    def add_dead_letter(self, topic: str) -> None:
        self._dead_letters[topic] = self._dead_letters.get(topic, 0) + 1

    def of(self, topic: str) -> tuple[int, int]:
        return self._totals.get(topic, (0, 0))

    def dead_letters(self, topic: str) -> int:
        return self._dead_letters.get(topic, 0)


OUTPUT_LINES_PER_SECOND = 200.0  # a worker's descriptor output kept per second, after a burst of
OUTPUT_BURST = 1000.0


class LineBudget:
    """A token bucket for a worker's output lines: a handler printing in a tight loop must not
    flood the event stream, the journal and the manager's logging. What is cut is counted."""

    def __init__(self, rate: float = OUTPUT_LINES_PER_SECOND, burst: float = OUTPUT_BURST) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._at: float | None = None
        self.dropped = 0  # cut since the last report
        self.reported_at: float | None = None

    def take(self, lines: int, now: float) -> int:
        """How many of ``lines`` may go through now; the rest are counted in ``dropped``."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        allowed = min(lines, int(self._tokens))
        self._tokens -= allowed
        self.dropped += lines - allowed
        return allowed
