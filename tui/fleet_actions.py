"""RemotePoolActions: the dashboard's pool keys on a manager screen, as signed commands to that manager.

The same keys mean the same things as on the dashboard (+, -, A, r, R, s, a) and choose their
route or worker the same way (pool_actions.route_to_scale), from what the manager's last status
says; each becomes one command (fleet_commands.py). A scale in flight counts, as on the
dashboard: `+ + +` asks for three more however long the round trips take, and the routes table
shows the size asked for until the reply comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.snapshot import ManagerSnapshot, RouteInfo, WorkerInfo
from engine.text import printable

from . import fleet_commands, keys
from .fleet_commands import FleetCommand
from .pool_actions import autoscale_range, route_to_scale
from .screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from .screens.manager import ManagerScreen


class RemotePoolActions:
    """The pool keys of one manager screen, and the scale requests sent and not answered yet."""

    def __init__(self, screen: ManagerScreen) -> None:
        self.screen = screen
        self._scale_targets: dict[str, int] = {}  # route -> count asked for, no reply yet
        self._autoscale_ranges: dict[str, tuple[int, int]] = {}  # route -> the last range its status said

    @property
    def scale_targets(self) -> Mapping[str, int]:
        return self._scale_targets

    def note_snapshot(self, snapshot: ManagerSnapshot) -> None:
        for route in snapshot.routes:
            if route.autoscale_min is not None and route.autoscale_max is not None:
                self._autoscale_ranges[route.topic] = (route.autoscale_min, route.autoscale_max)

    # --- what the keys act on -------------------------------------------------------------------

    def _snapshot(self) -> ManagerSnapshot | None:
        screen = self.screen
        snapshot = screen.status.snapshot if screen.status is not None else None
        if snapshot is None:
            self._warn(f"No status from {screen.manager_id} to act on yet.")
        return snapshot

    def selected_route(self) -> RouteInfo | None:
        """The shared route `+`, `-` and `A` act on, chosen as on the dashboard; None after a warning."""
        screen = self.screen
        snapshot = self._snapshot()
        if snapshot is None:
            return None
        table = screen.last_table
        route = route_to_scale(
            snapshot.routes,
            table.selected_key if table is screen.routes_table else None,
            screen.workers_table.selected_item if table is screen.workers_table else None,
        )
        if isinstance(route, str):
            self._warn(route)
            return None
        return route

    def selected_worker(self) -> WorkerInfo | None:
        screen = self.screen
        if screen.last_table is screen.routes_table:
            self._warn("R acts on one worker: select it in the workers table first.")
            return None
        worker = screen.workers_table.selected_item
        if worker is None:
            self._warn("There is no worker to act on.")
        return worker

    # --- the keys -------------------------------------------------------------------------------

    def scale_selected(self, delta: int) -> None:
        route = self.selected_route()
        if route is None:
            return
        current = self._scale_targets.get(route.topic, route.desired_workers)
        target = max(keys.MIN_WORKERS, current + delta)
        if target == current:
            self._warn(f"{route.topic} is at the minimum of {keys.MIN_WORKERS} worker; press s to stop all workers.")
            return
        topic = route.topic

        def answered() -> None:
            if self._scale_targets.get(topic) == target:  # not a later request's
                del self._scale_targets[topic]
                self.screen.show_routes()

        if self._send("scale", {"route": topic, "count": target}, f"scale {topic} to {target}", answered):
            self._scale_targets[topic] = target
            self.screen.show_routes()

    def toggle_autoscale(self) -> None:
        route = self.selected_route()
        if route is None:
            return
        topic = route.topic
        if route.autoscaled:
            self._send("autoscale", {"route": topic, "min": None, "max": None}, f"autoscale off for {topic}")
            return
        low, high = autoscale_range(route, self._autoscale_ranges)
        self._send("autoscale", {"route": topic, "min": low, "max": high}, f"autoscale {topic} {low}-{high}")

    def restart_dead(self) -> None:
        if self._snapshot() is not None:
            self._send("restart-dead", {}, "restart dead workers")

    def restart_selected(self) -> None:
        worker = self.selected_worker()
        if worker is not None:
            self._send("restart-worker", {"slot": worker.slot}, f"restart {worker.slot}")

    def stop_all(self) -> None:
        """Stop every worker of that manager gracefully, after the operator confirms."""
        snapshot = self._snapshot()
        if snapshot is None:
            return
        manager = printable(self.screen.manager_id)
        live = snapshot.live_workers
        message = (
            f"{live} live worker{'s' if live != 1 else ''} of {manager} will finish their in-flight messages and "
            "exit. They stay stopped until you press a."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send("stop", {}, "stop all workers")

        self.screen.app.push_screen(ConfirmScreen(f"Stop all workers of {manager}?", message, "Stop"), confirmed)

    def start_all(self) -> None:
        if self._snapshot() is not None:
            self._send("start", {}, "start workers")

    # --- plumbing -------------------------------------------------------------------------------

    def _send(self, verb: str, args: dict[str, Any], what: str, answered: fleet_commands.Answered | None = None
              ) -> bool:
        screen = self.screen
        if screen.status is not None and screen.status.state == "offline":
            self._warn(f"{screen.manager_id} is offline: nothing would carry the command out.")
            return False
        command = FleetCommand(screen.manager_id, verb, args, what)
        return fleet_commands.send(screen.dashboard, command, answered)

    def _warn(self, message: str) -> None:
        self.screen.app.notify(printable(message), severity="warning", markup=False)
