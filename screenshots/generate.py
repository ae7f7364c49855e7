"""Regenerate the dashboard screenshots in this directory from the snapshot tests' fixtures.

    python screenshots/generate.py

Each picture is the real app, driven by the fake engine of ``tests/tui/fixtures.py`` (the same
scenes the snapshot tests render), so the README shows exactly what the tests check.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: `tests` and `tui` import from there

from tests.tui.fixtures import SCENES  # noqa: E402

SIZE = (140, 40)
PICTURES = {  # file name -> scene
    "dashboard.svg": "healthy",
    "dashboard-failures.svg": "failures",
    "stop-confirmation.svg": "stop_confirmation",
    "help.svg": "help",
    "worker.svg": "worker_screen",
    "route.svg": "route_screen",
    "fleet.svg": "fleet",
    "fleet-manager.svg": "fleet_manager",
}


async def take(scene_name: str, size: tuple[int, int] = SIZE) -> str:
    """The SVG of one scene, as the snapshot tests take it (toasts included)."""
    scene = SCENES[scene_name]
    app = scene.app()
    async with app.run_test(size=size, notifications=True) as pilot:
        await scene.settle(app)
        await scene.act(pilot)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        svg = app.export_screenshot(title="routemq-dash")
    # Rich gives each export a random CSS id; a fixed one keeps unchanged pictures unchanged.
    return re.sub(r"\bterminal-\d+-", "terminal-routemq-", svg)


async def main() -> None:
    for file_name, scene_name in PICTURES.items():
        path = HERE / file_name
        path.write_text(await take(scene_name), encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    asyncio.run(main())
