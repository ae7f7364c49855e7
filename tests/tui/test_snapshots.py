"""Snapshot tests: the real app rendered from fixed engine states (tests/tui/fixtures.py).

Regenerate after an intended change with
``python -m pytest tests/tui/test_snapshots.py --snapshot-update``, look at the report, and run
again without the flag.
"""

from __future__ import annotations

import pytest

from .fixtures import SCENES, Scene

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def take(snap_compare, scene: Scene, size: tuple[int, int]) -> bool:
    app = scene.app()

    async def settle(pilot) -> None:
        await scene.settle(pilot.app)

    return snap_compare(app, press=scene.press, terminal_size=size, run_before=settle)


@SIZES
class TestDashboard:
    def test_healthy_pool(self, snap_compare, size):
        assert take(snap_compare, SCENES["healthy"], size)

    def test_dead_crash_looping_and_starting_workers(self, snap_compare, size):
        assert take(snap_compare, SCENES["failures"], size)

    def test_no_shared_routes(self, snap_compare, size):
        assert take(snap_compare, SCENES["no_shared_routes"], size)


@SIZES
class TestStopConfirmation:
    def test_asks_before_stopping_with_cancel_focused(self, snap_compare, size):
        assert take(snap_compare, SCENES["stop_confirmation"], size)


@SIZES
class TestHelpScreen:
    def test_lists_every_key(self, snap_compare, size):
        assert take(snap_compare, SCENES["help"], size)
