"""DashboardApp: the dashboard over one engine: layout, keys, the refresh loop, engine calls.

The app only reads the engine's snapshots and events and calls its methods (``EnginePort``).
Reading is cheap but still happens in a thread, and every other engine call can take seconds,
so all of them run in thread workers: the event loop never waits for the engine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerFailed, WorkerState, get_current_worker

from engine.snapshot import EngineEvent, ManagerSnapshot, RouteInfo

from . import keys, log_bridge, main_actions
from .engine_port import EnginePort
from .palette import DashboardCommands
from .screens.confirm import ConfirmScreen
from .screens.detail import DetailScreen
from .screens.help import HelpRow, HelpScreen
from .screens.route import RouteScreen
from .screens.worker import WorkerScreen
from .toasts import ToastLimiter
from .widgets.events_panel import EventsPanel
from .widgets.filter_bar import FilterBar
from .widgets.header import DashboardHeader
from .widgets.keyed_table import KeyedTable
from .widgets.log_panel import MAX_LINES
from .widgets.routes_table import RoutesTable
from .widgets.table_view import RowHighlighted, RowSelected
from .widgets.throughput import Throughput
from .widgets.workers_table import WorkersTable

DEFAULT_THEME = "textual-dark"
HISTORY_SAMPLES = 300  # throughput samples kept: 5 minutes at the default refresh
QUIT_GROUP = "quit"
# Engine calls that change the pool; refused (and dimmed in the footer) once quitting.
_POOL_ACTIONS = frozenset({"scale_up", "scale_down", "toggle_autoscale", "restart_dead", "stop_all", "start_all",
                           "restart_selected", "kill_selected", "scale_to"})
# Keys about the main screen's tables and panel: off (and out of the footer) on the detail screens.
_MAIN_SCREEN_ACTIONS = frozenset({"restart_selected", "kill_selected", "scale_to", "filter", "sort_biggest_first",
                                  "events_warnings", "events_worker"})


class _Skipped:
    """What an engine call returns when it never ran (superseded or quitting)."""


SKIPPED = _Skipped()


@dataclass
class _PendingCall:
    description: str
    on_success: Callable[[Any], None] | None = None
    scale: tuple[str, int] | None = None  # (route, target) of a scale call


class DashboardApp(App[int]):
    """Watch and steer a pool of MQTT workers.

    ``refresh`` is the seconds between refreshes (each one re-armed only after the previous
    finished), or None to refresh only when :meth:`refresh_dashboard` is awaited (tests,
    screenshots). ``start`` starts the workers on mount. ``theme`` defaults to textual-dark,
    pinned so that screens look the same everywhere. ``freeze_gc`` (the real command, not a test
    process, which would keep every app it ran) freezes what start-up built once the first
    refresh is on screen: see :meth:`_freeze_startup_objects`.
    """

    CSS_PATH = "dashboard.tcss"
    TITLE = "routemq-dash"
    BINDINGS: ClassVar[list[BindingType]] = list(keys.bindings())
    COMMANDS: ClassVar = App.COMMANDS | {DashboardCommands}
    # Screens 40 lines or taller get the "-tall" class: more room for history and the log.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]  # App declares it ClassVar[...] | None

    def __init__(
        self,
        manager: EnginePort,
        *,
        refresh: float | None = 1.0,
        start: bool = True,
        theme: str | None = None,
        handle_signals: bool = False,
        freeze_gc: bool = False,
    ) -> None:
        if refresh is not None and not refresh > 0:
            raise ValueError(f"refresh must be a positive number of seconds, not {refresh!r}")
        super().__init__()
        self.theme = theme or DEFAULT_THEME
        self.manager = manager
        self.refresh_interval = refresh
        self.start_on_mount = start
        self.handle_signals = handle_signals
        self.freeze_gc = freeze_gc
        self.snapshot: ManagerSnapshot | None = None
        self.throughput_history: deque[float] = deque(maxlen=HISTORY_SAMPLES)
        self.quitting = False
        self.refreshing = False
        self.refresh_timer: Timer | None = None
        self._last_seq = -1  # events_since() returns events after this sequence number
        self._refresh_lock = asyncio.Lock()
        self._engine_lock = threading.Lock()  # one engine call at a time
        self._pending: dict[Worker[Any], _PendingCall] = {}
        self._scale_targets: dict[str, int] = {}  # route -> count asked for, not yet in a snapshot
        self._autoscale_ranges: dict[str, tuple[int, int]] = {}  # route -> the last range seen on
        self._engine_problem: str | None = None
        self._last_table: KeyedTable[Any] | None = None
        self._log_handler: log_bridge.PanelLogHandler | None = None
        self._toasts = ToastLimiter()  # a crash-looping worker does not bury the screen in toasts
        # The log panel shows what LOG_LEVEL asks for (the engine records DEBUG events too).
        self.log_level = logging.getLevelNamesMapping().get(manager.settings.log_level, logging.INFO)

    # --- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: the refresh updates them even while a dialog is the active screen
        # (App.query_one would search the dialog).
        self.header = DashboardHeader(id="header")
        self.workers_table = WorkersTable(id="workers")
        self.routes_table = RoutesTable(id="routes")
        self.throughput = Throughput(id="throughput")
        self.log_panel = EventsPanel(id="log", max_lines=MAX_LINES)
        self.filter_bar = FilterBar(id="filter")
        self.quit_banner = Static("Stopping workers… (waiting for in-flight messages)", id="quit-banner")
        yield self.header
        with Vertical(id="tables"):
            yield self.workers_table
            yield self.routes_table
        with Horizontal(id="activity"):
            yield self.throughput
            yield self.log_panel
        yield self.filter_bar
        yield self.quit_banner
        yield Footer()

    def on_mount(self) -> None:
        self.workers_table.border_title = "Workers"
        self.routes_table.border_title = "Routes"
        self.throughput.border_title = "Throughput"
        self.log_panel.border_title = "Events"
        self._log_handler = log_bridge.attach(self)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._on_stop_signal)
        if self.start_on_mount:
            self.action_start_all()
        self._refresh_cycle()

    def on_unmount(self) -> None:
        if self._log_handler is not None:
            log_bridge.detach(self._log_handler)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    def _on_stop_signal(self) -> None:
        # SIGTERM / SIGHUP (terminal closed): the same graceful way out as q.
        self.call_later(self.action_quit)

    # --- the refresh loop -----------------------------------------------------------------------

    async def refresh_dashboard(self) -> None:
        """Poll the engine once (in a thread) and render what it says. One refresh at a time."""
        async with self._refresh_lock:
            self.refreshing = True
            try:
                poll = self.run_worker(self._poll_engine, group="poll", thread=True, exit_on_error=False)
                try:
                    snapshot, new_events = await poll.wait()
                except WorkerFailed as failure:
                    self._show_engine_problem(failure.error)
                    return
                self._engine_problem = None
                self._show(snapshot, new_events)
                await self._refresh_detail_screens()
            finally:
                self.refreshing = False

    async def _refresh_detail_screens(self) -> None:
        # An open worker or route screen (under a dialog, too) is as fresh as the tables.
        for screen in list(self.screen_stack):
            if isinstance(screen, DetailScreen):
                await screen.refresh_detail()

    def on_table_view_row_selected(self, event: RowSelected) -> None:
        """Enter on a worker or a route opens its screen (Esc comes back to the same row)."""
        if event.table is self.workers_table:
            self.push_screen(WorkerScreen(event.key))
        elif event.table is self.routes_table:
            self.push_screen(RouteScreen(event.key))

    def _poll_engine(self) -> tuple[ManagerSnapshot, list[EngineEvent]]:
        return self.manager.snapshot(), self.manager.events_since(self._last_seq)

    def _refresh_cycle(self) -> None:
        self.run_worker(self._refresh_then_rearm(), group="refresh")

    async def _refresh_then_rearm(self) -> None:
        await self.refresh_dashboard()
        if self.freeze_gc:
            self.freeze_gc = False
            self._freeze_startup_objects()
        self._arm_refresh_timer()

    @staticmethod
    def _freeze_startup_objects() -> None:
        """Leave what start-up built (modules, the DOM, styles, the engine) out of future GC passes.

        The process then holds some 70,000 long-lived objects, and each full collection (one
        every half a minute or so, with the refreshes and the supervisor's snapshots) would walk
        them all again: ~70 ms each time, a stall on screen and a good part of the dashboard's
        CPU. Collect first, so that no garbage is frozen with them.
        """
        gc.collect()
        gc.freeze()

    def _arm_refresh_timer(self) -> None:
        # A one-shot timer armed after each refresh (not set_interval): a slow engine or a busy
        # terminal stretches the period instead of piling refreshes up.
        if self.refresh_interval is not None and self.is_running:
            self.refresh_timer = self.set_timer(self.refresh_interval, self._on_refresh_timer, name="refresh")

    def _on_refresh_timer(self) -> None:
        self.refresh_timer = None
        self._refresh_cycle()

    def _show(self, snapshot: ManagerSnapshot, new_events: list[EngineEvent]) -> None:
        self.snapshot = snapshot
        self.throughput_history.append(snapshot.messages_per_second)
        if new_events:
            self._last_seq = new_events[-1].seq
        self._forget_applied_scale_targets()
        for route in snapshot.routes:
            if route.autoscale_min is not None and route.autoscale_max is not None:
                self._autoscale_ranges[route.topic] = (route.autoscale_min, route.autoscale_max)
        with self.batch_update():
            self._show_header()
            self.workers_table.show(snapshot.workers)
            self._show_routes()
            self.throughput.show(self.throughput_history)
            # Not cut to the panel's size here: it bounds log lines and lifecycle events apart.
            self.log_panel.add_events([e for e in new_events if e.level >= self.log_level])
        for toast in self._toasts.toasts_for(new_events):
            self.notify(toast.message, title=toast.title, severity=toast.severity, timeout=toast.timeout,
                        markup=False)

    def _show_header(self) -> None:
        pending = list(dict.fromkeys(call.description for call in self._pending.values()))
        self.header.show(self.snapshot, pending, self._engine_problem)

    def _show_engine_problem(self, error: BaseException) -> None:
        problem = f"engine: {error}"
        if problem != self._engine_problem:  # log it once, not every second
            self.log_panel.add_line(time.time(), "error", None, f"cannot read the engine: {error!r}", logging.ERROR)
        self._engine_problem = problem
        self._show_header()

    def on_engine_log_record(self, record: log_bridge.EngineLogRecord) -> None:
        if record.level >= self.log_level:
            self.log_panel.add_line(record.created, "log", record.logger, record.message, record.level)

    # --- engine calls ---------------------------------------------------------------------------

    def _engine_call(
        self,
        group: str,
        description: str,
        call: Callable[[], Any],
        *,
        on_success: Callable[[Any], None] | None = None,
        scale: tuple[str, int] | None = None,
    ) -> Worker[Any]:
        """Run a slow engine call in a thread worker.

        Workers of one group are exclusive: a newer request (another `+`, `a` after `s`)
        supersedes an older one that has not reached the engine yet. Calls reach the engine one
        at a time, so they never overlap; once quitting, only the quit call still runs.
        """

        def run() -> Any:
            with self._engine_lock:
                if get_current_worker().is_cancelled or (self.quitting and group != QUIT_GROUP):
                    return SKIPPED
                return call()

        worker = self.run_worker(
            run, name=description, group=group, description=description,
            exclusive=True, thread=True, exit_on_error=False,
        )
        self._pending[worker] = _PendingCall(description, on_success, scale)
        self._show_header()
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        call = self._pending.get(worker)
        if call is None or not worker.is_finished:
            return
        del self._pending[worker]
        if worker.state is WorkerState.SUCCESS and worker.result is not SKIPPED and call.on_success:
            call.on_success(worker.result)
        elif worker.state is WorkerState.ERROR:
            self.notify(f"{call.description}: {worker.error}", title="Engine call failed", severity="error",
                        markup=False)
            self.log_panel.add_line(time.time(), "error", None, f"{call.description} failed: {worker.error!r}",
                                    logging.ERROR)
        if worker.group == QUIT_GROUP:
            self._finish_quit(worker)
            return
        self._show_header()

    @property
    def pending_calls(self) -> list[str]:
        """Descriptions of the engine calls in flight (shown in the header)."""
        return [call.description for call in self._pending.values()]

    # --- choosing what to act on ----------------------------------------------------------------

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, KeyedTable):
            self._last_table = event.widget

    def _selected_table(self) -> KeyedTable[Any]:
        return self._last_table or self.workers_table

    def selected_route(self) -> RouteInfo | None:
        """The shared route `+`/`-` act on, or None (after telling the user why)."""
        if self.snapshot is None:
            self.notify("No data from the engine yet.", severity="warning")
            return None
        routes = {route.topic: route for route in self.snapshot.routes}
        table = self._last_table
        route: RouteInfo | None = None
        if table is self.routes_table and table.selected_key is not None:
            route = routes.get(table.selected_key)
        elif table is self.workers_table and (worker := self.workers_table.selected_item) is not None:
            if worker.is_main:
                self.notify("The main worker serves the non-shared routes and does not scale; "
                            "select a worker of a shared route.", severity="warning", markup=False)
                return None
            route = routes.get(worker.route)
        else:
            route = next((r for r in self.snapshot.routes if r.shared), None)
        if route is None:
            self.notify("There is no shared route to scale.", severity="warning")
            return None
        if not route.shared:
            self.notify(f"{route.topic} is not shared: the main worker serves it. Only shared routes scale.",
                        severity="warning", markup=False)
            return None
        return route

    # --- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _MAIN_SCREEN_ACTIONS and self.screen is not self.screen_stack[0]:
            return False  # a detail screen: the key is its own, or nobody's
        if self.quitting and action in _POOL_ACTIONS:
            return None  # shown dimmed in the footer, does nothing
        return True

    def action_scale_up(self) -> None:
        self._scale_selected(+1)

    def action_scale_down(self) -> None:
        self._scale_selected(-1)

    def _scale_selected(self, delta: int) -> None:
        route = self.selected_route()
        if route is None:
            return
        # Count from the last request not yet applied, so that `+ + +` means three more.
        current = self._scale_targets.get(route.topic, route.desired_workers)
        target = max(keys.MIN_WORKERS, current + delta)
        if target == current:
            self.notify(f"{route.topic} is at the minimum of {keys.MIN_WORKERS} worker; "
                        "press s to stop all workers.", severity="warning", markup=False)
            return
        self.scale_route_to(route, target)

    def scale_route_to(self, route: RouteInfo, target: int) -> None:
        """Ask the engine to resize the route's pool; the routes table shows it until applied."""
        self._scale_targets[route.topic] = target
        self._engine_call(
            f"scale {route.topic}", f"scaling {route.topic} to {target}",
            lambda: self.manager.scale_route(route.topic, target), scale=(route.topic, target),
        )
        self._show_routes()

    def action_toggle_autoscale(self) -> None:
        route = self.selected_route()
        if route is None:
            return
        topic = route.topic
        if route.autoscaled:
            self._engine_call(f"autoscale {topic}", f"autoscale off for {topic}",
                              lambda: self.manager.set_autoscale(topic, None))
            return
        # The range it had (from its code, --autoscale, or earlier), else one around its size.
        low, high = self._autoscale_ranges.get(topic, (1, max(keys.AUTOSCALE_DEFAULT_MAX, 2 * route.desired_workers)))
        self._engine_call(f"autoscale {topic}", f"autoscale {topic} {low}-{high}",
                          lambda: self.manager.set_autoscale(topic, low, high))

    def _forget_applied_scale_targets(self) -> None:
        in_flight = {call.scale[0] for call in self._pending.values() if call.scale}
        for topic in [topic for topic in self._scale_targets if topic not in in_flight]:
            del self._scale_targets[topic]

    def _show_routes(self) -> None:
        """The routes of the last snapshot, with the scale requests not applied yet."""
        if self.snapshot is not None:
            self.routes_table.show(self.snapshot.routes, scale_targets=self._scale_targets,
                                   pools_started=self.snapshot.started)

    def action_restart_dead(self) -> None:
        self._engine_call("restart", "restarting dead workers", self.manager.restart_dead_workers,
                          on_success=self._restarted)

    def _restarted(self, count: int) -> None:
        if count:
            self.notify(f"Restarting {count} worker{'s' if count != 1 else ''}.", title="Restart")
        else:
            self.notify("No worker was dead or crash-looping.", title="Restart")

    def action_stop_all(self) -> None:
        live = self.snapshot.live_workers if self.snapshot else 0
        timeout = self.manager.settings.graceful_timeout
        message = (
            f"{live} live worker{'s' if live != 1 else ''} will finish their in-flight messages "
            f"(up to {timeout:g} s) and exit. They stay stopped until you press a."
        )
        self.push_screen(ConfirmScreen("Stop all workers?", message, "Stop"), self._stop_confirmed)

    def _stop_confirmed(self, confirmed: bool | None) -> None:
        if confirmed:
            self._engine_call("lifecycle", "stopping all workers", self.manager.stop_workers)

    def action_start_all(self) -> None:
        self._engine_call("lifecycle", "starting workers", self.manager.start_workers)

    # The main screen's keys for the selected row and its views (tui/main_actions.py).

    def action_restart_selected(self) -> None:
        main_actions.restart_selected(self)

    def action_kill_selected(self) -> None:
        main_actions.kill_selected(self)

    def action_scale_to(self) -> None:
        main_actions.scale_selected_to(self)

    def action_filter(self) -> None:
        main_actions.open_filter(self)

    def action_sort_biggest_first(self, column: str) -> None:
        main_actions.sort_biggest_first(self, column)

    def action_events_warnings(self) -> None:
        self.log_panel.toggle_warnings()

    def action_events_worker(self) -> None:
        main_actions.toggle_worker_events(self)

    def on_table_view_row_highlighted(self, event: RowHighlighted) -> None:
        main_actions.follow_cursor(self, event)

    def action_cycle_sort(self) -> None:
        self._selected_table().cycle_sort()

    def action_reverse_sort(self) -> None:
        self._selected_table().reverse_sort()

    def action_help(self) -> None:
        columns = [("Workers", self.workers_table.column_help()), ("Routes", self.routes_table.column_help())]
        self.push_screen(HelpScreen(self._help_rows(), self.refresh_interval, columns))

    def _help_rows(self) -> list[HelpRow]:
        # The keys as bound now on the dashboard screen, so that a user's keymap shows here.
        keys_by_id: dict[str, list[str]] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if binding.id in keys.COMMAND_IDS:
                keys_by_id.setdefault(binding.id, []).append(self.get_key_display(binding))
        keys_by_action: dict[str, list[str]] = {}
        for command in keys.COMMANDS:  # in the table's order: q before Ctrl+C
            shown = keys_by_id.get(command.id) or [command.key_display or command.key]
            keys_by_action.setdefault(command.action, []).extend(shown)
        return [
            (" ".join(dict.fromkeys(keys_by_action[command.action])), command.help)
            for command in keys.palette_commands()  # one row per action
        ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Our own "Quit" entry (DashboardCommands) says what quitting does; drop the generic one.
        for command in super().get_system_commands(screen):
            if isinstance(command, SystemCommand) and command.title == "Quit":
                continue
            yield command

    # --- quitting -------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop every worker gracefully, then exit (q, Ctrl+C, Ctrl+Q, the palette, SIGTERM)."""
        if self.quitting:
            self.notify("Still stopping workers…", severity="warning")
            return
        self.quitting = True
        while len(self.screen_stack) > 1:  # the banner is on the dashboard: show it
            await self.pop_screen()
        self.quit_banner.display = True
        self.refresh_bindings()
        self._engine_call(QUIT_GROUP, "stopping workers", self.manager.close)

    def _finish_quit(self, worker: Worker[Any]) -> None:
        if worker.state is WorkerState.SUCCESS:
            self.exit(0)
        else:
            self.exit(1, message=f"routemq-dash: error: stopping the workers failed: {worker.error}")
