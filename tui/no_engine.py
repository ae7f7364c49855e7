"""NoEngine: the engine of a dashboard that only observes the fleet (``routemq-dash --observe``).

An operator's laptop watching production starts no worker, no broker and no manager of its own;
the app still needs an ``EnginePort``, and this one has nothing: an empty snapshot, no events,
and a refusal for every verb (the app does not offer them in that mode anyway).
"""

from __future__ import annotations

from engine.details import RouteDetail, WorkerDetail
from engine.settings import Settings
from engine.snapshot import BrokerInfo, EngineEvent, ManagerSnapshot

OBSERVING = "this dashboard only observes the fleet: it has no workers of its own"


class ObserveOnly(RuntimeError):
    """A verb asked of a dashboard that has no workers."""


class NoEngine:
    """An ``EnginePort`` without workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._snapshot = ManagerSnapshot(settings.group_name, BrokerInfo(settings.broker_address, "idle",
                                                                         kind="observer"))

    def snapshot(self) -> ManagerSnapshot:
        return self._snapshot

    def events_since(self, seq: int) -> list[EngineEvent]:
        return []

    def worker_detail(self, slot: str) -> WorkerDetail | None:
        return None

    def route_detail(self, topic: str) -> RouteDetail | None:
        return None

    def close(self) -> None:
        pass  # nothing was started

    def start_workers(self, num_workers: int | None = None) -> None:
        raise ObserveOnly(OBSERVING)

    def stop_workers(self) -> None:
        raise ObserveOnly(OBSERVING)

    def scale_route(self, topic: str, count: int) -> None:
        raise ObserveOnly(OBSERVING)

    def set_autoscale(self, topic: str, min_workers: int | None, max_workers: int | None = None) -> None:
        raise ObserveOnly(OBSERVING)

    def restart_dead_workers(self) -> int:
        raise ObserveOnly(OBSERVING)

    def restart_worker(self, slot: str) -> None:
        raise ObserveOnly(OBSERVING)

    def kill_worker(self, slot: str) -> None:
        raise ObserveOnly(OBSERVING)
