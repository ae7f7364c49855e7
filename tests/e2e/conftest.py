"""Fixtures of the end-to-end tests: managers that are always closed, started the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from engine import Router, WorkerManager
from engine.broker import PrivateMosquitto
from engine.snapshot import SlotState
from tests.support import settings_for, wait_until


def all_running(manager: WorkerManager) -> bool:
    workers = manager.snapshot().workers
    return bool(workers) and all(w.state is SlotState.RUNNING and w.connected for w in workers)


@pytest.fixture
def managers() -> Iterator[list[WorkerManager]]:
    """Managers made by a test are closed after it, whatever happens."""
    made: list[WorkerManager] = []
    yield made
    for manager in made:
        manager.close()


@pytest.fixture
def start(managers: list[WorkerManager]) -> Callable[..., WorkerManager]:
    """Start a manager for ``router`` on ``broker`` and wait until every worker is subscribed."""

    def start(router: Router, broker: PrivateMosquitto, group: str, **settings: object) -> WorkerManager:
        manager = WorkerManager(router, group, settings=settings_for(broker, group, **settings))
        managers.append(manager)
        manager.start_workers()
        wait_until(lambda: all_running(manager), what="every worker subscribed")
        return manager

    return start
