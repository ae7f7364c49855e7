"""Immutable views of the manager that the dashboard and the headless runner render.

Everything here is a frozen dataclass of plain values, so a snapshot may be handed to another
thread, compared, or built by hand in a test. Nothing here touches a process.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from enum import StrEnum


class SlotState(StrEnum):
    """The life of a worker slot (supervisord-style, with MQTT draining added).

    stopped -> starting -> running -> stopping -> exited
                  |           |-> draining -> (slot removed)
                  |           '-> backoff -> starting ... (restarted after a delay)
                  '-> backoff              '-> crash-loop (too many deaths; waits for the operator)
    """

    STOPPED = "stopped"  # never started
    STARTING = "starting"  # process spawned, not yet subscribed
    RUNNING = "running"  # subscribed and sending heartbeats
    BACKOFF = "backoff"  # died; restarts when its delay has passed
    STOPPING = "stopping"  # asked to stop: finishing in-flight messages, keeping its session
    DRAINING = "draining"  # being removed: unsubscribed, finishing what the broker still sends
    EXITED = "exited"  # stopped by request
    CRASH_LOOP = "crash-loop"  # died too often; restarted only by restart_dead_workers()

    def __str__(self) -> str:
        return self.value

    @property
    def is_live(self) -> bool:
        """A process is (or should be) alive in this state."""
        return self in (SlotState.STARTING, SlotState.RUNNING, SlotState.STOPPING, SlotState.DRAINING)

    @property
    def is_dead(self) -> bool:
        """The slot wants a process and has none."""
        return self in (SlotState.BACKOFF, SlotState.CRASH_LOOP)


# Transitions the supervisor may make; anything else is a bug and raises.
LEGAL_TRANSITIONS: dict[SlotState, frozenset[SlotState]] = {
    SlotState.STOPPED: frozenset({SlotState.STARTING, SlotState.DRAINING}),
    SlotState.STARTING: frozenset(
        {SlotState.RUNNING, SlotState.BACKOFF, SlotState.CRASH_LOOP, SlotState.STOPPING, SlotState.DRAINING}
    ),
    SlotState.RUNNING: frozenset(
        {SlotState.BACKOFF, SlotState.CRASH_LOOP, SlotState.STOPPING, SlotState.DRAINING}
    ),
    SlotState.BACKOFF: frozenset(
        {SlotState.STARTING, SlotState.EXITED, SlotState.DRAINING, SlotState.CRASH_LOOP}
    ),
    SlotState.STOPPING: frozenset({SlotState.EXITED, SlotState.BACKOFF, SlotState.CRASH_LOOP}),
    SlotState.DRAINING: frozenset(
        {SlotState.EXITED, SlotState.STOPPING, SlotState.BACKOFF, SlotState.CRASH_LOOP}
    ),
    SlotState.EXITED: frozenset({SlotState.STARTING, SlotState.DRAINING}),
    SlotState.CRASH_LOOP: frozenset({SlotState.STARTING, SlotState.EXITED, SlotState.DRAINING}),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(slot: str, old: SlotState, new: SlotState) -> None:
    if new not in LEGAL_TRANSITIONS[old]:
        raise IllegalTransition(f"slot {slot}: illegal state change {old} -> {new}")


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker slot and the process that fills it (if any)."""

    slot: str  # "sensors/+/temperature#0", or "main" for the worker of the non-shared routes
    route: str  # the route pattern, or "(non-shared routes)" for main
    index: int
    client_id: str
    state: SlotState
    pid: int | None = None
    connected: bool = False
    detail: str = ""  # why it is not connected, why it died, what it is waiting for
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    received: int = 0
    handled: int = 0
    failed: int = 0
    in_flight: int = 0
    messages_per_second: float = 0.0
    last_message_age: float | None = None  # seconds since the last message, None if none yet
    restarts: int = 0
    last_exit: str | None = None  # "0", "1", "SIGKILL (likely OOM or killed)", ...
    uptime: float | None = None  # seconds the current process has been up
    is_main: bool = False

    @property
    def alive(self) -> bool:
        """A process fills the slot (it may be stopping or draining)."""
        return self.pid is not None and self.state.is_live

    @property
    def serving(self) -> bool:
        """The slot's process is starting or running, i.e. counts towards the pool's size."""
        return self.pid is not None and self.state in (SlotState.STARTING, SlotState.RUNNING)


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """One route and its pool (a shared route) or its share of the main worker."""

    topic: str
    mqtt_topic: str
    qos: int
    shared: bool
    desired_workers: int
    live_workers: int
    messages_per_second: float = 0.0
    handled: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    address: str  # "host:port"
    state: str  # "connected", "connecting", "unreachable", "auth failed", "tls error", "idle"
    detail: str = ""
    kind: str = "external"  # "external", "private mosquitto", "embedded rumqttd"


@dataclass(frozen=True, slots=True)
class ManagerSnapshot:
    """Everything the dashboard shows, at one instant."""

    group: str
    broker: BrokerInfo
    workers: tuple[WorkerInfo, ...] = ()
    routes: tuple[RouteInfo, ...] = ()
    uptime: float = 0.0  # seconds since start_workers()
    started: bool = False
    messages_per_second: float = 0.0
    handled: int = 0
    failed: int = 0
    taken_at: float = field(default=0.0, compare=False)  # time.monotonic() when taken

    @property
    def live_workers(self) -> int:
        """Shared workers that are starting or running (not stopping, draining or dead)."""
        return sum(1 for w in self.workers if w.serving and not w.is_main)

    @property
    def desired_workers(self) -> int:
        return sum(r.desired_workers for r in self.routes if r.shared)


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """Something that happened: a worker started, died, was restarted, a pool was scaled, a log line."""

    seq: int
    time: float  # wall clock, time.time()
    kind: str  # "started", "exited", "restarted", "crash-loop", "hung", "scaled", "stopped", "log", ...
    message: str
    slot: str | None = None
    level: int = 20  # logging level


def describe_exit(exitcode: int | None) -> str | None:
    """A human description of a process exit code (negative: killed by that signal)."""
    if exitcode is None:
        return None
    if exitcode >= 0:
        return str(exitcode) + _EXIT_MEANINGS.get(exitcode, "")
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"
    if name == "SIGKILL":
        return "SIGKILL (likely OOM or killed)"
    return name


# Exit codes of our worker process (engine.worker_process) and what they mean.
EXIT_OK = 0
EXIT_CRASH = 1
EXIT_ROUTES = 2  # could not load its routes (import error in a router module)
EXIT_AUTH = 3  # the broker refused the credentials
EXIT_TLS = 4  # the TLS handshake failed
EXIT_CONFIG = 5  # the broker refused the connection for another reason (bad client id, protocol)

_EXIT_MEANINGS = {
    EXIT_CRASH: " (crashed)",
    EXIT_ROUTES: " (routes failed to load)",
    EXIT_AUTH: " (bad credentials)",
    EXIT_TLS: " (TLS error)",
    EXIT_CONFIG: " (refused by broker)",
}
