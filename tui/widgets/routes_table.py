"""RoutesTable: one row per route (row key = pattern), pools short of workers in colour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from engine.snapshot import RouteInfo

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable
from .stable_order import linear, relative


class RoutesTable(KeyedTable[RouteInfo]):
    """Routes with their pools: serving / desired workers, throughput, outcomes."""

    KEY_COLUMN = "pattern"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"routes-table--short", "routes-table--empty"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        # As of the last show(): see there.
        self._scale_targets: Mapping[str, int] = {}
        self._pools_started = True
        super().__init__(id=id, classes=classes)

    def show(
        self, items: Sequence[RouteInfo], *, scale_targets: Mapping[str, int] | None = None, pools_started: bool = True
    ) -> None:
        """Show these routes; ``scale_targets`` maps a route to the worker count asked for and not
        applied yet (shown as "2/2 → 3"); ``pools_started`` says whether the pools are meant to run
        at all (if not, pools short of workers are not in colour: nothing is missing).
        """
        self._scale_targets = dict(scale_targets or {})
        self._pools_started = pools_started
        super().show(items)

    def column_specs(self) -> tuple[ColumnSpec[RouteInfo], ...]:
        # Pattern, workers, msg/s, p99 and failed always show; the others as the terminal widens (by priority).
        return (
            ColumnSpec("pattern", "pattern", lambda r: r.topic, frozen=True, min_width=12, preferred_width=32,
                       elide="middle",
                       help="The route as registered (shortened in the middle when the screen is narrow)."),
            ColumnSpec("filter", "MQTT filter", lambda r: r.mqtt_topic, priority=6, max_width=40,
                       help="The topic filter the workers subscribe to ($share/<group>/ before it when shared)."),
            ColumnSpec("qos", "qos", lambda r: str(r.qos), lambda r: r.qos, "right", priority=8,
                       help="The subscription's QoS."),
            ColumnSpec("shared", "shared", lambda r: "yes" if r.shared else "no", lambda r: r.shared, priority=7,
                       help="yes: a pool of workers shares it; no: the main worker serves it."),
            ColumnSpec("workers", "workers", self._workers_text, lambda r: (r.serving_workers, r.desired_workers),
                       "right", help="Serving / desired workers: serving is running and connected to the broker, "
                                     "as /healthz counts (+N: live processes not serving, because they are "
                                     "starting or cut off from the broker; → N: a size asked for, not applied "
                                     "yet). The row shows in the warning colour when fewer serve than desired, "
                                     "in the error colour when none does."),
            ColumnSpec("busy", "busy %", lambda r: fmt.share(r.utilization), lambda r: r.utilization, "right",
                       priority=1, bucket=linear(0.05),
                       help="How busy the pool's running workers are, on average: what the autoscaler reads."),
            ColumnSpec("mode", "mode", self._mode_text, priority=3,
                       help="manual, or auto MIN-MAX (held N: more workers did not raise throughput)."),
            ColumnSpec("rate", "msg/s", lambda r: fmt.rate(r.messages_per_second), lambda r: r.messages_per_second,
                       "right", bucket=relative(), help="Messages handled per second, lately, by the whole pool."),
            ColumnSpec("p99", "p99 ms", lambda r: fmt.millis(r.handler_p99), lambda r: r.handler_p99, "right",
                       bucket=relative(unit=1000.0),  # 25 % steps of milliseconds, not of seconds
                       help="The handler's time per message, 99th percentile over the last minute, in ms."),
            ColumnSpec("handled", "handled", lambda r: fmt.count(r.handled), lambda r: r.handled, "right",
                       priority=5, help="Messages its handlers finished."),
            ColumnSpec("failed", "failed", lambda r: fmt.count(r.failed), lambda r: r.failed, "right",
                       help="Messages whose handler raised, or that were in hand when their worker died."),
            ColumnSpec("dead", "dead letters", lambda r: fmt.count(r.dead_lettered), lambda r: r.dead_lettered,
                       "right", priority=4,
                       help="Messages set aside to the dead-letter topic after they killed workers."),
        )

    def _workers_text(self, route: RouteInfo) -> str:
        if not route.shared:  # served by the one main worker, whatever the counts say
            return "main" if route.serving_workers else "main (down)"
        text = f"{route.serving_workers}/{route.desired_workers}"
        if route.live_workers > route.serving_workers:  # starting, or cut off from the broker
            text += f" +{route.live_workers - route.serving_workers}"
        target = self._scale_targets.get(route.topic)
        if target is not None and target != route.desired_workers:
            text += f" → {target}"
        return text

    @staticmethod
    def _mode_text(route: RouteInfo) -> str:
        if not route.shared:
            return fmt.MISSING  # the main worker is one process: nothing to scale
        return fmt.autoscale_mode(route.autoscale_min, route.autoscale_max, route.autoscale_held_at)

    def key_of(self, item: RouteInfo) -> str:
        return item.topic

    def row_style(self, item: RouteInfo) -> str | None:
        if not self._pools_started:
            return None  # stopped on purpose: nothing is missing
        if item.serving_workers == 0 and (item.desired_workers or not item.shared):
            return "routes-table--empty"
        if item.serving_workers < item.desired_workers:
            return "routes-table--short"
        return None
