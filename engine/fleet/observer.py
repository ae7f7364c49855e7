"""FleetObserver: every manager of a group, as their statuses on the broker say, and a way to send
them signed commands and hear their replies.

What ``routemq-dash ctl`` and the dashboard's fleet screen read. It keeps one MQTT connection of
its own, subscribed to ``<FLEET_TOPIC>/<group>/+/status`` and ``.../+/reply``. Statuses come from
anyone who may publish on those topics, so each is read as untrusted: bounded in size, checked
field by field (a status that does not read is kept as a ``problem``, never raised), and the
manager is named by its topic, not by what the payload claims.

A status is retained, so a new observer learns the whole fleet at once. It knows it has
(:meth:`FleetObserver.wait_synced`) when the SUBACK of a second subscription comes back: the
broker sends a subscription's retained messages right after its SUBACK, on the same connection,
before it answers the next SUBSCRIBE.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from ..mqtt_client import connect_options, new_client
from ..settings import Settings
from ..snapshot import ManagerSnapshot
from .control import reply_is_signed, signed
from .summary import FleetSummary, LazySnapshot

STALE_INTERVALS = 3  # a manager not heard for this many of its intervals reads "stale"
# What a hostile publisher can make an observer hold: at most MAX_MANAGERS statuses (their bytes,
# until a screen asks for one's snapshot) of at most MAX_STATUS bytes. A status of 1 MiB is a
# manager of some 1,500 workers.
MAX_STATUS = 1024 * 1024  # bytes of one status
MAX_MANAGERS = 1000  # managers one observer keeps (statuses of others are ignored)
MAX_REPLY = 64 * 1024  # bytes of one reply
STATES = ("online", "stopping", "offline")


class RemoteControlOff(Exception):
    """This side has no FLEET_CONTROL_KEY, so it cannot sign a command."""


@dataclass(frozen=True)
class Reply:
    """A manager's answer to one command."""

    manager: str
    id: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class ManagerStatus:
    """One manager as its last status said, ``age`` seconds ago (as received here).

    ``state`` is what it said (``online``, ``stopping``, ``offline``) or ``stale`` when an online
    or stopping manager has not been heard for 3 of its intervals. ``problem`` says why a status
    could not be read (the rest is then what was read before, if anything). The fleet table's
    numbers come from the status's summary; ``snapshot`` is decoded only when asked for.
    """

    manager: str
    state: str
    age: float
    host: str = ""
    pid: int | None = None
    version: str = ""
    time: float | None = None  # the manager's clock when it sent the status
    interval: float = 2.0
    snapshot_source: ManagerSnapshot | LazySnapshot | None = None
    problem: str | None = None
    summary: FleetSummary | None = None  # None: taken from the snapshot

    @property
    def snapshot(self) -> ManagerSnapshot | None:
        source = self.snapshot_source
        return source.get() if isinstance(source, LazySnapshot) else source

    @property
    def snapshot_problem(self) -> str | None:
        """Why the snapshot did not read, once it was asked for."""
        source = self.snapshot_source
        return source.problem if isinstance(source, LazySnapshot) else None

    @property
    def has_snapshot(self) -> bool:
        return self.snapshot_source is not None

    @property
    def snapshot_ready(self) -> bool:
        """Whether reading ``snapshot`` is cheap (decoded already, or none): a screen's event
        loop reads it only then, and has it decoded in a thread otherwise."""
        source = self.snapshot_source
        return not isinstance(source, LazySnapshot) or source.decoded

    def _summary(self) -> FleetSummary | None:
        # Never decodes: a status read from the broker has its summary (or none that reads).
        source = self.snapshot_source
        if self.summary is None and isinstance(source, ManagerSnapshot):
            return FleetSummary.of(source)
        return self.summary

    @property
    def live_workers(self) -> int:
        return summary.live_workers if (summary := self._summary()) else 0

    @property
    def desired_workers(self) -> int:
        return summary.desired_workers if (summary := self._summary()) else 0

    @property
    def messages_per_second(self) -> float:
        return summary.messages_per_second if (summary := self._summary()) and self.state == "online" else 0.0

    @property
    def failed(self) -> int:
        return summary.failed if (summary := self._summary()) else 0

    @property
    def broker_state(self) -> str:
        return summary.broker_state if (summary := self._summary()) else ""

    @property
    def reachable(self) -> bool:
        """Whether a command sent now may be answered."""
        return self.state in ("online", "stopping")


@dataclass
class _Heard:
    """What the observer keeps of one manager (mutable, under the observer's lock)."""

    received: float  # monotonic
    state: str = "offline"
    host: str = ""
    pid: int | None = None
    version: str = ""
    time: float | None = None
    interval: float = 2.0
    snapshot: LazySnapshot | None = None
    summary: FleetSummary | None = None
    problem: str | None = None

    def view(self, manager: str, now: float) -> ManagerStatus:
        age = max(0.0, now - self.received)
        state = self.state
        if state != "offline" and age > STALE_INTERVALS * self.interval:
            state = "stale"
        return ManagerStatus(manager, state, age, self.host, self.pid, self.version, self.time, self.interval,
                             self.snapshot, self.problem, self.summary)


def read_status(heard: _Heard, payload: bytes, manager: str, default_interval: float) -> None:
    """Apply one status payload to what is known of ``manager``; a bad one sets ``problem``."""
    if len(payload) > MAX_STATUS:
        heard.problem = f"status of {len(payload)} bytes ignored (at most {MAX_STATUS})"
        return
    try:
        status = json.loads(payload)
    except (ValueError, RecursionError):
        heard.problem = "status is not JSON"
        return
    if not isinstance(status, dict):
        heard.problem = "status is not a JSON object"
        return
    state = status.get("state")
    if state not in STATES:
        heard.problem = f"unknown state {str(state)[:40]!r}"
        return
    claimed = status.get("manager")
    if claimed != manager:
        heard.problem = f"status names manager {str(claimed)[:64]!r}, not the one of its topic"
        return
    heard.state, heard.problem = state, None
    if state == "offline" and "snapshot" not in status:  # the last will: keep what was known
        return
    heard.host = _text(status.get("host"))
    heard.version = _text(status.get("version"))
    pid = status.get("pid")
    heard.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 else None
    heard.time = _number(status.get("time"), 0, 1e12)
    heard.interval = _number(status.get("interval"), 0.05, 3600) or default_interval
    if "snapshot" in status:
        _read_snapshot(heard, status, payload)


def _read_snapshot(heard: _Heard, status: dict[str, Any], payload: bytes) -> None:
    heard.snapshot = LazySnapshot(payload)
    heard.summary = None
    if "summary" in status:
        try:
            heard.summary = FleetSummary.from_json(status["summary"])
        except ValueError as exc:  # no numbers for the table; the snapshot is still there to open
            heard.problem = str(exc)[:200]
        return
    snapshot = heard.snapshot.get()  # an older manager, without a summary: decoded now, once
    if snapshot is None:
        heard.problem = heard.snapshot.problem
    else:
        heard.summary = FleetSummary.of(snapshot)


def _text(value: Any) -> str:
    return value[:256] if isinstance(value, str) else ""


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value if low <= value <= high else None
    return None


class FleetObserver:
    """Watch the managers of ``group`` and send them commands. ``start()``, then read
    :meth:`managers`; ``close()`` at the end."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.group = group
        self.root = f"{settings.fleet_topic}/{group}"
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._heard: dict[str, _Heard] = {}
        self._waiting: dict[str, tuple[str, Future[Reply]]] = {}  # command id -> (manager, its reply)
        self._synced = threading.Event()
        self._sync_mid: int | None = None
        self.connected = threading.Event()
        self.connect_problem: str | None = None
        suffix = uuid.uuid4().hex[:8]
        self._client = new_client(settings, f"{settings.client_id}-observer-{suffix}", clean=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._client.message_callback_add(f"{self.root}/+/status", self._on_status)
        self._client.message_callback_add(f"{self.root}/+/reply", self._on_reply)
        self.statuses_read = 0  # how many status messages were applied (the benchmark's count)

    # --- connection -------------------------------------------------------------------------------

    def start(self) -> FleetObserver:
        self._client.connect_async(**connect_options(self.settings, clean=True, session_expiry=0))
        self._client.loop_start()
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for _, future in waiting.values():
            future.cancel()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until the retained statuses have arrived; False after ``timeout`` seconds."""
        return self._synced.wait(timeout)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if reason.is_failure:
            self.connect_problem = f"the broker refused the connection: {reason}"
            return
        self.connect_problem = None
        self.connected.set()
        client.subscribe(f"{self.root}/+/status", qos=1)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho retries by itself; this says why nothing is seen meanwhile.
        self.connect_problem = f"cannot connect to the broker at {self.settings.broker_address}"

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        self.connected.clear()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any = None) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:  # an ACL that does not let us read the fleet: say so rather than show it empty
            self.connect_problem = f"the broker refused the subscription to {self.root}/... ({refused[0]})"
            return
        if self._sync_mid is None or mid != self._sync_mid:
            # The statuses' SUBACK: their retained messages follow it, before the next SUBACK.
            _, self._sync_mid = client.subscribe(f"{self.root}/+/reply", qos=1)
        else:
            self._synced.set()

    # --- statuses ---------------------------------------------------------------------------------

    def _on_status(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        manager = message.topic[len(self.root) + 1 : -len("/status")]
        now = self._clock()
        with self._lock:
            if not message.payload:  # a cleared retained status: forgotten
                self._heard.pop(manager, None)
                return
            heard = self._heard.get(manager)
            if heard is None:
                if len(self._heard) >= MAX_MANAGERS:
                    return
                heard = self._heard[manager] = _Heard(now)
            heard.received = now
            read_status(heard, bytes(message.payload), manager, self.settings.fleet_status_interval)
            if message.retain and heard.time is not None:
                # Kept by the broker, maybe for long: as old as its sender's clock says (a fresh
                # observer would otherwise read every retained status as new, and none as stale).
                heard.received = now - max(0.0, self._wall() - heard.time)
            self.statuses_read += 1

    def managers(self) -> tuple[ManagerStatus, ...]:
        """Every manager heard of, by id."""
        now = self._clock()
        with self._lock:
            return tuple(self._heard[m].view(m, now) for m in sorted(self._heard))

    def manager(self, manager: str) -> ManagerStatus | None:
        now = self._clock()
        with self._lock:
            heard = self._heard.get(manager)
            return heard.view(manager, now) if heard is not None else None

    # --- commands ---------------------------------------------------------------------------------

    @property
    def can_sign(self) -> bool:
        return self.settings.fleet_control_key is not None

    def send(self, manager: str, verb: str, args: dict[str, Any] | None = None) -> Future[Reply]:
        """Send one signed command to ``manager``; the future holds its reply when it comes.

        Raises RemoteControlOff when FLEET_CONTROL_KEY is not set here.
        """
        key = self.settings.fleet_control_key
        if key is None:
            raise RemoteControlOff("remote control is off: FLEET_CONTROL_KEY is not set")
        command_id = uuid.uuid4().hex
        command = signed(command_id, f"{self.group}/{manager}", verb, args or {}, time.time(), key.reveal())
        future: Future[Reply] = Future()
        with self._lock:
            self._waiting[command_id] = (manager, future)
        future.add_done_callback(lambda _: self._forget(command_id))
        self._client.publish(f"{self.root}/{manager}/control", json.dumps(command), qos=1)
        return future

    def _forget(self, command_id: str) -> None:
        with self._lock:
            self._waiting.pop(command_id, None)

    def _on_reply(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        manager = message.topic[len(self.root) + 1 : -len("/reply")]
        if len(message.payload) > MAX_REPLY:
            return
        try:
            reply = json.loads(message.payload)
        except (ValueError, RecursionError):
            return
        if not isinstance(reply, dict) or not isinstance(command_id := reply.get("id"), str):
            return
        with self._lock:
            waiting = self._waiting.get(command_id)
        if waiting is None or waiting[0] != manager:
            return  # another sender's command, or an answer from the wrong manager
        ok = reply.get("ok") is True
        key = self.settings.fleet_control_key
        if ok and (key is None or not reply_is_signed(reply, key.reveal())):
            return  # an "ok" only counts signed: anyone who may publish a reply could forge it
        # A refusal may come unsigned (a manager without the key cannot sign): believing a
        # forged one only makes the sender report a failure.
        error = reply.get("error")
        text = None if ok else (error[:500] if isinstance(error, str) else "refused (no reason given)")
        with contextlib.suppress(InvalidStateError):  # timed out and cancelled meanwhile
            waiting[1].set_result(Reply(manager, command_id, ok, text))
