"""RoutesTable: one row per route (row key = pattern), pools short of workers in colour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from engine.snapshot import RouteInfo

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable


class RoutesTable(KeyedTable[RouteInfo]):
    """Routes with their pools: live / desired workers, throughput, outcomes."""

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
        return (
            ColumnSpec("pattern", "pattern", lambda r: r.topic),
            ColumnSpec("filter", "MQTT filter", lambda r: r.mqtt_topic),
            ColumnSpec("qos", "qos", lambda r: str(r.qos), lambda r: r.qos, "right"),
            ColumnSpec("shared", "shared", lambda r: "yes" if r.shared else "no", lambda r: r.shared),
            ColumnSpec("workers", "workers", self._workers_text, lambda r: (r.live_workers, r.desired_workers),
                       "right"),
            ColumnSpec("busy", "busy %", lambda r: fmt.share(r.utilization), lambda r: r.utilization, "right"),
            ColumnSpec("mode", "mode", self._mode_text),
            ColumnSpec("rate", "msg/s", lambda r: fmt.rate(r.messages_per_second), lambda r: r.messages_per_second,
                       "right"),
            ColumnSpec("handled", "handled", lambda r: fmt.count(r.handled), lambda r: r.handled, "right"),
            ColumnSpec("failed", "failed", lambda r: fmt.count(r.failed), lambda r: r.failed, "right"),
            ColumnSpec("dead", "dead letters", lambda r: fmt.count(r.dead_lettered), lambda r: r.dead_lettered,
                       "right"),
        )

    def _workers_text(self, route: RouteInfo) -> str:
        if not route.shared:  # served by the one main worker, whatever the counts say
            return "main" if route.live_workers else "main (down)"
        text = f"{route.live_workers}/{route.desired_workers}"
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
        if item.live_workers == 0 and (item.desired_workers or not item.shared):
            return "routes-table--empty"
        if item.live_workers < item.desired_workers:
            return "routes-table--short"
        return None
