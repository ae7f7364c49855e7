"""Immutable views of the manager that the dashboard and the headless runner render.

Everything here is a frozen dataclass of plain values, so a snapshot may be handed to another
thread, compared, or built by hand in a test. Nothing here touches a process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The slot states and the exit codes are defined where they belong; they are part of what a
# snapshot says, so they stay importable from here too.
from .protocol import (  # noqa: F401
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_CRASH,
    EXIT_OK,
    EXIT_ROUTES,
    EXIT_TLS,
    describe_exit,
)
from .states import LEGAL_TRANSITIONS, IllegalTransition, SlotState, check_transition  # noqa: F401


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
    received: int = 0  # by every process the slot has had (they add up across restarts)
    handled: int = 0
    failed: int = 0
    in_flight: int = 0
    messages_per_second: float = 0.0
    last_message_age: float | None = None  # seconds since the last message, None if none yet
    restarts: int = 0
    last_exit: str | None = None  # "0", "1", "SIGKILL (likely OOM or killed)", ...
    uptime: float | None = None  # seconds the current process has been up
    is_main: bool = False
    busy: float | None = None  # 0..1: share of the last seconds it had messages in hand (None: not known)
    heartbeat_age: float | None = None  # seconds since the worker was last heard (None: no process)

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
    failed: int = 0  # handlers that raised, and messages whose handler killed its worker
    dead_lettered: int = 0  # messages set aside to the dead-letter topic after killing workers
    utilization: float | None = None  # the mean busy of the pool's running workers
    autoscale_min: int | None = None  # the autoscale range; None when the pool is sized by hand
    autoscale_max: int | None = None
    autoscale_held_at: int | None = None  # held there: more workers did not raise throughput
    handler_p99: float | None = None  # seconds: the 99th percentile of handler time over the last minute
    serving_workers: int = 0  # running and connected to the broker: what /healthz counts

    @property
    def short_of_workers(self) -> bool:
        """Fewer workers serve than the route should have (dead, starting, or cut off from the broker)."""
        return self.serving_workers < max(1, self.desired_workers)

    @property
    def autoscaled(self) -> bool:
        return self.autoscale_min is not None


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
    start_method: str = "zygote"  # how workers start (WORKER_START_METHOD, or spawn after a fallback)
    zygote_pid: int | None = None  # the zygote new workers fork from; None until one is needed
    zygote_restarts: int = 0  # zygotes that died and were replaced
    taken_at: float = field(default=0.0, compare=False)  # time.monotonic() when taken

    @property
    def live_workers(self) -> int:
        """Shared workers that are starting or running (not stopping, draining or dead)."""
        return sum(1 for w in self.workers if w.serving and not w.is_main)

    @property
    def desired_workers(self) -> int:
        return sum(r.desired_workers for r in self.routes if r.shared)

    @property
    def serving_workers(self) -> int:
        """Shared workers running and connected to the broker (what /healthz counts)."""
        return sum(1 for w in self.workers if w.state is SlotState.RUNNING and w.connected and not w.is_main)


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """Something that happened: a worker started, died, was restarted, a pool was scaled, a log line."""

    seq: int
    time: float  # wall clock, time.time()
    kind: str  # "started", "exited", "restarted", "crash-loop", "hung", "scaled", "stopped", "log", ...
    message: str
    slot: str | None = None
    level: int = 20  # logging level
    # A "failure" event (a handler raised) says what and where as values, and how in its message:
    exception: str | None = None  # the exception type
    topic: str | None = None  # the message's topic

    @property
    def traceback(self) -> str | None:
        """A failure's traceback: the lines of its message after the first (kept once)."""
        if self.exception is None:
            return None
        return self.message.partition("\n")[2] or None
