"""The immutable snapshot of the pools that the dashboard, the headless runner and /metrics read.

A plain function of the pools: it reads slots and never changes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..protocol import Failure
from ..router import Router
from ..snapshot import BrokerInfo, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo
from .launcher import LauncherInfo
from .pool import MAIN_ROUTE_LABEL, Pool
from .rates import RouteTotals
from .route_history import RouteHistories
from .slot import Slot


@dataclass(frozen=True)
class Identity:
    group: str
    broker_address: str
    broker_kind: str


def build_snapshot(
    pools: Iterable[Pool],
    router: Router,
    totals: RouteTotals,
    histories: RouteHistories,
    identity: Identity,
    started_at: float | None,
    now: float,
    launcher: LauncherInfo | None = None,
) -> ManagerSnapshot:
    pools = list(pools)
    route_rates: dict[str, float] = {}
    for pool in pools:
        for slot in pool.slots:
            for topic, rate in slot.rates.route_rates.items():
                route_rates[topic] = route_rates.get(topic, 0.0) + rate
    workers: list[WorkerInfo] = []
    routes: list[RouteInfo] = []
    for pool in pools:
        workers.extend(worker_info(pool, slot, now) for slot in pool.slots)
        served = [pool.route] if pool.route is not None else router.unshared_routes
        scaler = pool.autoscaler
        utilization = pool.utilization()
        serving = sum(1 for s in pool.slots if s.state is SlotState.RUNNING and s.beat is not None and s.beat.connected)
        for route in served:
            handled, failed = totals.of(route.topic)
            rate = route_rates.get(route.topic, 0.0)
            history = histories.get(route.topic)
            routes.append(
                RouteInfo(route.topic, route.mqtt_topic, route.qos, route.shared, pool.desired, pool.live, rate,
                          handled, failed, totals.dead_letters(route.topic), utilization,
                          scaler.limits.low if scaler else None, scaler.limits.high if scaler else None,
                          scaler.held_at if scaler else None,
                          history.minute(now).quantile(0.99) if history is not None else None, serving)
            )
    all_slots = [slot for pool in pools for slot in pool.slots]
    return ManagerSnapshot(
        group=identity.group,
        broker=broker_info(all_slots, workers, identity),
        workers=tuple(workers),
        routes=tuple(routes),
        uptime=(now - started_at) if started_at is not None else 0.0,
        started=started_at is not None,
        messages_per_second=sum(r.messages_per_second for r in routes),
        handled=sum(r.handled for r in routes),
        failed=sum(r.failed for r in routes),
        start_method=launcher.method if launcher is not None else "zygote",
        zygote_pid=launcher.zygote_pid if launcher is not None else None,
        zygote_restarts=launcher.zygote_restarts if launcher is not None else 0,
        taken_at=now,
    )


def worker_info(pool: Pool, slot: Slot, now: float) -> WorkerInfo:
    beat = slot.beat
    alive = slot.process is not None
    received, handled, failed = slot.counts()
    return WorkerInfo(
        slot=slot.key,
        route=pool.key if pool.route is not None else MAIN_ROUTE_LABEL,
        index=slot.index,
        client_id=slot.client_id,
        state=slot.state,
        pid=slot.pid,
        connected=alive and beat is not None and beat.connected,
        detail=slot.detail,
        cpu_percent=slot.cpu,
        rss_bytes=slot.rss,
        received=received,
        handled=handled,
        failed=failed,
        in_flight=beat.in_flight if beat else 0,
        messages_per_second=slot.rates.rate,
        last_message_age=slot.last_message_age(),
        restarts=slot.restarts,
        last_exit=slot.last_exit,
        uptime=(now - slot.spawned_at) if alive else None,
        is_main=pool.is_main,
        busy=slot.busy.busy if alive else None,
        heartbeat_age=(now - slot.last_heard) if alive else None,
    )


def broker_info(slots: list[Slot], workers: list[WorkerInfo], identity: Identity) -> BrokerInfo:
    """The broker as the workers see it. Refusals are known from the workers' Fatal messages,
    which say what failed (credentials, TLS) as a value, not in a text to search."""
    address, kind = identity.broker_address, identity.broker_kind
    live = [w for w in workers if w.alive]
    if any(w.connected for w in live):
        return BrokerInfo(address, "connected", "", kind)
    failures = {s.last_failure.failure: s.last_failure.reason for s in slots if s.last_failure is not None}
    if Failure.AUTH in failures:
        return BrokerInfo(address, "auth failed", "the broker refused the credentials", kind)
    if Failure.TLS in failures:
        return BrokerInfo(address, "tls error", failures[Failure.TLS], kind)
    if live:
        # A slot draining a leftover session is not serving: what it waits for says nothing of the broker.
        failing = [w.detail for w in live if w.detail and w.detail not in ("starting", "connecting", "draining")
                   and w.state is not SlotState.DRAINING]
        if failing:
            return BrokerInfo(address, "unreachable", failing[0], kind)
        return BrokerInfo(address, "connecting", "", kind)
    return BrokerInfo(address, "idle", "", kind)
