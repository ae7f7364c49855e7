"""DashboardApp: the dashboard over one engine: layout, the refresh loop, keys, quitting.

The app only reads the engine's snapshots and events and calls its methods (``EnginePort``).
Reading is cheap but still happens in a thread, and every other engine call can take seconds,
so all of them run in thread workers (``EngineCalls``): the event loop never waits for the
engine. What the keys do lives beside it (``pool_actions``, ``main_actions``); the app's action
methods are one line each, because Textual looks for them on the app. The other managers of the
group come the same way, through ``FleetPort`` (the fleet screen, F; ``fleet_commands`` steers them).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerFailed, WorkerState

from engine.snapshot import EngineEvent, ManagerSnapshot

from . import keys, log_bridge, main_actions
from .engine_calls import QUIT_GROUP, EngineCalls
from .engine_port import EnginePort
from .fleet_commands import NO_FLEET
from .fleet_port import FleetPort
from .palette import DashboardCommands
from .pool_actions import PoolActions
from .screens.detail import DetailScreen
from .screens.fleet import FleetScreen
from .screens.fleet_view import FleetView
from .screens.help import HelpScreen, help_rows
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
# Engine calls that change the pool; refused (and dimmed in the footer) once quitting.
_POOL_ACTIONS = frozenset({"scale_up", "scale_down", "toggle_autoscale", "restart_dead", "stop_all", "start_all",
                           "restart_selected", "kill_selected", "scale_to"})
# Keys about the main screen's tables and panel: off (and out of the footer) on the detail screens.
_MAIN_SCREEN_ACTIONS = frozenset({"restart_selected", "kill_selected", "scale_to", "filter", "sort_biggest_first",
                                  "events_warnings", "events_worker"})
# Keys about this manager's own pools and tables: off on the fleet's screens (the manager screen binds
# the pool keys again, for the manager it shows) and when only observing.
_LOCAL_ACTIONS = _POOL_ACTIONS | _MAIN_SCREEN_ACTIONS | {"cycle_sort", "reverse_sort"}


class DashboardApp(App[int]):
    """Watch and steer a pool of MQTT workers.

    ``refresh`` is the seconds between refreshes (each one re-armed only after the previous
    finished), or None to refresh only when :meth:`refresh_dashboard` is awaited (tests,
    screenshots). ``start`` starts the workers on mount. ``fleet`` is what the fleet screen shows
    (the other managers of the group; None: the fleet key says it is not available); the app
    closes it when it quits. ``observe`` (routemq-dash --observe) makes the fleet screen the only
    one: the engine then has no workers, and leaving stops nothing. ``theme`` defaults to textual-dark,
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
        fleet: FleetPort | None = None,
        observe: bool = False,
        refresh: float | None = 1.0,
        start: bool = True,
        theme: str | None = None,
        handle_signals: bool = False,
        freeze_gc: bool = False,
    ) -> None:
        if refresh is not None and not refresh > 0:
            raise ValueError(f"refresh must be a positive number of seconds, not {refresh!r}")
        if observe and fleet is None:
            raise ValueError("observing needs a fleet to observe")
        super().__init__()
        self.theme = theme or DEFAULT_THEME
        self.manager = manager
        self.fleet = fleet
        self.observe = observe
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
        self.calls = EngineCalls(self, on_quit_finished=self._finish_quit)
        self.pool = PoolActions(self)
        self._engine_problem: str | None = None
        self.last_table: KeyedTable[Any] | None = None  # the dashboard table focused last, if any yet
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
        if self.observe:
            self.push_screen(FleetScreen())
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
                engine_answered = await self._refresh_engine()
                await self._refresh_screens(engine_answered)
            finally:
                self.refreshing = False

    async def _refresh_engine(self) -> bool:
        poll = self.run_worker(self._poll_engine, group="poll", thread=True, exit_on_error=False)
        try:
            snapshot, new_events = await poll.wait()
        except WorkerFailed as failure:
            self._show_engine_problem(failure.error)
            return False
        self._engine_problem = None
        self._show(snapshot, new_events)
        return True

    async def _refresh_screens(self, engine_answered: bool) -> None:
        # An open worker, route, fleet or manager screen (under a dialog, too) is as fresh as the
        # tables; the fleet's screens whatever this manager's engine says.
        for screen in list(self.screen_stack):
            if isinstance(screen, DetailScreen) and engine_answered:
                await screen.refresh_detail()
            elif isinstance(screen, FleetView):
                await screen.refresh_fleet()

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
        self.pool.note_snapshot(snapshot)
        with self.batch_update():
            self.show_header()
            self.workers_table.show(snapshot.workers)
            self.show_routes()
            self.throughput.show(self.throughput_history)
            # Not cut to the panel's size here: it bounds log lines and lifecycle events apart.
            self.log_panel.add_events([e for e in new_events if e.level >= self.log_level])
        for toast in self._toasts.toasts_for(new_events):
            self.notify(toast.message, title=toast.title, severity=toast.severity, timeout=toast.timeout,
                        markup=False)

    def show_header(self) -> None:
        """The last snapshot's totals, the engine calls in flight, and why the engine may be silent."""
        pending = list(dict.fromkeys(self.calls.pending))
        self.header.show(self.snapshot, pending, self._engine_problem)

    def show_routes(self) -> None:
        """The routes of the last snapshot, with the scale requests not applied yet."""
        if self.snapshot is not None:
            self.routes_table.show(self.snapshot.routes, scale_targets=self.pool.scale_targets,
                                   pools_started=self.snapshot.started)

    def _show_engine_problem(self, error: BaseException) -> None:
        problem = f"engine: {error}"
        if problem != self._engine_problem:  # log it once, not every second
            self.log_panel.add_line(time.time(), "error", None, f"cannot read the engine: {error!r}", logging.ERROR)
        self._engine_problem = problem
        self.show_header()

    def on_engine_log_record(self, record: log_bridge.EngineLogRecord) -> None:
        if record.level >= self.log_level:
            self.log_panel.add_line(record.created, "log", record.logger, record.message, record.level)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Textual tells the app of its workers' state changes; the engine calls follow theirs.
        self.calls.on_worker_state_changed(event)

    # --- choosing what to act on ----------------------------------------------------------------

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Only the dashboard's own tables: a detail screen's pool table (focus bubbles up to the
        # app from every screen) must not become what +, - and A act on once the screen is gone.
        if event.widget is self.workers_table or event.widget is self.routes_table:
            self.last_table = event.widget

    def selected_table(self) -> KeyedTable[Any]:
        """The table the sort, filter, R and K keys act on: the one focused last, else the workers table."""
        return self.last_table or self.workers_table

    # --- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _MAIN_SCREEN_ACTIONS and self.screen is not self.screen_stack[0]:
            return False  # a detail screen: the key is its own, or nobody's
        if action in _LOCAL_ACTIONS and (self.observe or isinstance(self.screen, FleetView)):
            return False
        if action == "fleet" and isinstance(self.screen, FleetScreen):
            return False  # already there
        if self.quitting and (action in _POOL_ACTIONS or action == "fleet"):
            return None  # shown dimmed in the footer, does nothing
        return True

    # The keys that steer the pools (tui/pool_actions.py).

    def action_scale_up(self) -> None:
        self.pool.scale_selected(+1)

    def action_scale_down(self) -> None:
        self.pool.scale_selected(-1)

    def action_toggle_autoscale(self) -> None:
        self.pool.toggle_autoscale()

    def action_restart_dead(self) -> None:
        self.pool.restart_dead()

    def action_stop_all(self) -> None:
        self.pool.stop_all()

    def action_start_all(self) -> None:
        self.pool.start_all()

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
        self.selected_table().cycle_sort()

    def action_reverse_sort(self) -> None:
        self.selected_table().reverse_sort()

    async def action_fleet(self) -> None:
        """The fleet screen: pushed, or uncovered when a manager's screen is over it."""
        if self.fleet is None:
            self.notify(NO_FLEET, title="Fleet", severity="warning")
        elif any(isinstance(screen, FleetScreen) for screen in self.screen_stack):
            while not isinstance(self.screen, FleetScreen):
                await self.pop_screen()
        else:
            await self.push_screen(FleetScreen())

    def action_help(self) -> None:
        columns = [("Workers", self.workers_table.column_help()), ("Routes", self.routes_table.column_help())]
        if isinstance(self.screen, FleetScreen):
            columns = self.screen.help_columns()
        self.push_screen(HelpScreen(help_rows(self), self.refresh_interval, columns))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Our own "Quit" entry (DashboardCommands) says what quitting does; drop the generic one.
        for command in super().get_system_commands(screen):
            if isinstance(command, SystemCommand) and command.title == "Quit":
                continue
            yield command

    # --- quitting -------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop every worker gracefully, then exit (q, Ctrl+C, Ctrl+Q, the palette, SIGTERM).

        Observing, there is nothing to stop: the fleet's connection closes and the app exits.
        """
        if self.quitting:
            self.notify("Still stopping workers…", severity="warning")
            return
        self.quitting = True
        if self.observe:
            self.calls.run(QUIT_GROUP, "leaving", self._close_engine)
            return
        while len(self.screen_stack) > 1:  # the banner is on the dashboard: show it
            await self.pop_screen()
        self.quit_banner.display = True
        self.refresh_bindings()
        self.calls.run(QUIT_GROUP, "stopping workers", self._close_engine)

    def _close_engine(self) -> None:
        # The fleet first: closing it also ends the waits for replies (their futures are cancelled).
        if self.fleet is not None:
            self.fleet.close()
        self.manager.close()

    def _finish_quit(self, worker: Worker[Any]) -> None:
        if worker.state is WorkerState.SUCCESS:
            self.exit(0)
        else:
            self.exit(1, message=f"routemq-dash: error: stopping the workers failed: {worker.error}")
