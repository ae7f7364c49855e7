"""Autoscaling policy: the size a route's pool should have, from how busy its workers are.

Plain data and one small state machine with no clock of its own: the supervisor passes an
:class:`Observation` about once a second, tests pass recorded traces with any times.

- **Desired size** is Kubernetes' HPA formula, ``ceil(size x utilization / target)``, left at
  the current size while utilization is within ``tolerance`` of the target, at least double the
  size when the workers are saturated, clamped to the range.
- **Up** as soon as the need has lasted ``up_window`` seconds, to the smallest size the need
  asked for over that window. **Down** only to the largest size asked for over the last
  ``down_window`` seconds (the HPA's stabilisation window), and never below half at once.
- **Diminishing returns**, which neither Celery nor the HPA has: a scale-up is a trial. The
  pool's *capacity* (handled rate / utilization: what it would handle fully busy) is measured
  before and after; if the extra workers did not raise it by at least ``MIN_GAIN`` of the
  proportional gain (a CPU-bound handler on a machine with fewer free cores than workers), the
  pool goes back to the size that helped and holds there until the load falls below the target
  or ``hold`` seconds have passed.
- No decision while the pool converges (workers starting, draining, dead), while its workers
  are not connected, or for a pool with a crash-looping slot; readings count only ``SETTLE``
  seconds after the pool last converged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

MIN_GAIN = 0.5  # a scale-up must bring at least half of the proportional capacity gain
SETTLE = 2.0  # seconds after converging before readings count: new workers' busy needs heartbeats
MEASURE = 3.0  # seconds, at least, the capacity after a scale-up is measured over
IDLE = 0.05  # utilization under which a capacity measurement means nothing
MAX_WORKERS = 1000  # the largest range accepted
SATURATED = 0.95  # utilization at which the workers are taken to be fully busy


@dataclass(frozen=True)
class AutoscaleRange:
    """The sizes an autoscaled pool may take, both ends included."""

    low: int
    high: int

    @classmethod
    def checked(cls, low: Any, high: Any, where: str) -> AutoscaleRange:
        """A range from user input; ValueError naming ``where`` (the route pattern, the option)."""
        for value in (low, high):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"{where}: autoscale range must be two whole numbers (min, max), not {low!r}, {high!r}"
                )
        if not 1 <= low <= high <= MAX_WORKERS:
            raise ValueError(
                f"{where}: autoscale range {low}-{high} is not valid: expected 1 <= min <= max <= {MAX_WORKERS}"
            )
        return cls(low, high)

    def clamp(self, size: int) -> int:
        return min(max(size, self.low), self.high)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


@dataclass(frozen=True)
class AutoscaleConfig:
    target: float = 0.7  # utilization the pool is sized for
    tolerance: float = 0.1  # no change while utilization / target is within 1 +- this
    up_window: float = 3.0  # seconds a need to grow must last
    down_window: float = 60.0  # seconds of history a shrink must agree with
    hold: float = 300.0  # seconds a diminishing-returns hold lasts at most

    @classmethod
    def from_settings(cls, settings: Any) -> AutoscaleConfig:
        return cls(
            settings.autoscale_target,
            settings.autoscale_tolerance,
            settings.autoscale_up_window,
            settings.autoscale_down_window,
            settings.autoscale_hold,
        )


def desired_size(size: int, utilization: float, target: float, tolerance: float) -> int:
    """``ceil(size x utilization / target)``; ``size`` itself within the tolerance; at least
    double when saturated."""
    ratio = utilization / target
    if abs(ratio - 1.0) <= tolerance:
        return size
    desired = max(1, math.ceil(size * ratio - 1e-9))
    if utilization >= SATURATED:
        # Fully busy workers hide how far the load exceeds them (the rest waits at the broker),
        # so the formula's 1/target is a floor: grow at least twofold, as the HPA's default
        # scale-up policy does. The diminishing-returns trial undoes a step that did not pay.
        desired = max(desired, 2 * size)
    return desired


@dataclass(frozen=True)
class Observation:
    """One look at a pool: its size and what its running workers report."""

    now: float
    size: int  # the pool's desired size
    utilization: float | None  # mean busy of its running workers, None when not known yet
    rate: float  # messages per second the pool handles
    steady: bool  # every slot running, none starting, draining or dead
    connected: bool = True  # every running worker connected to the broker
    crash_loop: bool = False


@dataclass(frozen=True)
class Decision:
    size: int  # the new size; the current one for a note that changes nothing
    reason: str
    held: bool = False  # a diminishing-returns step back


@dataclass(frozen=True)
class _Sample:
    at: float
    desired: int
    utilization: float
    rate: float


@dataclass
class _Trial:
    before: int
    after: int
    capacity: float  # before the scale-up, messages/s fully busy
    rate: float  # before the scale-up


def _capacity(samples: list[_Sample]) -> tuple[float, float, float]:
    """(capacity, rate, utilization) over ``samples``: what the pool would handle fully busy."""
    rate = sum(s.rate for s in samples) / len(samples)
    utilization = sum(s.utilization for s in samples) / len(samples)
    return (rate / utilization if utilization > IDLE else 0.0), rate, utilization


class Autoscaler:
    """The autoscaling state of one pool: history, the need to grow, a trial, a hold."""

    def __init__(self, limits: AutoscaleRange, config: AutoscaleConfig) -> None:
        self.limits = limits
        self.config = config
        self.held_at: int | None = None  # the size a diminishing-returns verdict holds the pool at
        self._held_since = 0.0
        self._samples: deque[_Sample] = deque()
        self._steady_since: float | None = None
        self._need_since: float | None = None
        self._history_from: float | None = None  # first sample: a shrink needs a full window of history
        self._trial: _Trial | None = None

    def observe(self, obs: Observation) -> Decision | None:
        """What to do now, if anything."""
        decision = self._decide(obs)
        if decision is not None and decision.size != obs.size:
            # Readings from before the change say nothing about the new size: start afresh.
            self._steady_since = self._need_since = None
        return decision

    def _decide(self, obs: Observation) -> Decision | None:
        if obs.crash_loop or not obs.connected or not obs.steady or obs.utilization is None:
            self._steady_since = self._need_since = None
            return None
        if self._steady_since is None:
            self._steady_since = obs.now
        if obs.now - self._steady_since < SETTLE:
            return None
        if obs.size != self.limits.clamp(obs.size):
            return Decision(self.limits.clamp(obs.size), f"autoscale range {self.limits}")
        c = self.config
        desired = self.limits.clamp(desired_size(obs.size, obs.utilization, c.target, c.tolerance))
        self._record(_Sample(obs.now, desired, obs.utilization, obs.rate))
        if self._trial is not None:
            # The need to grow further is timed during the trial too, so that a scale-up that
            # helped can be followed by the next one at once.
            self._time_need(obs, desired)
            verdict = self._judge(obs)
            if verdict is not None or self._trial is not None:
                return verdict
        return self._release(obs) or self._grow(obs, desired) or self._shrink(obs)

    def _record(self, sample: _Sample) -> None:
        self._samples.append(sample)
        if self._history_from is None:
            self._history_from = sample.at
        keep = max(self.config.down_window, self.config.up_window, MEASURE) + SETTLE + 1.0
        while self._samples and self._samples[0].at < sample.at - keep:
            self._samples.popleft()

    def _since(self, start: float) -> list[_Sample]:
        return [s for s in self._samples if s.at >= start]

    # --- growing, and judging whether it helped ----------------------------------------------------

    @property
    def _ceiling(self) -> int:
        """The largest size growth may reach now: the hold, else the top of the range."""
        return self.held_at if self.held_at is not None else self.limits.high

    def _time_need(self, obs: Observation, desired: int) -> bool:
        """Whether the pool needs more workers now; ``_need_since`` says since when."""
        if min(desired, self._ceiling) <= obs.size:
            self._need_since = None
            return False
        if self._need_since is None:
            self._need_since = obs.now
        return True

    def _grow(self, obs: Observation, desired: int) -> Decision | None:
        if not self._time_need(obs, desired):
            return None
        assert self._need_since is not None
        if obs.now - self._need_since < self.config.up_window:
            return None
        window = self._since(max(self._need_since, obs.now - self.config.up_window))
        size = min(min(s.desired for s in window), self._ceiling)
        capacity, rate, utilization = _capacity(window)
        self._trial = _Trial(obs.size, size, capacity, rate)
        self._need_since = None
        return Decision(size, f"busy {utilization:.0%}, target {self.config.target:.0%}")

    def _judge(self, obs: Observation) -> Decision | None:
        """After a scale-up: keep measuring until MEASURE seconds of readings, then compare."""
        trial = self._trial
        assert trial is not None and self._steady_since is not None
        if obs.size != trial.after:
            self._trial = None  # the size changed under it (the range): nothing to judge
            return None
        start = self._steady_since + SETTLE
        if obs.now - start < max(MEASURE, self.config.up_window):
            return None
        self._trial = None
        capacity, rate, utilization = _capacity(self._since(start))
        if trial.capacity <= 0.0 or utilization <= IDLE:
            return None  # the load went away meanwhile: the ordinary rules take it from here
        wanted = trial.capacity * (1.0 + MIN_GAIN * (trial.after - trial.before) / trial.before)
        if capacity >= wanted:
            return None
        self.held_at = trial.before
        self._held_since = obs.now
        return Decision(
            trial.before,
            f"adding workers did not raise throughput: holding at {trial.before} "
            f"({trial.after} workers handled {rate:.0f} msg/s at {utilization:.0%} busy, "
            f"{trial.before} handled {trial.rate:.0f} msg/s)",
            held=True,
        )

    def _release(self, obs: Observation) -> Decision | None:
        """A hold ends when the load falls below the target, or after ``hold`` seconds."""
        if self.held_at is None:
            return None
        assert obs.utilization is not None
        c = self.config
        if obs.utilization < c.target * (1.0 - c.tolerance):
            why = f"the load fell (busy {obs.utilization:.0%})"
        elif obs.now - self._held_since >= c.hold:
            why = f"{c.hold:g} s passed"
        else:
            return None
        self.held_at = None
        return Decision(obs.size, f"no longer holding at {obs.size}: {why}; more workers will be tried again")

    # --- shrinking -----------------------------------------------------------------------------

    def _shrink(self, obs: Observation) -> Decision | None:
        c = self.config
        assert self._history_from is not None and obs.utilization is not None
        if obs.now - self._history_from < c.down_window:
            return None
        highest = max(s.desired for s in self._since(obs.now - c.down_window))
        if highest >= obs.size:
            return None
        size = max(highest, math.ceil(obs.size / 2), self.limits.low)
        limited = " (at most halving in one step)" if size > highest else ""
        return Decision(
            size,
            f"busy {obs.utilization:.0%}, target {c.target:.0%}; at most {highest} needed over the last "
            f"{c.down_window:g} s{limited}",
        )
