"""What the dashboard needs from the fleet: exactly these members of ``engine.fleet.observer.FleetObserver``.

As with ``EnginePort``, the app is written against this Protocol rather than the class, so that
tests and screenshots show fixed statuses and record the commands sent (``tests/tui/fixtures.py``).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Protocol

from engine.fleet.observer import ManagerStatus, Reply


class FleetPort(Protocol):
    """Every manager of one share group, as their statuses on the broker say.

    ``managers`` and ``manager`` take a lock that the observer's network thread holds while it reads
    a status (a large one takes a while to check), so the app calls them from thread workers.
    ``send`` raises ``RemoteControlOff`` when this side has no FLEET_CONTROL_KEY.
    """

    group: str
    connected: threading.Event  # set while connected to the broker
    connect_problem: str | None  # why the broker refused the connection, if it did

    @property
    def can_sign(self) -> bool: ...

    def managers(self) -> tuple[ManagerStatus, ...]: ...

    def manager(self, manager: str) -> ManagerStatus | None: ...

    def send(self, manager: str, verb: str, args: dict[str, Any] | None = None) -> Future[Reply]: ...

    def close(self) -> None: ...
