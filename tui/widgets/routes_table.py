"""RoutesTable: one row per route (row key = pattern), pools short of workers in colour."""

from __future__ import annotations

from typing import ClassVar

from engine.snapshot import RouteInfo

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable


class RoutesTable(KeyedTable[RouteInfo]):
    """Routes with their pools: live / desired workers, throughput, outcomes."""

    KEY_COLUMN = "pattern"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"routes-table--short", "routes-table--empty"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        # Set by the app before each show(): scale requests the engine has not applied yet
        # (shown as "2/2 → 3"), and whether the pools are meant to be running at all.
        self.scale_targets: dict[str, int] = {}
        self.pools_started = True
        super().__init__(id=id, classes=classes)

    def column_specs(self) -> tuple[ColumnSpec[RouteInfo], ...]:
        return (
            ColumnSpec("pattern", "pattern", lambda r: r.topic),
            ColumnSpec("filter", "MQTT filter", lambda r: r.mqtt_topic),
            ColumnSpec("qos", "qos", lambda r: str(r.qos), lambda r: r.qos, "right"),
            ColumnSpec("shared", "shared", lambda r: "yes" if r.shared else "no", lambda r: r.shared),
            ColumnSpec("workers", "workers", self._workers_text, lambda r: (r.live_workers, r.desired_workers),
                       "right"),
            ColumnSpec("rate", "msg/s", lambda r: fmt.rate(r.messages_per_second), lambda r: r.messages_per_second,
                       "right"),
            ColumnSpec("handled", "handled", lambda r: fmt.count(r.handled), lambda r: r.handled, "right"),
            ColumnSpec("failed", "failed", lambda r: fmt.count(r.failed), lambda r: r.failed, "right"),
        )

    def _workers_text(self, route: RouteInfo) -> str:
        if not route.shared:  # served by the one main worker, whatever the counts say
            return "main" if route.live_workers else "main (down)"
        text = f"{route.live_workers}/{route.desired_workers}"
        target = self.scale_targets.get(route.topic)
        if target is not None and target != route.desired_workers:
            text += f" → {target}"
        return text

    def key_of(self, item: RouteInfo) -> str:
        return item.topic

    def row_style(self, item: RouteInfo) -> str | None:
        if not self.pools_started:
            return None  # stopped on purpose: nothing is missing
        if item.live_workers == 0 and (item.desired_workers or not item.shared):
            return "routes-table--empty"
        if item.live_workers < item.desired_workers:
            return "routes-table--short"
        return None
