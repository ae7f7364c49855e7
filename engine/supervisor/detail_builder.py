"""The detail views (engine/details.py), built on the supervisor thread when asked for.

Plain functions over a pool, a slot, the event log's journal and the route histories: they
read and never change anything. A slot's messages in hand are read from its live in-hand table,
so they show even while a plain handler blocks the worker's loop (and its heartbeats).
"""

from __future__ import annotations

import math
import time

from ..details import HeldMessage, RouteDetail, WorkerDetail
from ..snapshot import RouteInfo
from .child_process import ChildProcess
from .event_log import EventLog
from .pool import Pool
from .route_history import RouteHistory
from .slot import Slot
from .snapshot_builder import worker_info


def worker_detail(pool: Pool, slot: Slot, events: EventLog, now: float) -> WorkerDetail:
    logs, lifecycle = events.journal(slot.key)
    return WorkerDetail(
        info=worker_info(pool, slot, now),
        logs=logs,
        lifecycle=lifecycle,
        cpu_history=tuple(slot.cpu_history),
        memory_history=tuple(slot.memory_history),
        held=held_messages(slot),
        heartbeat_age=(now - slot.last_heard) if slot.process is not None else None,
    )


def held_messages(slot: Slot) -> tuple[HeldMessage, ...]:
    process = slot.process
    if not isinstance(process, ChildProcess) or process.in_hand is None:
        return ()
    now = time.monotonic()  # the clock the worker stamped them with
    return tuple(HeldMessage(hand.topic, _age(hand.started, now), hand.qos) for hand in process.in_hand.read())


def _age(started: float, now: float) -> float | None:
    # Written by the worker into shared memory: anything but a time of this clock is not one.
    return now - started if math.isfinite(started) and 0.0 < started <= now else None


def route_detail(
    info: RouteInfo, history: RouteHistory | None, causes: dict[str, int], pools: list[Pool], now: float
) -> RouteDetail:
    pool_key = info.topic if info.shared else None
    workers = tuple(
        worker_info(pool, slot, now)
        for pool in pools
        if (pool.route is not None and pool.key == pool_key) or (pool_key is None and pool.is_main)
        for slot in pool.slots
    )
    failure_counts = tuple(sorted(causes.items()))
    if history is None:
        return RouteDetail(info, workers=workers, failure_counts=failure_counts)
    return RouteDetail(
        info=info,
        timings_minute=history.minute(now),
        timings_total=history.total(),
        throughput=tuple(history.throughput),
        failures=history.failure_groups(),
        workers=workers,
        failure_counts=failure_counts,
    )
