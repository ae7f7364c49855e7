"""Snapshot tests: the real app rendered from fixed engine states (tests/tui/fixtures.py).

Regenerate after an intended change with
``python -m pytest tests/tui/test_snapshots.py --snapshot-update``, look at the report, and run
again without the flag.
"""

from __future__ import annotations

import pytest

from .fixtures import SCENES, Scene

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
# The main screen as it adapts its columns: the narrowest terminal we support and a wide one.
MAIN_SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48), (200, 50)], ids=["80x24", "160x48", "200x50"])


def take(snap_compare, scene: Scene, size: tuple[int, int]) -> bool:
    app = scene.app()

    async def settle(pilot) -> None:
        await scene.settle(pilot.app)
        await scene.act(pilot)  # the keys, and what they started (a detail screen's engine call)

    return snap_compare(app, terminal_size=size, run_before=settle)


@SIZES
class TestDashboard:
    def test_healthy_pool(self, snap_compare, size):
        assert take(snap_compare, SCENES["healthy"], size)

    def test_dead_crash_looping_and_starting_workers(self, snap_compare, size):
        assert take(snap_compare, SCENES["failures"], size)

    def test_no_shared_routes(self, snap_compare, size):
        assert take(snap_compare, SCENES["no_shared_routes"], size)


@MAIN_SIZES
class TestMainScreen:
    def test_long_names_stale_heartbeats_a_short_pool_and_last_exits(self, snap_compare, size):
        assert take(snap_compare, SCENES["diagnosis"], size)

    def test_a_filtered_table_says_so(self, snap_compare, size):
        assert take(snap_compare, SCENES["filtered"], size)


class TestMainScreenWide:
    def test_healthy_pool_at_200_columns(self, snap_compare):
        assert take(snap_compare, SCENES["healthy"], (200, 50))

    def test_dead_crash_looping_and_starting_workers_at_200_columns(self, snap_compare):
        assert take(snap_compare, SCENES["failures"], (200, 50))

    def test_events_narrowed_to_warnings_and_errors(self, snap_compare):
        assert take(snap_compare, SCENES["events_narrowed"], (80, 24))

    def test_scale_to_asks_for_a_number(self, snap_compare):
        assert take(snap_compare, SCENES["scale_to"], (80, 24))

    def test_a_dead_broker_shows_at_80_columns(self, snap_compare):
        assert take(snap_compare, SCENES["broker_down"], (80, 24))


@SIZES
class TestStopConfirmation:
    def test_asks_before_stopping_with_cancel_focused(self, snap_compare, size):
        assert take(snap_compare, SCENES["stop_confirmation"], size)


@SIZES
class TestHelpScreen:
    def test_lists_every_key(self, snap_compare, size):
        assert take(snap_compare, SCENES["help"], size)


@SIZES
class TestWorkerScreen:
    def test_identity_log_lifecycle_resources_and_held_messages(self, snap_compare, size):
        assert take(snap_compare, SCENES["worker_screen"], size)


@SIZES
class TestRouteScreen:
    def test_handler_times_failures_with_a_binary_payload_and_a_long_traceback(self, snap_compare, size):
        assert take(snap_compare, SCENES["route_screen"], size)


@SIZES
class TestFleetScreen:
    def test_online_stopping_stale_offline_and_a_status_that_did_not_read(self, snap_compare, size):
        assert take(snap_compare, SCENES["fleet"], size)


@SIZES
class TestManagerScreen:
    def test_its_workers_and_routes_from_its_status_with_remote_control_off(self, snap_compare, size):
        assert take(snap_compare, SCENES["fleet_manager"], size)
