"""RouteScreen: one route: handler times, throughput over time, failures by cause, its pool.

Opened with Enter on a route's row; Esc goes back. The failures table picks the group whose
latest example shows beside it; Enter on a worker of the pool opens that worker's screen, and
R / K restart / kill the worker under the pool's cursor.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer

from engine.details import RouteDetail
from engine.snapshot import ManagerSnapshot, RouteInfo, WorkerInfo

from .. import format as fmt
from .. import worker_actions
from ..engine_port import EnginePort
from ..widgets.failure_example import FailureExampleView
from ..widgets.failures_table import FailuresTable
from ..widgets.handler_times import HandlerTimes
from ..widgets.table_view import RowHighlighted, RowSelected
from ..widgets.throughput import Throughput
from ..widgets.workers_table import WorkersTable
from .detail import DetailScreen
from .worker import WorkerScreen


def pool_of(route: RouteInfo, workers: tuple[WorkerInfo, ...]) -> tuple[WorkerInfo, ...]:
    """The workers serving a route: its pool, or the main worker for a route that is not shared."""
    if route.shared:
        return tuple(w for w in workers if w.route == route.topic and not w.is_main)
    return tuple(w for w in workers if w.is_main)


class RouteScreen(DetailScreen[RouteDetail]):
    """The route's key is its pattern (``sensors/+/temperature``)."""

    WHAT = "Route"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "restart_worker", "Restart worker", id="route.restart-worker"),
        Binding("K", "kill_worker", "Kill worker", id="route.kill-worker"),
    ]
    AUTO_FOCUS = "#route-failures"

    def compose(self) -> ComposeResult:
        self.times = HandlerTimes(id="route-times")
        self.throughput = Throughput(id="route-throughput")
        self.failures = FailuresTable(id="route-failures")
        self.example = FailureExampleView(id="route-example")
        self.pool = WorkersTable(id="route-pool")
        yield self.title_bar
        with Horizontal(id="route-top"):
            yield self.times
            yield self.throughput
        with Horizontal(id="route-failure-panels"):
            yield self.failures
            yield self.example
        yield self.pool
        yield Footer()

    def on_mount(self) -> None:
        self.times.border_title = "Handler time per message"
        self.throughput.border_title = "Throughput"
        self.failures.border_title = "Failures"
        self.example.border_title = "Latest example"
        self.pool.border_title = "Pool"
        super().on_mount()

    def fetch(self, manager: EnginePort) -> RouteDetail | None:
        return manager.route_detail(self.key)

    def from_snapshot(self, snapshot: ManagerSnapshot) -> RouteDetail | None:
        route = next((r for r in snapshot.routes if r.topic == self.key), None)
        return None if route is None else RouteDetail(route, workers=pool_of(route, snapshot.workers))

    def show(self, detail: RouteDetail) -> None:
        info = detail.info
        self.times.show(detail.timings_minute, detail.timings_total)
        self.times.border_subtitle = f"{fmt.count(info.handled)} handled, {fmt.count(info.failed)} failed"
        self.throughput.show(detail.throughput)
        self.failures.show(detail.failures)
        self._show_example()
        self.pool.show(detail.workers)
        self.pool.border_title = f"Pool: {self._pool_size(info)}"

    def facts(self, detail: RouteDetail) -> str:
        info = detail.info
        return f"MQTT filter {info.mqtt_topic}, qos {info.qos}, {'shared' if info.shared else 'not shared'}"

    @staticmethod
    def _pool_size(info: RouteInfo) -> str:
        if not info.shared:
            return "the main worker (not shared)"
        mode = fmt.autoscale_mode(info.autoscale_min, info.autoscale_max, info.autoscale_held_at)
        # Serving (running and connected) as the routes table and /healthz count; the processes
        # alive but not serving (starting, or cut off from the broker) are named apart.
        live = f" ({info.live_workers} live)" if info.live_workers != info.serving_workers else ""
        return f"{info.serving_workers} of {info.desired_workers} serving{live}, {mode}"

    def _show_example(self) -> None:
        self.example.show(self.failures.selected_item)

    def on_table_view_row_highlighted(self, event: RowHighlighted) -> None:
        if event.table is self.failures:
            event.stop()
            self._show_example()

    def on_table_view_row_selected(self, event: RowSelected) -> None:
        event.stop()
        if event.table is self.pool:
            self.app.push_screen(WorkerScreen(event.key))
        elif event.table is self.failures:
            self.example.focus()

    # --- acting on the pool's selected worker ---------------------------------------------------

    def _selected_worker(self) -> WorkerInfo | None:
        worker = self.pool.selected_item
        if worker is None:
            self.notify("This route has no worker.", severity="warning")
        return worker

    def action_restart_worker(self) -> None:
        if (worker := self._selected_worker()) is not None:
            worker_actions.restart_worker(self.dashboard, worker)

    def action_kill_worker(self) -> None:
        if (worker := self._selected_worker()) is not None:
            worker_actions.kill_worker(self.dashboard, worker)
