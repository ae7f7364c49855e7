"""StatusPublisher: a manager's status for the fleet, on a small MQTT connection of its own.

Every manager of a group publishes, retained at QoS 1, on
``<FLEET_TOPIC>/<group>/<manager id>/status``: who it is (``manager``, ``host``, ``pid``,
``version``), its ``state`` (``online``, ``stopping``, ``offline``), the ``time`` (unix
seconds), its ``interval`` (seconds; three without a status read "stale") and its whole
``snapshot`` (engine/fleet/snapshot_json.py). It publishes every
FLEET_STATUS_INTERVAL seconds and at once when a worker's state, a pool's size or the broker's
state changes; always the whole snapshot, which a dashboard applies by replacing the last one
(a few kilobytes a second per manager: simpler, and cheaper to apply, than merging diffs).
Its last will, retained, says ``offline``: a manager killed by SIGKILL reads offline within 1.5
keepalives; a clean stop publishes ``offline`` itself. The workers' connections are untouched.
No setting, and so no secret, is part of a status.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..mqtt_client import connect_options, new_client
from ..settings import Settings
from ..snapshot import ManagerSnapshot
from .remote import RemoteControl
from .snapshot_json import to_json
from .summary import FleetSummary

log = logging.getLogger("routemq.fleet")

CHECK_EVERY = 0.1  # seconds between looks for a change of state
STOP_TIMEOUT = 2.0  # seconds a clean stop waits for its "offline" to reach the broker


def package_version() -> str:
    try:
        return importlib.metadata.version("routemq-dash")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def status_topic(settings: Settings, group: str, manager: str) -> str:
    return f"{settings.fleet_topic}/{group}/{manager}/status"


def changes_of(snapshot: ManagerSnapshot) -> tuple[Any, ...]:
    """What, when it changes, is published at once rather than at the next interval."""
    return (
        snapshot.started,
        snapshot.broker.state,
        tuple((w.slot, w.state, w.connected, w.restarts) for w in snapshot.workers),
        tuple((r.topic, r.desired_workers, r.autoscale_min, r.autoscale_max) for r in snapshot.routes),
    )


class StatusPublisher:
    def __init__(
        self,
        settings: Settings,
        group: str,
        snapshot: Callable[[], ManagerSnapshot],
        version: str = "",
    ) -> None:
        self.settings = settings
        self.manager = settings.manager_name
        self.topic = status_topic(settings, group, self.manager)
        self.version = version
        self.state = "online"
        self._snapshot = snapshot
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = new_client(settings, f"{settings.client_id}-{self.manager}-{group}-fleet", clean=True)
        self._client.will_set(self.topic, json.dumps({"manager": self.manager, "state": "offline"}), 1, True)
        self._client.on_connect = self._on_connect
        self._last: tuple[Any, ...] | None = None  # what was published last: (state, changes_of)
        self._due = 0.0  # monotonic time of the next status even without a change
        self._publishing = threading.Lock()
        self._control: RemoteControl | None = None
        self.topic_root = self.topic.removesuffix("/status")

    def start(self) -> None:
        options = connect_options(self.settings, clean=True, session_expiry=0)
        self._client.connect_async(**options)
        self._client.loop_start()  # paho's own thread: reconnects by itself
        self._thread = threading.Thread(target=self._run, name="routemq-fleet-status", daemon=True)
        self._thread.start()

    def set_state(self, state: str) -> None:
        """``stopping`` while the manager stops its workers, ``online`` again after.

        Published from the caller's thread, before it goes on: a stop quicker than the publishing
        thread's next look would otherwise never show ``stopping``.
        """
        self.state = state
        if self._client.is_connected():
            self._publish(self._snapshot())

    def stop(self) -> None:
        """Publish ``offline`` (waiting a little for the broker to have it), then disconnect.

        When the broker did not acknowledge it, the connection is dropped instead of closed: a
        clean DISCONNECT discards the last will, which then says ``offline`` in its place.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._control is not None:
            self._control.stop()
        said = False
        try:
            if self._client.is_connected():
                info = self._client.publish(self.topic, self._payload("offline"), qos=1, retain=True)
                info.wait_for_publish(STOP_TIMEOUT)
                said = info.is_published()
        except (RuntimeError, ValueError, OSError) as exc:  # not connected after all: the will says it
            log.debug("fleet status: could not publish offline: %s", exc)
        if said:
            self._client.disconnect()
            self._client.loop_stop()
        else:
            self._client.loop_stop()
            sock = self._client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    # --- the publishing thread --------------------------------------------------------------------

    def listen(self, control: RemoteControl) -> None:
        """Carry ``control``'s commands on this connection too (call before :meth:`start`)."""
        self._control = control
        control.attach(self._client)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        self._last = None  # a (re)connection publishes at once: the will may have said offline
        if self._control is not None:
            self._control.connected(client)

    def _run(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            snapshot = self._snapshot()
            if (self.state, changes_of(snapshot)) == self._last and time.monotonic() < self._due:
                continue
            if self._client.is_connected():
                self._publish(snapshot)

    def _publish(self, snapshot: ManagerSnapshot) -> None:
        with self._publishing:  # the thread and set_state: one status after the other, the last one last
            state = self.state
            self._client.publish(self.topic, self._payload(state, snapshot), qos=1, retain=True)
            self._last = (state, changes_of(snapshot))
            self._due = time.monotonic() + self.settings.fleet_status_interval

    def _payload(self, state: str, snapshot: ManagerSnapshot | None = None) -> str:
        return status_payload(self.manager, state, self.version, self.settings.fleet_status_interval, snapshot)


def status_payload(
    manager: str, state: str, version: str, interval: float, snapshot: ManagerSnapshot | None = None
) -> str:
    """One status message: who, in what state, and (unless it is the last word) its snapshot with
    the summary the fleet table reads."""
    status: dict[str, Any] = {
        "manager": manager,
        "state": state,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": version,
        "time": time.time(),
        "interval": interval,  # when an observer should call it stale
    }
    if snapshot is not None:
        status["summary"] = FleetSummary.of(snapshot).to_json()  # what a fleet table reads
        status["snapshot"] = to_json(snapshot)
    return json.dumps(status, separators=(",", ":"))
