"""Fixed engine states for the dashboard's snapshot tests, pilot tests and screenshots.

The data looks like the example routers (``routers/``) at work: ``sensors/+/temperature`` with
two workers, ``sensors/{sensor_id}/humidity`` with one, and ``devices/{device_id}/commands/
{command}``, not shared, served by the main worker. Everything is fixed, including times, so
that every rendering is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from engine.settings import Settings
from engine.snapshot import BrokerInfo, EngineEvent, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo
from tui.app import DashboardApp

MiB = 1024 * 1024
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: event times count from here
GROUP = "mqtt_framework_group"
BROKER = BrokerInfo("127.0.0.1:1883", "connected", kind="private mosquitto")
MAIN_ROUTE = "(non-shared routes)"

TEMPERATURE = "sensors/+/temperature"
HUMIDITY = "sensors/{sensor_id}/humidity"
COMMANDS = "devices/{device_id}/commands/{command}"

# messages/s over the last refreshes: a morning ramp with one dip (a worker died).
THROUGHPUT = (
    180, 196, 204, 221, 235, 248, 262, 255, 271, 286, 294, 301, 312, 305, 318, 326, 331, 340,
    352, 347, 358, 366, 212, 174, 236, 298, 341, 362, 371, 368, 380, 392, 386, 401, 397, 412,
)


def worker(route: str, index: int, state: SlotState = SlotState.RUNNING, **values: object) -> WorkerInfo:
    """A worker slot of a shared route, running unless told otherwise."""
    slot = f"{route}#{index}"
    defaults: dict[str, object] = {
        "pid": 41200 + index + (10 if route == HUMIDITY else 0),
        "connected": state is SlotState.RUNNING,
        "cpu_percent": 9.5,
        "rss_bytes": 47 * MiB,
        "received": 52_310,
        "handled": 52_308,
        "failed": 2,
        "messages_per_second": 131.4,
        "last_message_age": 0.02,
        "uptime": 3_725.0,
    }
    defaults.update(values)
    client_id = f"routemq-edge01-{GROUP}-{route.replace('/', '_')}-{index}"
    return WorkerInfo(slot=slot, route=route, index=index, client_id=client_id, state=state, **defaults)  # type: ignore[arg-type]


def main_worker(state: SlotState = SlotState.RUNNING, **values: object) -> WorkerInfo:
    defaults: dict[str, object] = {
        "pid": 41199,
        "connected": state is SlotState.RUNNING,
        "cpu_percent": 0.4,
        "rss_bytes": 39 * MiB,
        "received": 118,
        "handled": 118,
        "messages_per_second": 0.2,
        "last_message_age": 41.0,
        "uptime": 3_726.0,
    }
    defaults.update(values)
    return WorkerInfo(
        slot="main", route=MAIN_ROUTE, index=0, client_id=f"routemq-edge01-{GROUP}-main",
        state=state, is_main=True, **defaults,  # type: ignore[arg-type]
    )


def _totals(workers: Sequence[WorkerInfo], routes: Sequence[RouteInfo], **values: object) -> ManagerSnapshot:
    snapshot = ManagerSnapshot(
        group=GROUP,
        broker=BROKER,
        workers=tuple(workers),
        routes=tuple(routes),
        uptime=3_726.0,
        started=True,
        messages_per_second=round(sum(w.messages_per_second for w in workers), 1),
        handled=sum(w.handled for w in workers),
        failed=sum(w.failed for w in workers),
    )
    return dataclasses.replace(snapshot, **values)  # type: ignore[arg-type]


def healthy_snapshot() -> ManagerSnapshot:
    workers = (
        worker(TEMPERATURE, 0, cpu_percent=12.5, rss_bytes=int(48.2 * MiB), handled=61_204, failed=3,
               messages_per_second=152.4, busy=0.71),
        worker(TEMPERATURE, 1, cpu_percent=11.8, rss_bytes=int(47.9 * MiB), handled=60_877, failed=1,
               messages_per_second=149.9, last_message_age=0.05, busy=0.66),
        worker(HUMIDITY, 0, cpu_percent=6.1, rss_bytes=int(45.3 * MiB), handled=30_115, failed=0,
               messages_per_second=88.7, last_message_age=0.11, busy=0.38),
        main_worker(busy=0.01),
    )
    routes = (
        RouteInfo(TEMPERATURE, "sensors/+/temperature", 1, True, 2, 2, 302.3, 122_081, 4, utilization=0.685,
                  autoscale_min=1, autoscale_max=8),
        RouteInfo(HUMIDITY, "sensors/+/humidity", 1, True, 1, 1, 88.7, 30_115, 0, utilization=0.38),
        RouteInfo(COMMANDS, "devices/+/commands/+", 2, False, 1, 1, 0.2, 118, 0),
    )
    return _totals(workers, routes)


def failing_snapshot() -> ManagerSnapshot:
    """A dead worker in backoff, one in crash-loop, one starting (humidity was scaled to 2)."""
    workers = (
        worker(TEMPERATURE, 0, cpu_percent=23.9, rss_bytes=int(51.6 * MiB), handled=64_930, failed=3,
               messages_per_second=241.0, busy=1.0),
        worker(TEMPERATURE, 1, SlotState.BACKOFF, pid=None, cpu_percent=None, rss_bytes=None,
               handled=12_004, failed=1, messages_per_second=0.0, last_message_age=None, uptime=None,
               restarts=2, last_exit="SIGKILL (likely OOM or killed)", detail="restarting in 2.0 s"),
        worker(HUMIDITY, 0, SlotState.CRASH_LOOP, pid=None, cpu_percent=None, rss_bytes=None,
               handled=310, failed=310, messages_per_second=0.0, last_message_age=None, uptime=None,
               restarts=5, last_exit="1 (crashed)", detail="died 5 times in 60 s; press r to restart"),
        worker(HUMIDITY, 1, SlotState.STARTING, cpu_percent=31.0, rss_bytes=int(22.4 * MiB), handled=0,
               failed=0, messages_per_second=0.0, last_message_age=None, uptime=0.8),
        main_worker(),
    )
    routes = (
        RouteInfo(TEMPERATURE, "sensors/+/temperature", 1, True, 2, 1, 241.0, 76_934, 4, utilization=1.0,
                  autoscale_min=1, autoscale_max=8, autoscale_held_at=2),
        RouteInfo(HUMIDITY, "sensors/+/humidity", 1, True, 2, 1, 0.0, 310, 310, utilization=0.0),
        RouteInfo(COMMANDS, "devices/+/commands/+", 2, False, 1, 1, 0.2, 118, 0),
    )
    return _totals(workers, routes)


def no_shared_snapshot() -> ManagerSnapshot:
    """Only non-shared routes: one main worker, nothing to scale."""
    routes = (
        RouteInfo(COMMANDS, "devices/+/commands/+", 2, False, 1, 1, 0.2, 118, 0),
        RouteInfo("devices/{device_id}/status", "devices/+/status", 0, False, 1, 1, 1.1, 912, 0),
    )
    return _totals((main_worker(handled=1_030, messages_per_second=1.3),), routes)


def event(seq: int, seconds: float, kind: str, message: str, slot: str | None = None,
          level: int = logging.INFO) -> EngineEvent:
    return EngineEvent(seq=seq, time=T0 + seconds, kind=kind, message=message, slot=slot, level=level)


def healthy_events() -> list[EngineEvent]:
    return [
        event(1, 0.0, "started", "workers starting: 3 shared + main"),
        event(2, 0.1, "spawned", f"worker {TEMPERATURE}#0 started (pid 41200)", f"{TEMPERATURE}#0", logging.DEBUG),
        event(3, 61.5, "log", "device dev-17: command reboot", "main"),
        event(4, 3_600.0, "log", "device dev-4: command calibrate", "main"),
    ]


def no_shared_events() -> list[EngineEvent]:
    return [
        event(1, 0.0, "started", "workers starting: 0 shared + main"),
        event(2, 61.5, "log", "device dev-17: command reboot", "main"),
        event(3, 75.0, "log", "device dev-9: status online", "main"),
    ]


def failing_events() -> list[EngineEvent]:
    return [
        *healthy_events(),
        event(5, 3_650.2, "scaled", f"pool {HUMIDITY} scaled from 1 to 2 workers"),
        event(6, 3_651.0, "log", "handler failed: KeyError('value')", f"{HUMIDITY}#0", logging.ERROR),
        event(7, 3_700.4, "crash-loop", f"worker {HUMIDITY}#0 is crash-looping (1 (crashed)); not restarting it",
              f"{HUMIDITY}#0", logging.ERROR),
        event(8, 3_712.9, "exited",
              f"worker {TEMPERATURE}#1 exited with SIGKILL (likely OOM or killed); restarting in 2 s",
              f"{TEMPERATURE}#1", logging.WARNING),
        event(9, 3_725.1, "spawned", f"worker {HUMIDITY}#1 started (pid 41211)", f"{HUMIDITY}#1", logging.DEBUG),
    ]


@dataclass
class FakeManager:
    """The engine as the dashboard sees it (tui.engine_port.EnginePort), with fixed answers.

    ``snapshots`` are returned one per call to ``snapshot()``, the last one repeating; calls to
    the other methods are recorded in ``calls`` and change nothing. Thread-safe enough for
    the app's thread workers: list.append is atomic.
    """

    snapshots: Sequence[ManagerSnapshot] = field(default_factory=lambda: [healthy_snapshot()])
    events: list[EngineEvent] = field(default_factory=list)
    settings: Settings = field(default_factory=lambda: Settings(graceful_timeout=10.0))
    group_name: str = GROUP
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    snapshot_calls: int = 0
    restarted: int = 2  # what restart_dead_workers() answers
    # Method name -> event: that method waits until the event is set (to catch the app in the act).
    gates: dict[str, threading.Event] = field(default_factory=dict)
    # Set to make snapshot() or an engine call raise (name -> exception).
    failures: dict[str, Exception] = field(default_factory=dict)

    def snapshot(self) -> ManagerSnapshot:
        self.snapshot_calls += 1
        self._wait_for_gate("snapshot")
        if "snapshot" in self.failures:
            raise self.failures["snapshot"]
        index = min(self.snapshot_calls - 1, len(self.snapshots) - 1)
        return self.snapshots[index]

    def events_since(self, seq: int) -> list[EngineEvent]:
        return [e for e in self.events if e.seq > seq]

    def _wait_for_gate(self, name: str) -> None:
        gate = self.gates.get(name)
        if gate is not None and not gate.wait(timeout=30):
            raise TimeoutError(f"the test never opened the gate of {name}()")

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        self._wait_for_gate(name)
        if name in self.failures:
            raise self.failures[name]

    def start_workers(self, num_workers: int | None = None) -> None:
        self._record("start_workers", num_workers)

    def announce(self, message: str, level: int = 20) -> None:
        self._record("announce", message)

    def stop_workers(self) -> None:
        self._record("stop_workers")

    def scale_route(self, topic: str, count: int) -> None:
        self._record("scale_route", topic, count)

    def set_autoscale(self, topic: str, min_workers: int | None, max_workers: int | None = None) -> None:
        self._record("set_autoscale", topic, min_workers, max_workers)

    def restart_dead_workers(self) -> int:
        self._record("restart_dead_workers")
        return self.restarted

    def restart_worker(self, slot: str) -> None:
        self._record("restart_worker", slot)

    def close(self) -> None:
        self._record("close")

    def called(self, name: str) -> list[tuple[object, ...]]:
        """The arguments of every call to ``name``."""
        return [args for called, args in self.calls if called == name]

    def show(self, snapshot: ManagerSnapshot, new_events: Iterable[EngineEvent] = ()) -> None:
        """From now on, answer with ``snapshot``, and report ``new_events`` too."""
        self.snapshots = [*self.snapshots[: self.snapshot_calls], snapshot]
        self.events.extend(new_events)


def with_throughput(snapshot: ManagerSnapshot, rates: Iterable[float] = THROUGHPUT) -> list[ManagerSnapshot]:
    """The same snapshot once per rate, so that the throughput history fills up."""
    return [dataclasses.replace(snapshot, messages_per_second=float(rate)) for rate in rates]


def make_app(manager: FakeManager, **options: object) -> DashboardApp:
    """The dashboard as tests and screenshots use it: no timer, no start, default theme."""
    options.setdefault("refresh", None)
    options.setdefault("start", False)
    return DashboardApp(manager, **options)  # type: ignore[arg-type]


# --- the screens that snapshot tests and screenshots show ---------------------------------------


@dataclass(frozen=True)
class Scene:
    """An app in a given state and the keys pressed before the picture is taken."""

    name: str
    snapshots: Callable[[], list[ManagerSnapshot]]
    events: Callable[[], list[EngineEvent]] = list
    press: tuple[str, ...] = ()

    def manager(self) -> FakeManager:
        return FakeManager(snapshots=self.snapshots(), events=self.events())

    def app(self) -> DashboardApp:
        app = make_app(self.manager())
        # Toasts are part of the picture: keep them up however slow the machine taking it is.
        app.NOTIFICATION_TIMEOUT = 60
        return app

    async def settle(self, app: DashboardApp) -> None:
        """Refresh once per prepared snapshot (the first refresh ran at mount), then wait."""
        manager = app.manager
        assert isinstance(manager, FakeManager)
        while manager.snapshot_calls < len(manager.snapshots):
            await app.refresh_dashboard()
        await app.workers.wait_for_complete()


SCENES = {
    scene.name: scene
    for scene in (
        Scene("healthy", lambda: with_throughput(healthy_snapshot()), healthy_events),
        Scene("failures", lambda: with_throughput(failing_snapshot()), failing_events),
        Scene("no_shared_routes", lambda: with_throughput(no_shared_snapshot(), THROUGHPUT[:8]), no_shared_events),
        Scene("stop_confirmation", lambda: with_throughput(healthy_snapshot()), healthy_events, press=("s",)),
        Scene("help", lambda: with_throughput(healthy_snapshot()), healthy_events, press=("question_mark",)),
    )
}
