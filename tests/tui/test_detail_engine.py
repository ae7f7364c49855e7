"""The worker and route screens against the real engine: a handler that logs, prints and raises.

Real worker processes on a real Mosquitto; the tests wait on what the screens show (poll with a
deadline), never on fixed sleeps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from engine import Router, WorkerManager
from engine.settings import Settings
from engine.snapshot import SlotState
from tui.app import DashboardApp
from tui.screens.route import RouteScreen
from tui.screens.worker import WorkerScreen

from ..support import Publisher
from .helpers import wait_until

pytestmark = pytest.mark.e2e

ROUTE = "detail/{device}/reading"
SLOT_0 = f"{ROUTE}#0"
STARTUP = 30.0  # seconds a worker may take to spawn, connect and subscribe on a slow machine
log = logging.getLogger("tests.detail")


def handle_reading(device, payload, client):
    """Logs and prints every reading; a reading of "bad" makes it raise (module level: workers import it)."""
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else str(payload)
    log.warning("reading from %s: %s", device, text)
    print(f"printed for {device}", flush=True)
    if "bad" in text:
        raise ValueError(f"bad reading from {device}")
    return device


@pytest.fixture
def manager(broker, group_name) -> Iterator[WorkerManager]:
    router = Router()
    router.on(ROUTE, handle_reading, qos=1, shared=True, worker_count=1)
    settings = Settings(broker=broker.host, port=broker.port, group_name=group_name, graceful_timeout=3,
                        restart_backoff=0.1)
    made = WorkerManager(router, group_name, settings=settings)
    yield made
    made.close()


def text_of(pane) -> str:
    return "\n".join(line.text for line in pane.lines)


async def test_a_failing_handler_opened_from_the_tables(manager, broker):
    app = DashboardApp(manager, refresh=0.1, start=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: any(w.state is SlotState.RUNNING for w in manager.snapshot().workers),
                         STARTUP, "the worker")
        with Publisher(broker) as publisher:
            publisher.publish("detail/d-7/reading", b"21.5")
            publisher.publish("detail/d-9/reading", b"bad \x1b[31m\x00")
        await wait_until(pilot, lambda: app.workers_table.row_keys == [SLOT_0], what="its row")
        app.workers_table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, WorkerScreen), what="the worker screen")
        screen = app.screen
        assert isinstance(screen, WorkerScreen)
        await wait_until(pilot, lambda: "bad reading from d-9" in text_of(screen.log_pane), 15,
                         "the failure in the worker's log")
        shown = text_of(screen.log_pane)
        assert "reading from d-7: 21.5" in shown
        assert "printed for d-7" in shown
        assert "\x1b" not in shown and "\x00" not in shown
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, WorkerScreen), what="the dashboard")
        app.routes_table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RouteScreen), what="the route screen")
        route_screen = app.screen
        assert isinstance(route_screen, RouteScreen)
        await wait_until(pilot, lambda: route_screen.example.group is not None, 15, "the failure group")
        group = route_screen.example.group
        assert group is not None
        assert group.exception == "ValueError" and group.count == 1
        assert group.latest.topic == "detail/d-9/reading" and group.latest.slot == SLOT_0
        assert "bad reading from d-9" in group.latest.traceback
        assert group.latest.preview == "bad \\x1b[31m\\x00"
        await wait_until(pilot, lambda: route_screen.detail is not None and route_screen.detail.timings_total.count
                         == 2, 15, "both handler times")
