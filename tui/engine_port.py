"""What the dashboard needs from the engine: exactly these methods of ``engine.WorkerManager``.

The app is written against this Protocol rather than the class, so that tests and screenshots
drive it with a fake that returns fixed snapshots (``tests/tui/fixtures.py``).
"""

from __future__ import annotations

from typing import Protocol

from engine.details import RouteDetail, WorkerDetail
from engine.settings import Settings
from engine.snapshot import EngineEvent, ManagerSnapshot


class EnginePort(Protocol):
    """The WorkerManager as the dashboard sees it.

    ``snapshot`` and ``events_since`` are cheap; the other methods may block for seconds and are
    only ever called from thread workers, one at a time.
    """

    settings: Settings

    def start_workers(self, num_workers: int | None = None) -> None: ...

    def stop_workers(self) -> None: ...

    def scale_route(self, topic: str, count: int) -> None: ...

    def set_autoscale(self, topic: str, min_workers: int | None, max_workers: int | None = None) -> None: ...

    def restart_dead_workers(self) -> int: ...

    def restart_worker(self, slot: str) -> None: ...

    def kill_worker(self, slot: str) -> None: ...

    def worker_detail(self, slot: str) -> WorkerDetail | None: ...

    def route_detail(self, topic: str) -> RouteDetail | None: ...

    def snapshot(self) -> ManagerSnapshot: ...

    def events_since(self, seq: int) -> list[EngineEvent]: ...

    def close(self) -> None: ...
