"""Fixtures shared by every test: private Mosquitto brokers, unique share groups, managers closed after."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import Router, WorkerManager
from engine.broker import PrivateMosquitto, find_mosquitto
from tests.support import all_running, settings_for, wait_until

# Managers remember the broker sessions they keep (engine/sessions.py); tests keep theirs in a
# directory of this run, not in the home directory.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="routemq-test-state-")

# Tests must see the same terminal colours wherever they run (snapshots depend on them).
os.environ.pop("NO_COLOR", None)
os.environ.pop("TEXTUAL_THEME", None)

# Higher limits than Mosquitto's defaults so that load tests measure our code, not queue drops.
LOAD_LIMITS = "max_queued_messages 1000000\nmax_inflight_messages 100\n"


def _require_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: install it (apt-get install mosquitto); tests never skip for it")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """One Mosquitto for the session. Tests must not stop it: use ``make_broker`` for that."""
    _require_mosquitto()
    server = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto"), persistence=False, extra_config=LOAD_LIMITS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., PrivateMosquitto]]:
    """Start brokers of the test's own, which it may kill, restart and reconfigure."""
    _require_mosquitto()
    started: list[PrivateMosquitto] = []

    def make(**options: object) -> PrivateMosquitto:
        options.setdefault("extra_config", LOAD_LIMITS)
        server = PrivateMosquitto(tmp_path / f"mosquitto-{len(started)}", **options)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def group_name() -> str:
    """A share group no other test uses, so that tests never receive each other's messages."""
    return "t" + uuid.uuid4().hex[:10]


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

    def start(router: Router, broker: PrivateMosquitto, group: str, num_workers: int | None = None,
              **settings: object) -> WorkerManager:
        manager = WorkerManager(router, group, settings=settings_for(broker, group, **settings))
        managers.append(manager)
        manager.start_workers(num_workers)
        wait_until(lambda: all_running(manager), what="every worker subscribed")
        return manager

    return start
