"""ManagerScreen: another manager of the fleet, its workers and routes as its last status says.

Opened with Enter on the fleet screen; Esc goes back. The tables are the dashboard's own, drawn
from the snapshot in the manager's status, and the dashboard's pool keys (+, -, A, r, R, s, a)
act on that manager through signed commands (fleet_actions.py). A worker's or a route's details
are not in a status: Enter on a row says where to find them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer

from engine.fleet.observer import ManagerStatus
from engine.snapshot import ManagerSnapshot

from .. import format as fmt
from .. import keys
from ..fleet_actions import RemotePoolActions
from ..fleet_port import FleetPort
from ..widgets.column_layout import one_line
from ..widgets.keyed_table import KeyedTable
from ..widgets.routes_table import RoutesTable
from ..widgets.table_view import RowSelected
from ..widgets.workers_table import WorkersTable
from .detail import DetailTitle
from .fleet_view import FleetView

# The dashboard's keys that mean the same here, for that manager (same ids: a keymap moves both).
REMOTE_KEYS = ("scale-up", "scale-down", "autoscale", "restart-dead", "stop-all", "start-all", "restart-worker",
               "cycle-sort", "reverse-sort")
NO_DETAILS = "A worker's or a route's details are only on that manager's own dashboard."


def title_facts(status: ManagerStatus, can_sign: bool) -> str:
    """``edge-a.example · online · version 0.1.0 · pid 4242 · status 0.4s ago``, made printable."""
    parts = [status.host or "host unknown", status.state]
    if status.version:
        parts.append(f"version {status.version}")
    if status.pid is not None:
        parts.append(f"pid {status.pid}")
    parts.append(f"status {fmt.age(status.age)} ago")
    if not can_sign:
        parts.append("remote control off")
    return one_line(" · ".join(parts))


class ManagerScreen(FleetView[ManagerStatus | None]):
    """The screen of the manager ``manager_id``; ``status``, when known, shows at once."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="manager.back"),
        *keys.bindings(REMOTE_KEYS),
    ]
    AUTO_FOCUS = "#manager-workers"

    def __init__(self, manager_id: str, status: ManagerStatus | None = None) -> None:
        super().__init__()
        self.manager_id = manager_id
        self.status = status
        self.last_table: KeyedTable[Any] | None = None  # the table used last: what the keys act on
        self.actions = RemotePoolActions(self)

    def compose(self) -> ComposeResult:
        self.title_bar = DetailTitle(id="manager-title")
        self.workers_table = WorkersTable(id="manager-workers")
        self.routes_table = RoutesTable(id="manager-routes")
        yield self.title_bar
        yield self.workers_table
        yield self.routes_table
        yield Footer()

    def on_mount(self) -> None:
        self.workers_table.border_title = "Workers"
        self.routes_table.border_title = "Routes"
        if self.status is None or self.status.snapshot_ready:
            self.show(self.status)
        else:  # decoding its snapshot is for the thread of the first read (FleetView.on_mount)
            self.show_problem()
        super().on_mount()

    # --- showing its status ---------------------------------------------------------------------

    @property
    def snapshot(self) -> ManagerSnapshot | None:
        return self.status.snapshot if self.status is not None else None

    def read(self, fleet: FleetPort) -> ManagerStatus | None:
        status = fleet.manager(self.manager_id)
        if status is not None:
            status.snapshot  # noqa: B018 - decoded here, in the thread, not on the event loop
        return status

    def show(self, seen: ManagerStatus | None) -> None:
        self.status = seen
        snapshot = self.snapshot
        if snapshot is not None:
            self.actions.note_snapshot(snapshot)
            self.workers_table.show(snapshot.workers)
            self.show_routes()
        self.show_problem()

    def show_routes(self) -> None:
        """The routes of the last status, with the sizes asked for and not answered yet."""
        snapshot = self.snapshot
        if snapshot is not None:
            self.routes_table.show(snapshot.routes, scale_targets=self.actions.scale_targets,
                                   pools_started=snapshot.started)

    def show_problem(self) -> None:
        fleet = self.dashboard.fleet
        status = self.status
        problem = self.problem
        if status is None:
            facts = ""
            problem = problem or "no status from it on the broker"
        else:
            facts = title_facts(status, fleet is not None and fleet.can_sign)
            if problem is None and (status.problem or status.snapshot_problem):
                problem = f"its last status could not be read: {status.problem or status.snapshot_problem}"
        self.title_bar.show("Manager", one_line(self.manager_id), facts, one_line(problem) if problem else None)

    # --- what the keys act on -------------------------------------------------------------------

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if event.widget is self.workers_table or event.widget is self.routes_table:
            self.last_table = event.widget

    def on_table_view_row_selected(self, event: RowSelected) -> None:
        event.stop()
        self.notify(NO_DETAILS, title=one_line(self.manager_id), markup=False)

    # The dashboard's pool keys, for that manager (fleet_actions.py).

    def action_scale_up(self) -> None:
        self.actions.scale_selected(+1)

    def action_scale_down(self) -> None:
        self.actions.scale_selected(-1)

    def action_toggle_autoscale(self) -> None:
        self.actions.toggle_autoscale()

    def action_restart_dead(self) -> None:
        self.actions.restart_dead()

    def action_restart_selected(self) -> None:
        self.actions.restart_selected()

    def action_stop_all(self) -> None:
        self.actions.stop_all()

    def action_start_all(self) -> None:
        self.actions.start_all()

    def action_cycle_sort(self) -> None:
        (self.last_table or self.workers_table).cycle_sort()

    def action_reverse_sort(self) -> None:
        (self.last_table or self.workers_table).reverse_sort()

    def action_back(self) -> None:
        self.dismiss(None)
