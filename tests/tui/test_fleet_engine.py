"""The fleet screen against the real thing: two real managers publishing their statuses on a real
Mosquitto, a real FleetObserver, and a signed scale that changes exactly the manager it was sent to."""

from __future__ import annotations

import time

import pytest

from engine.fleet.observer import FleetObserver
from engine.settings import Secret
from tests.engine.test_worker_manager import one_route_router
from tests.support import settings_for
from tui.app import DashboardApp
from tui.screens.fleet import FleetScreen
from tui.screens.manager import ManagerScreen

from .fixtures import FakeManager
from .helpers import Notifications, wait_until

pytestmark = pytest.mark.e2e

KEY = "operators-key-of-the-test"
ROUTE = "jobs/{name}"  # one_route_router's shared route, one worker


async def refreshed_until(app: DashboardApp, condition, what: str, timeout: float = 30.0) -> None:
    """Refresh the dashboard (and so its fleet screens) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        await app.refresh_dashboard()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def test_the_fleet_screen_lists_two_real_managers_and_plus_scales_only_the_one_opened(
    broker, group_name, start
):
    fleet_settings = {"fleet_status": True, "fleet_status_interval": 0.5, "fleet_control_key": Secret(KEY)}
    edge_a = start(one_route_router(), broker, group_name, manager_id="edge-a", **fleet_settings)
    edge_b = start(one_route_router(), broker, group_name, manager_id="edge-b", **fleet_settings)
    observer = FleetObserver(settings_for(broker, group_name, fleet_control_key=Secret(KEY)), group_name).start()
    try:
        app = DashboardApp(FakeManager(), fleet=observer, refresh=None, start=False)
        async with app.run_test(size=(120, 36)) as pilot:
            notes = Notifications.record(app)
            await pilot.press("F")
            fleet_screen = app.screen
            assert isinstance(fleet_screen, FleetScreen)
            table = fleet_screen.table

            def both_online() -> bool:
                return table.row_keys == ["edge-a", "edge-b"] and all(
                    table.get_cell(key, "state").plain == "online" for key in table.row_keys)

            await refreshed_until(app, both_online, "edge-a and edge-b online on the fleet screen")
            assert table.get_cell("edge-b", "workers").plain == "1/1"

            table.select_key("edge-b")
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, ManagerScreen) and screen.manager_id == "edge-b"
            screen.routes_table.focus()
            screen.routes_table.select_key(ROUTE)
            await pilot.press("plus")
            await wait_until(pilot, lambda: edge_b.snapshot().routes[0].desired_workers == 2,
                             what="edge-b's route scaled to 2")
            await wait_until(pilot, lambda: ("Fleet", f"edge-b: scale {ROUTE} to 2 ok", "information") in notes.seen,
                             what="the reply's toast")
            await refreshed_until(app, lambda: screen.routes_table.get_cell(ROUTE, "workers").plain.endswith("/2"),
                                  "edge-b's status with the new size on its screen")
        assert edge_a.snapshot().routes[0].desired_workers == 1
        assert notes.with_severity("error") == []
    finally:
        observer.close()
