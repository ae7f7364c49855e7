"""Pilot tests against the real engine: real worker processes on a real Mosquitto.

The dashboard drives a WorkerManager whose workers serve one shared route of this module; the
tests wait on the engine's own snapshots (poll with a deadline), never on fixed sleeps.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import psutil
import pytest

from engine import Router, WorkerManager
from engine.settings import Settings
from engine.snapshot import SlotState
from tui.app import DashboardApp
from tui.screens.confirm import ConfirmScreen

from .helpers import Notifications, wait_until

pytestmark = pytest.mark.e2e

ROUTE = "dash/{device}/reading"
SLOT_0 = f"{ROUTE}#0"
STARTUP = 30.0  # seconds a worker may take to spawn, connect and subscribe on a slow machine


def handle_reading(device, payload, client):
    """The handler of the test route (module level: worker processes import it)."""
    return device


def build_router() -> Router:
    router = Router()
    router.on(ROUTE, handle_reading, qos=1, shared=True, worker_count=1)
    return router


@pytest.fixture
def make_manager(broker, group_name) -> Iterator[Callable[..., WorkerManager]]:
    """Managers on the test broker and group; ``make_manager(restart_backoff=1.0)`` changes a setting."""
    made: list[WorkerManager] = []

    def make(**changes: object) -> WorkerManager:
        settings = Settings(broker=broker.host, port=broker.port, group_name=group_name, graceful_timeout=3,
                            restart_backoff=0.1).replace(**changes)
        made.append(WorkerManager(build_router(), group_name, settings=settings))
        return made[-1]

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def manager(make_manager: Callable[..., WorkerManager]) -> WorkerManager:
    return make_manager()


def live(manager: WorkerManager) -> int:
    return manager.snapshot().live_workers


def running(manager: WorkerManager) -> int:
    return sum(1 for w in manager.snapshot().workers if w.state is SlotState.RUNNING)


def worker_pids(manager: WorkerManager) -> set[int]:
    return {w.pid for w in manager.snapshot().workers if w.pid is not None}


def dashboard(manager: WorkerManager) -> DashboardApp:
    return DashboardApp(manager, refresh=0.1, start=True)


def state_shown(app: DashboardApp, slot: str) -> str | None:
    table = app.workers_table
    return table.get_cell(slot, "state").plain if slot in table.row_keys else None


async def test_plus_adds_a_worker(manager):
    app = dashboard(manager)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: running(manager) == 1, STARTUP, "the first worker")
        await wait_until(pilot, lambda: app.workers_table.row_count == 1, what="its row")
        await pilot.press("plus")
        await wait_until(pilot, lambda: live(manager) == 2, STARTUP, "a second worker")
        await wait_until(pilot, lambda: app.workers_table.row_keys == [SLOT_0, f"{ROUTE}#1"],
                         what="the second worker's row")
        route = next(r for r in manager.snapshot().routes if r.topic == ROUTE)
        assert route.desired_workers == 2


async def test_a_killed_worker_shows_as_dead_then_restarted(make_manager):
    # A backoff long enough for the 0.1 s refresh to show the dead worker several times.
    manager = make_manager(restart_backoff=1.0)
    app = dashboard(manager)
    async with app.run_test() as pilot:
        notes = Notifications.record(app)
        await wait_until(pilot, lambda: running(manager) == 1, STARTUP, "the worker")
        (pid,) = worker_pids(manager)
        os.kill(pid, signal.SIGKILL)
        await wait_until(pilot, lambda: state_shown(app, SLOT_0) == "backoff", what="the dead worker")
        assert "SIGKILL" in app.workers_table.get_cell(SLOT_0, "exit").plain
        await wait_until(pilot, lambda: state_shown(app, SLOT_0) == "running", STARTUP, "the restarted worker")
        assert app.workers_table.get_cell(SLOT_0, "restarts").plain == "1"
        assert app.workers_table.get_cell(SLOT_0, "pid").plain != str(pid)
        await wait_until(pilot, lambda: "Worker died" in notes.titles, what="the death toast")


async def test_s_then_y_stops_every_worker(manager):
    app = dashboard(manager)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: running(manager) == 1, STARTUP, "the worker")
        (pid,) = worker_pids(manager)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_until(pilot, lambda: live(manager) == 0, 15, "every worker to stop")
        await wait_until(pilot, lambda: state_shown(app, SLOT_0) == "exited", what="the stopped row")
        assert not psutil.pid_exists(pid)


async def test_q_leaves_no_process_behind(manager, broker):
    app = dashboard(manager)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: running(manager) == 1, STARTUP, "the first worker")
        await pilot.press("plus")
        await wait_until(pilot, lambda: running(manager) == 2, STARTUP, "the second worker")
        pids = worker_pids(manager)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None, 20, "the app to stop its workers and exit")
    assert app.return_code == 0
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    ours = [child for child in psutil.Process().children(recursive=True) if child.pid != broker.pid]
    assert [child.cmdline() for child in ours if child.is_running()] == []
