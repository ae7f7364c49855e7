"""Rollout: replacing the routes of running pools one pool at a time, dropping nothing.

A reload is planned once (:func:`plan_reload`): pools whose route is gone drain and retire at
once; every other pool gets a step. The supervisor calls :meth:`Rollout.advance` on every
pass; a step runs until it reports done, and the next one starts. A pool's replacement starts
new slots (running the new code) beside the old ones and retires the old ones only once every
new one runs, so the route is served throughout. If the new workers do not come up, the old
ones keep serving and the rollout stops there with an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from enum import Enum

from ..router import Router
from ..states import SlotState
from .pool import MAIN, Pool
from .slot import Slot, SlotHost

NEW_WORKERS_GRACE = 30.0  # seconds new workers get to subscribe, at least (route imports)


class RolloutFailed(Exception):
    pass


class Step:
    """One pool's part of a rollout; ``advance`` returns True when it is done."""

    def advance(self, now: float) -> bool:
        raise NotImplementedError


class StartPool(Step):
    """A route that is new: its pool simply starts."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def advance(self, now: float) -> bool:
        self.pool.converge()
        return True


class RestartInPlace(Step):
    """The main worker: restarted with the new routes; its session bridges the gap."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def advance(self, now: float) -> bool:
        for slot in self.pool.active():
            slot.restart()
        return True


class Phase(Enum):
    START_NEW = "start new workers"
    WAIT_FOR_NEW = "wait for the new workers to subscribe"


class ReplacePool(Step):
    """New slots first; the old ones retire once every new one runs."""

    def __init__(self, pool: Pool, host: SlotHost) -> None:
        self.pool = pool
        self.host = host
        self.phase = Phase.START_NEW
        self.old: list[Slot] = []
        self.new: list[Slot] = []
        self.deadline = 0.0

    def advance(self, now: float) -> bool:
        if self.phase is Phase.START_NEW:
            self._start_new(now)
            return False
        if all(slot.state is SlotState.RUNNING for slot in self.new):
            Pool.retire(self.old)
            self.host.event("reload", f"pool {self.pool.key}: {len(self.new)} new workers running, old ones draining")
            return True
        if any(slot.state.is_dead for slot in self.new) or now > self.deadline:
            self._give_up()
        return False

    def _start_new(self, now: float) -> None:
        self.old = self.pool.active()
        self.new = [self.pool.add_slot(index) for index in self.pool.free_indexes(self.pool.desired)]
        self.deadline = now + max(NEW_WORKERS_GRACE, self.host.settings.hang_timeout)
        for slot in self.new:
            slot.spawn()
        self.phase = Phase.WAIT_FOR_NEW

    def _give_up(self) -> None:
        Pool.retire(self.new)
        detail = next((s.last_exit or s.detail for s in self.new if s.last_exit or s.detail), "no detail")
        self.host.event(
            "reload",
            f"pool {self.pool.key}: new workers did not start ({detail}); "
            "keeping the old workers and stopping the reload",
            level=logging.ERROR,
        )
        raise RolloutFailed(self.pool.key)


class Rollout:
    def __init__(self, steps: list[Step], done: Future[None], host: SlotHost) -> None:
        self.steps = steps
        self.done = done
        self.host = host

    def advance(self, now: float) -> bool:
        """Advance the current step; True once the rollout is over (finished or failed)."""
        try:
            while self.steps and self.steps[0].advance(now):
                self.steps.pop(0)
        except RolloutFailed as failure:
            self.done.set_exception(
                RuntimeError(
                    f"reload stopped at pool {failure.args[0]!r}: its new workers "
                    "did not start; the old ones keep serving"
                )
            )
            return True
        if self.steps:
            return False
        self.host.event("reload", "reload finished")
        self.done.set_result(None)
        return True


def plan_reload(
    pools: dict[str, Pool], router: Router, new_pool: Callable[[str, int], Pool], host: SlotHost, done: Future[None]
) -> Rollout:
    """Change ``pools`` for ``router``'s routes: retire what is gone, add what is new, and return
    the rollout that replaces the rest one pool at a time. ``new_pool(key, desired)`` makes a pool."""
    steps: list[Step] = []
    new_shared = {route.topic: route for route in router.routes if route.shared}
    for key, pool in list(pools.items()):
        if pool.route is not None and key not in new_shared:
            pool.desired = 0
            Pool.retire(pool.active())
            host.event("scaled", f"route {key} is gone: its pool drains and retires")
    for topic, route in new_shared.items():
        existing = pools.get(topic)
        if existing is None:
            pools[topic] = pool = new_pool(topic, route.worker_count)
            steps.append(StartPool(pool))
            continue
        pool = existing
        if pool.route is not None and route.worker_count != pool.route.worker_count:
            pool.desired = route.worker_count
        pool.route = route
        steps.append(ReplacePool(pool, host))
    main = pools.get(MAIN)
    if router.unshared_routes and main is None:
        pools[MAIN] = main = new_pool(MAIN, 1)
        steps.append(StartPool(main))
    elif main is not None and not router.unshared_routes:
        main.desired = 0
        Pool.retire(main.active())
    elif main is not None:
        steps.append(RestartInPlace(main))
    return Rollout(steps, done, host)
