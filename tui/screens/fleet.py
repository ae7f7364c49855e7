"""FleetScreen: every manager of the group seen on the status topics, one row each.

Opened with F (or as the only screen with ``routemq-dash --observe``). Enter on a manager opens
its screen (its workers and routes, steered by signed commands); Esc goes back, or leaves an
observing dashboard. o and O sort the table, as on the dashboard.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer

from engine.fleet.observer import ManagerStatus
from engine.text import printable

from .. import keys
from ..fleet_port import FleetPort
from ..widgets.column_layout import one_line
from ..widgets.fleet_table import FleetTable
from ..widgets.table_view import RowSelected
from .detail import DetailTitle
from .fleet_view import FleetView
from .manager import ManagerScreen

STATE_ORDER = ("online", "stopping", "stale", "offline")


def summary(statuses: tuple[ManagerStatus, ...], can_sign: bool) -> str:
    """``4 managers: 2 online, 1 stale, 1 offline``, and whether this side can steer them."""
    if not statuses:
        text = "no manager of this group has published a status"
    else:
        states = Counter(status.state for status in statuses)
        counts = ", ".join(f"{states[state]} {state}" for state in STATE_ORDER if states[state])
        text = f"{len(statuses)} manager{'s' if len(statuses) != 1 else ''}: {counts}"
    return text if can_sign else f"{text} · remote control off"


def connection_problem(fleet: FleetPort) -> str | None:
    """Why no status may be coming: not connected to the broker (yet), and why if the broker said."""
    if fleet.connected.is_set():
        return None
    return fleet.connect_problem or "not connected to the broker (yet)"


Seen = tuple[tuple[ManagerStatus, ...], str | None]  # the managers, and why they may be out of date


class FleetScreen(FleetView[Seen]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="fleet.back"),
        # An observing dashboard has nothing under this screen: Esc leaves, as q does.
        Binding("escape", "leave", "Quit", show=False, id="fleet.leave"),
        *keys.bindings(("cycle-sort", "reverse-sort")),
    ]
    AUTO_FOCUS = "#fleet"

    def __init__(self) -> None:
        super().__init__()
        self.statuses: tuple[ManagerStatus, ...] = ()  # as last read
        self.connection: str | None = None  # what is wrong with the observer's connection, as last read

    def compose(self) -> ComposeResult:
        self.title_bar = DetailTitle(id="fleet-title")
        self.table = FleetTable(id="fleet")
        yield self.title_bar
        yield self.table
        yield Footer()

    def on_mount(self) -> None:
        self.table.border_title = "Managers"
        self._show_title()
        super().on_mount()

    def read(self, fleet: FleetPort) -> Seen:
        return fleet.managers(), connection_problem(fleet)

    def show(self, seen: Seen) -> None:
        self.statuses, self.connection = seen
        self.table.show(self.statuses)
        self._show_title()

    def show_problem(self) -> None:
        self._show_title()

    def _show_title(self) -> None:
        fleet = self.dashboard.fleet
        group = fleet.group if fleet is not None else self.dashboard.manager.settings.group_name
        can_sign = fleet.can_sign if fleet is not None else False
        problem = self.problem
        if problem is None and self.connection is not None:
            problem = f"{self.dashboard.manager.settings.broker_address}: {self.connection}"
        self.title_bar.show("Fleet", f"group {printable(group)}", summary(self.statuses, can_sign),
                            one_line(problem) if problem else None)

    def help_columns(self) -> list[tuple[str, list[tuple[str, str]]]]:
        return [("Managers", self.table.column_help())]

    # --- keys -----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return not self.dashboard.observe
        if action == "leave":
            return self.dashboard.observe
        return True

    def on_table_view_row_selected(self, event: RowSelected) -> None:
        event.stop()
        if event.table is self.table:
            status = next((status for status in self.statuses if status.manager == event.key), None)
            self.app.push_screen(ManagerScreen(event.key, status))

    def action_back(self) -> None:
        self.dismiss(None)

    async def action_leave(self) -> None:
        await self.dashboard.action_quit()

    def action_cycle_sort(self) -> None:
        self.table.cycle_sort()

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()
