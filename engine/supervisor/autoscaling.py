"""The supervisor's side of autoscaling: look at each autoscaled pool, carry out the decision.

The policy itself is engine/autoscale.py (plain, unit-tested on traces); this is the edge that
reads slots and resizes pools. It runs on the arbiter's thread once a second, after sampling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..autoscale import Observation
from ..states import SlotState
from .pool import Pool
from .slot import SlotHost


def observe(pool: Pool, now: float) -> Observation:
    running = [slot for slot in pool.slots if slot.state is SlotState.RUNNING]
    return Observation(
        now=now,
        size=pool.desired,
        utilization=pool.utilization(every=True),
        rate=sum(slot.rates.rate for slot in running),
        steady=pool.steady,
        connected=all(slot.beat is not None and slot.beat.connected for slot in running),
        crash_loop=any(slot.state is SlotState.CRASH_LOOP for slot in pool.slots),
    )


def step(pools: Iterable[Pool], host: SlotHost, now: float) -> None:
    """Ask each autoscaled pool's policy what to do, and do it: resize and say why."""
    for pool in pools:
        if pool.autoscaler is None:
            continue
        decision = pool.autoscaler.observe(observe(pool, now))
        if decision is None:
            continue
        level = logging.WARNING if decision.held else logging.INFO
        if decision.size == pool.desired:
            host.event("autoscale", f"autoscale {pool.key}: {decision.reason}", level=level)
            continue
        before, pool.desired = pool.desired, decision.size
        pool.converge()
        host.event("autoscale", f"autoscale {pool.key} {before} -> {decision.size}: {decision.reason}", level=level)
