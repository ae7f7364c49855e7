"""The operator's verbs, as the supervisor thread carries them out on the pools.

WorkerManager checks the arguments and queues these; each runs on the supervisor thread, where
it may change pools and slots freely.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

from ..autoscale import AutoscaleRange
from ..policy import apportion
from .arbiter import Arbiter
from .pool import MAIN, Pool
from .slot import BY_OPERATOR


def start(arbiter: Arbiter, num_workers: int | None) -> None:
    """Start every pool at its desired size; with ``num_workers``, add that many to the shared
    pools in proportion to their routes' ``worker_count`` (an empty pool gets one first)."""
    if arbiter.started_at is None:
        arbiter.started_at = arbiter.now()
    shared = [pool for pool in arbiter.pools.values() if pool.route is not None]
    if num_workers is not None:
        _add_workers(shared, num_workers)
    for pool in arbiter.pools.values():
        pool.converge()
    drain_leftover_sessions(arbiter)
    desired = sum(pool.desired for pool in shared)
    arbiter.event("started", f"workers starting: {desired} shared" + (" + main" if MAIN in arbiter.pools else ""))


def _add_workers(shared: list[Pool], num_workers: int) -> None:
    empty = [pool for pool in shared if not pool.active()]
    if len(empty) > num_workers:
        names = ", ".join(repr(pool.key) for pool in empty[num_workers:])
        raise ValueError(
            f"start_workers({num_workers}): {len(empty)} shared routes have no worker yet and each "
            f"needs one; these would be left unserved: {names}"
        )
    weights = [pool.route.worker_count if pool.route is not None else 1 for pool in shared]
    rest = apportion(num_workers - len(empty), weights)
    for pool, more in zip(shared, rest, strict=True):
        pool.desired = len(pool.active()) + (1 if pool in empty else 0) + more


def _shared_pool(arbiter: Arbiter, key: str) -> Pool:
    pool = arbiter.pools.get(key)
    if pool is None or pool.route is None:
        raise ValueError(f"no shared route {key!r}")
    return pool


def resize(arbiter: Arbiter, key: str, count: int) -> None:
    """The operator's size. On an autoscaled pool it turns autoscaling off: what an operator
    at a console sets by hand holds until they turn autoscaling on again."""
    pool = _shared_pool(arbiter, key)
    if pool.autoscaler is not None:
        limits = pool.autoscaler.limits
        _autoscale(arbiter, pool, None)
        arbiter.event(
            "autoscale",
            f"autoscale off for {key} (was {limits}): scaled by hand to {count}; turn it on again to resume",
        )
    before, pool.desired = pool.desired, count
    if arbiter.started_at is None:
        arbiter.started_at = arbiter.now()
    pool.converge()
    if before != count:
        arbiter.event("scaled", f"pool {pool.key} scaled from {before} to {count} workers")


def set_autoscale(arbiter: Arbiter, key: str, limits: AutoscaleRange | None) -> None:
    pool = _shared_pool(arbiter, key)
    was = pool.autoscaler.limits if pool.autoscaler is not None else None
    before = pool.desired
    _autoscale(arbiter, pool, limits)
    if limits is None:
        if was is not None:
            arbiter.event("autoscale", f"autoscale off for {key}: the pool stays at {pool.desired} workers")
        return
    resized = f"; {before} -> {pool.desired} workers" if pool.desired != before else ""
    arbiter.event("autoscale", f"autoscale on for {key}: {limits} workers{resized}")
    if pool.desired != before and arbiter.started_at is not None:
        pool.converge()


def _autoscale(arbiter: Arbiter, pool: Pool, limits: AutoscaleRange | None) -> None:
    """Set the pool's range, and remember it as set at run time (it outlives a reload)."""
    arbiter.autoscale_set[pool.key] = limits
    pool.set_autoscale(limits, arbiter.autoscale_config)


def begin_stop(arbiter: Arbiter) -> Future[None]:
    done: Future[None] = Future()
    for pool in arbiter.pools.values():
        for slot in list(pool.slots):
            if slot.process is not None:
                arbiter.stopping_any = True
            slot.stop()
        pool.prune()
    arbiter.stop_waiters.append(done)
    arbiter.resolve_stop_waiters()
    return done


def restart_dead(arbiter: Arbiter) -> int:
    dead = [slot for pool in arbiter.pools.values() for slot in pool.slots if slot.state.is_dead]
    for slot in dead:
        slot.restart()
    if dead:
        count = len(dead)
        arbiter.event("restarted", f"restarted {count} dead worker{'s' if count != 1 else ''} by request")
    return len(dead)


def restart_one(arbiter: Arbiter, key: str) -> None:
    arbiter.find_slot(key).restart()


def kill_one(arbiter: Arbiter, key: str) -> None:
    """The operator's SIGKILL: the slot restarts as after any death, without counting it
    towards crash-loop (the operator, not the code, ended it)."""
    slot = arbiter.find_slot(key)
    if slot.process is None:
        raise ValueError(f"worker {key!r} has no process to kill ({slot.state})")
    slot.kill(BY_OPERATOR)


def drain_leftover_sessions(arbiter: Arbiter) -> None:
    """Drain the sessions earlier runs kept for slots this run does not have (see sessions.py)."""
    if arbiter.leftovers_checked:
        return
    arbiter.leftovers_checked = True
    in_use = {slot.client_id for pool in arbiter.pools.values() for slot in pool.slots}
    for kept in arbiter.ledger.sessions():
        if kept.client_id in in_use:
            continue
        pool = arbiter.pools.get(kept.pool)
        if pool is None:
            arbiter.event(
                "retired",
                f"ending the session {kept.client_id} of route {kept.pool!r}, which no longer exists; "
                "messages queued for it are dropped",
                level=logging.WARNING,
            )
            arbiter.end_orphan_session(kept.client_id)
            continue
        if pool.ids.for_slot(pool.key, kept.index) != kept.client_id:
            arbiter.ledger.forget(kept.client_id)  # the naming scheme changed since; nothing to drain
            continue
        slot = pool.add_slot(kept.index)
        arbiter.event("scaled", f"draining the session of {slot.key}, left from an earlier run", slot.key)
        slot.retire()
