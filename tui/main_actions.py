"""The main screen's keys for what is under the cursor, and for its views.

Restart, kill (worker_actions.py, shared with the detail screens) and scale-to act on the
selected worker or route; `/` filters a table; htop's sort keys sort it; two keys narrow the
events panel. The app's action methods are one line each and call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.snapshot import WorkerInfo

from . import worker_actions
from .screens.scale import ScaleScreen
from .widgets.keyed_table import KeyedTable
from .widgets.table_view import RowHighlighted

if TYPE_CHECKING:
    from .app import DashboardApp


def selected_worker(app: DashboardApp) -> WorkerInfo | None:
    """The worker R and K act on: the workers table's cursor row (after telling the user if none)."""
    if app.selected_table() is not app.workers_table:
        app.notify("R and K act on one worker: select it in the workers table first.", severity="warning")
        return None
    worker = app.workers_table.selected_item
    if worker is None:
        app.notify("There is no worker to act on.", severity="warning")
    return worker


def restart_selected(app: DashboardApp) -> None:
    if (worker := selected_worker(app)) is not None:
        worker_actions.restart_worker(app, worker)


def kill_selected(app: DashboardApp) -> None:
    if (worker := selected_worker(app)) is not None:
        worker_actions.kill_worker(app, worker)


def scale_selected_to(app: DashboardApp) -> None:
    """Ask for the selected shared route's size, then scale it there."""
    route = app.pool.selected_route()
    if route is None:
        return
    current = app.pool.target_of(route)

    def answered(count: int | None) -> None:
        if count is not None and count != current:
            app.pool.scale_route_to(route, count)

    app.push_screen(ScaleScreen(route.topic, current), answered)


def open_filter(app: DashboardApp) -> None:
    app.filter_bar.open(app.selected_table())


def sort_biggest_first(app: DashboardApp, column: str) -> None:
    """Sort the selected table by ``column``, biggest first (again: the other way); the workers
    table when the selected one has no such column (the routes table has no cpu)."""
    table: KeyedTable[Any] = app.selected_table()
    if column not in {spec.key for spec in table.specs}:
        table = app.workers_table
    table.sort_biggest_first(column)


def toggle_worker_events(app: DashboardApp) -> None:
    """Narrow the events panel to the selected worker's lines, or widen it back."""
    panel = app.log_panel
    if panel.feed.slot is not None:
        panel.show_slot(None)
    elif (worker := app.workers_table.selected_item) is not None:
        panel.show_slot(worker.slot)
    else:
        app.notify("There is no worker to show the events of.", severity="warning")


def follow_cursor(app: DashboardApp, event: RowHighlighted) -> None:
    """An events panel narrowed to one worker follows the workers table's cursor."""
    if event.table is app.workers_table and app.log_panel.feed.slot is not None:
        app.log_panel.show_slot(event.key)
