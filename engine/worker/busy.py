"""BusyClock: how much of a worker's capacity its messages took, integrated over time.

The autoscaler's signal (engine/autoscale.py). A message in hand takes ``share`` of the worker:
all of it for a plain handler, which has the event loop to itself while it runs, and
``1 / WORKER_CONCURRENCY`` for an async one, which waits without blocking the others. So a worker
is fully busy when a plain handler runs, when messages wait in its inbox behind one, or when it
holds as many async messages as its concurrency limit allows. The clock only accumulates at the
moments the level changes; the heartbeat reads the total.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class BusyClock:
    __slots__ = ("_clock", "_level", "_since", "_total", "share")

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self._clock = clock
        self._total = 0.0  # busy seconds up to ``_since``
        self._level = 0.0  # 0..1, since ``_since``
        self._since = clock()

    def set(self, in_hand: int) -> None:
        """The worker now holds ``in_hand`` messages."""
        now = self._clock()
        self._total += self._level * (now - self._since)
        self._since = now
        level = in_hand * self.share
        self._level = level if level < 1.0 else 1.0

    def reading(self) -> tuple[float, float]:
        """(now, busy seconds so far) on the worker's monotonic clock."""
        now = self._clock()
        return now, self._total + self._level * (now - self._since)
