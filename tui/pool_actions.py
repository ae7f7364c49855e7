"""PoolActions: the keys that steer the pools: scale (`+`, `-`), autoscale, restart, stop, start.

Scaling acts on one shared route, the one the operator points at; the others act on every
worker. A scale request shows in the routes table until a snapshot has it (`2/2 → 3`), and
counting goes on from it, so that `+ + +` means three more however slow the engine is. The
app's action methods are one line each and call these; `=` (main_actions.py) scales through them too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from engine.snapshot import ManagerSnapshot, RouteInfo, WorkerInfo

from . import keys
from .screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from .app import DashboardApp


def route_to_scale(routes: Sequence[RouteInfo], route_key: str | None, worker: WorkerInfo | None) -> RouteInfo | str:
    """The shared route `+`, `-`, `=` and `A` act on, or why there is none (a warning to show).

    ``route_key`` is the routes table's cursor row and ``worker`` the workers table's, whichever
    table the operator used last (the other None); with neither, the first shared route.
    """
    route: RouteInfo | None
    if route_key is not None:
        route = next((r for r in routes if r.topic == route_key), None)
    elif worker is not None:
        if worker.is_main:
            return ("The main worker serves the non-shared routes and does not scale; "
                    "select a worker of a shared route.")
        route = next((r for r in routes if r.topic == worker.route), None)
    else:
        route = next((r for r in routes if r.shared), None)
    if route is None:
        return "There is no shared route to scale."
    if not route.shared:
        return f"{route.topic} is not shared: the main worker serves it. Only shared routes scale."
    return route


def autoscale_range(route: RouteInfo, known: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """The range `A` turns autoscaling on with: the one the route had (from its code, --autoscale,
    or earlier), else one around its size."""
    return known.get(route.topic, (1, max(keys.AUTOSCALE_DEFAULT_MAX, 2 * route.desired_workers)))


class PoolActions:
    """The pool-steering keys of one app, and the requests they made that the engine has not applied."""

    def __init__(self, app: DashboardApp) -> None:
        self.app = app
        self._scale_targets: dict[str, int] = {}  # route -> count asked for, not yet in a snapshot
        self._autoscale_ranges: dict[str, tuple[int, int]] = {}  # route -> the last range seen on

    @property
    def scale_targets(self) -> Mapping[str, int]:
        """Route -> the worker count asked for and not yet in a snapshot (the routes table shows it)."""
        return self._scale_targets

    def target_of(self, route: RouteInfo) -> int:
        """The route's size as last asked for: the request in flight, else what the engine wants."""
        return self._scale_targets.get(route.topic, route.desired_workers)

    def note_snapshot(self, snapshot: ManagerSnapshot) -> None:
        """Forget the scale requests the engine is done with; remember each route's autoscale range."""
        in_flight = self.app.calls.scaling()
        for topic in [topic for topic in self._scale_targets if topic not in in_flight]:
            del self._scale_targets[topic]
        for route in snapshot.routes:
            if route.autoscale_min is not None and route.autoscale_max is not None:
                self._autoscale_ranges[route.topic] = (route.autoscale_min, route.autoscale_max)

    # --- scaling one route ----------------------------------------------------------------------

    def selected_route(self) -> RouteInfo | None:
        """The shared route `+`/`-` act on, or None (after telling the user why)."""
        app = self.app
        if app.snapshot is None:
            app.notify("No data from the engine yet.", severity="warning")
            return None
        table = app.last_table
        route = route_to_scale(
            app.snapshot.routes,
            table.selected_key if table is app.routes_table else None,
            app.workers_table.selected_item if table is app.workers_table else None,
        )
        if isinstance(route, str):
            app.notify(route, severity="warning", markup=False)
            return None
        return route

    def scale_selected(self, delta: int) -> None:
        """`+` / `-`: one worker more or fewer for the selected route, never fewer than the minimum."""
        route = self.selected_route()
        if route is None:
            return
        current = self.target_of(route)
        target = max(keys.MIN_WORKERS, current + delta)
        if target == current:
            self.app.notify(f"{route.topic} is at the minimum of {keys.MIN_WORKERS} worker; "
                            "press s to stop all workers.", severity="warning", markup=False)
            return
        self.scale_route_to(route, target)

    def scale_route_to(self, route: RouteInfo, target: int) -> None:
        """Ask the engine to resize the route's pool; the routes table shows it until applied."""
        app = self.app
        self._scale_targets[route.topic] = target
        app.calls.run(
            f"scale {route.topic}", f"scaling {route.topic} to {target}",
            lambda: app.manager.scale_route(route.topic, target), scale=(route.topic, target),
        )
        app.show_routes()

    def toggle_autoscale(self) -> None:
        """Autoscaling off for the selected route, or on again with the range it had."""
        app = self.app
        route = self.selected_route()
        if route is None:
            return
        topic = route.topic
        if route.autoscaled:
            app.calls.run(f"autoscale {topic}", f"autoscale off for {topic}",
                          lambda: app.manager.set_autoscale(topic, None))
            return
        low, high = autoscale_range(route, self._autoscale_ranges)
        app.calls.run(f"autoscale {topic}", f"autoscale {topic} {low}-{high}",
                      lambda: app.manager.set_autoscale(topic, low, high))

    # --- every worker ---------------------------------------------------------------------------

    def restart_dead(self) -> None:
        """Restart the dead and crash-looping workers, and say how many there were."""
        self.app.calls.run("restart", "restarting dead workers", self.app.manager.restart_dead_workers,
                           on_success=self._restarted)

    def _restarted(self, count: int) -> None:
        if count:
            self.app.notify(f"Restarting {count} worker{'s' if count != 1 else ''}.", title="Restart")
        else:
            self.app.notify("No worker was dead or crash-looping.", title="Restart")

    def stop_all(self) -> None:
        """Stop every worker gracefully, after the operator confirms: they stay stopped until `a`."""
        app = self.app
        live = app.snapshot.live_workers if app.snapshot else 0
        timeout = app.manager.settings.graceful_timeout
        message = (
            f"{live} live worker{'s' if live != 1 else ''} will finish their in-flight messages "
            f"(up to {timeout:g} s) and exit. They stay stopped until you press a."
        )
        app.push_screen(ConfirmScreen("Stop all workers?", message, "Stop"), self._stop_confirmed)

    def _stop_confirmed(self, confirmed: bool | None) -> None:
        if confirmed:
            self.app.calls.run("lifecycle", "stopping all workers", self.app.manager.stop_workers)

    def start_all(self) -> None:
        """Start the workers (on mount too); the same group as stop, so the later key wins."""
        self.app.calls.run("lifecycle", "starting workers", self.app.manager.start_workers)
