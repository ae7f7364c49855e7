"""Supervision policy as plain functions: how many workers go where, when a dead one restarts,
when a slot is crash-looping, which workers retire first. The manager calls these; tests call
them directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .states import SlotState


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` workers over pools in proportion to ``weights`` (largest remainder).

    Each pool first gets the whole part of its exact share; the workers left over go to the
    pools with the largest fractional remainders, ties to the earlier pool (registration order).
    """
    if total < 0:
        raise ValueError(f"cannot add {total} workers")
    if not weights:
        return []
    weight_sum = sum(weights)
    exact = [total * w / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    left = total - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares


@dataclass
class RestartPolicy:
    """Exponential backoff with a reset, and crash-loop detection, for one slot.

    A death schedules a restart after ``delay`` (starting at ``first_delay``, doubling up to
    ``max_delay``). A worker that stayed up for ``reset_after`` seconds resets the delay. The
    ``crash_loop_restarts``-th death within ``window`` seconds makes the slot crash-loop.
    """

    first_delay: float = 0.5
    max_delay: float = 30.0
    reset_after: float = 30.0
    crash_loop_restarts: int = 5
    window: float = 60.0
    delay: float = 0.0
    deaths: deque[float] = field(default_factory=deque)

    def on_death(self, now: float, uptime: float | None) -> float | None:
        """Record a death at ``now``; the delay before the restart, or None for crash-loop."""
        if uptime is not None and uptime >= self.reset_after:
            self.delay = 0.0
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > self.window:
            self.deaths.popleft()
        if len(self.deaths) >= self.crash_loop_restarts:
            return None
        self.delay = self.first_delay if self.delay == 0.0 else min(self.delay * 2, self.max_delay)
        return self.delay

    def reset(self) -> None:
        """The operator restarted the slot by hand: forget its history."""
        self.delay = 0.0
        self.deaths.clear()


# Retire first the slots that serve nothing, then the idlest of those that do.
_RETIRE_ORDER = {
    SlotState.CRASH_LOOP: 0,
    SlotState.BACKOFF: 1,
    SlotState.EXITED: 1,
    SlotState.STOPPED: 1,
    SlotState.STARTING: 2,
    SlotState.RUNNING: 3,
}


@dataclass(frozen=True)
class RetireCandidate:
    key: str
    index: int
    state: SlotState
    in_flight: int = 0
    last_message_age: float | None = None


def choose_retirees(candidates: Sequence[RetireCandidate], count: int) -> list[str]:
    """The keys of ``count`` slots to retire: not serving first, then idle, then newest."""

    def rank(c: RetireCandidate) -> tuple[int, int, float, int]:
        idle_for = c.last_message_age if c.last_message_age is not None else float("inf")
        return (_RETIRE_ORDER.get(c.state, 4), c.in_flight, -idle_for, -c.index)

    return [c.key for c in sorted(candidates, key=rank)[:count]]
