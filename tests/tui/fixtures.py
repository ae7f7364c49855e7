"""Fixed engine states for the dashboard's snapshot tests, pilot tests and screenshots.

The data looks like the example routers (``routers/``) at work: ``sensors/+/temperature`` with
two workers, ``sensors/{sensor_id}/humidity`` with one, and ``devices/{device_id}/commands/
{command}``, not shared, served by the main worker. Everything is fixed, including times, so
that every rendering is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from textual.pilot import Pilot

from engine.details import FailureExample, FailureGroup, HeldMessage, RouteDetail, WorkerDetail
from engine.fleet.observer import ManagerStatus, RemoteControlOff, Reply
from engine.settings import Settings
from engine.snapshot import BrokerInfo, EngineEvent, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo
from engine.timings import BUCKETS, Timings, bucket_of
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


def _serving(route: RouteInfo, workers: Sequence[WorkerInfo]) -> RouteInfo:
    """The route with its serving count worked out from the workers, as the engine does."""
    serving = sum(1 for w in workers if w.state is SlotState.RUNNING and w.connected
                  and (w.route == route.topic if route.shared else w.is_main))
    return dataclasses.replace(route, serving_workers=serving)


def _totals(workers: Sequence[WorkerInfo], routes: Sequence[RouteInfo], **values: object) -> ManagerSnapshot:
    snapshot = ManagerSnapshot(
        group=GROUP,
        broker=BROKER,
        workers=tuple(workers),
        routes=tuple(_serving(route, workers) for route in routes),
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
               restarts=5, last_exit="1 (crashed)", detail="died 5 times within 60 s; last exit 1 (crashed). "
               "Restart it by hand (restart_dead_workers(), r)."),
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


BROKER_DOWN = "broker 127.0.0.1:1883 unreachable: connection refused; reconnecting"


def broker_down_snapshot() -> ManagerSnapshot:
    """The healthy pool a minute after the broker died: every process lives and reconnects, none serves."""
    healthy = healthy_snapshot()
    workers = tuple(dataclasses.replace(w, connected=False, detail=BROKER_DOWN, messages_per_second=0.0,
                                        last_message_age=61.0, heartbeat_age=0.6) for w in healthy.workers)
    routes = tuple(dataclasses.replace(r, messages_per_second=0.0) for r in healthy.routes)
    return _totals(workers, routes, broker=BrokerInfo("127.0.0.1:1883", "unreachable", "connection refused",
                                                      kind="private mosquitto"))


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
        event(7, 3_700.4, "crash-loop", f"Worker {HUMIDITY}#0 died 5 times within 60 s and is no longer restarted "
              "(last exit 1 (crashed)). Fix the cause, then restart it by hand.",
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
    # What worker_detail() / route_detail() answer, by slot / route (else a detail of the snapshot's row).
    worker_details: dict[str, WorkerDetail] = field(default_factory=dict)
    route_details: dict[str, RouteDetail] = field(default_factory=dict)

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

    def kill_worker(self, slot: str) -> None:
        self._record("kill_worker", slot)

    def worker_detail(self, slot: str) -> WorkerDetail | None:
        if "worker_detail" in self.failures:
            raise self.failures["worker_detail"]
        detail = self.worker_details.get(slot)
        if detail is None:
            info = next((w for w in self._current().workers if w.slot == slot), None)
            return None if info is None else WorkerDetail(info)
        return detail

    def route_detail(self, topic: str) -> RouteDetail | None:
        detail = self.route_details.get(topic)
        if detail is None:
            snapshot = self._current()
            info = next((r for r in snapshot.routes if r.topic == topic), None)
            if info is None:
                return None
            # Its pool, as the engine answers: the route's workers, or the main worker.
            pool = tuple(w for w in snapshot.workers if (w.route == topic if info.shared else w.is_main))
            return RouteDetail(info, workers=pool)
        return detail

    def _current(self) -> ManagerSnapshot:
        # The snapshot last answered, without moving on to the next one as snapshot() does.
        return self.snapshots[max(0, min(self.snapshot_calls, len(self.snapshots)) - 1)]

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


# --- the fleet (issue 14): other managers of the group, as their statuses say ------------------


def _stopping(snapshot: ManagerSnapshot) -> ManagerSnapshot:
    """The pool while its manager stops it: every worker finishing what it holds."""
    workers = tuple(dataclasses.replace(w, state=SlotState.STOPPING, messages_per_second=0.0, detail="stopping: "
                                        "finishing in-flight messages") for w in snapshot.workers)
    return dataclasses.replace(snapshot, workers=workers, messages_per_second=0.0)


def _stopped(snapshot: ManagerSnapshot) -> ManagerSnapshot:
    """The pool of a manager that stopped cleanly: its last status before offline."""
    workers = tuple(dataclasses.replace(w, state=SlotState.STOPPED, pid=None, connected=False, cpu_percent=None,
                                        rss_bytes=None, messages_per_second=0.0, uptime=None, busy=None,
                                        last_exit="0 (stopped)") for w in snapshot.workers)
    routes = tuple(dataclasses.replace(r, live_workers=0, serving_workers=0, messages_per_second=0.0)
                   for r in snapshot.routes)
    return dataclasses.replace(snapshot, workers=workers, routes=routes, started=False, messages_per_second=0.0)


# What a status that did not read says (engine/fleet/snapshot_json.py names the field).
BAD_STATUS = "snapshot.workers[1].state: 'exploded' is not a slot state"


def fleet_statuses() -> list[ManagerStatus]:
    """Six managers of the group, by id: two online (one in trouble), one stopping, one not heard for
    9 s (its broker gone), one offline for an hour and a half, and one whose last status did not read
    (its host name, from an earlier status, carries a terminal escape)."""
    return [
        ManagerStatus("edge-a", "online", 0.4, "edge-a.example", 4242, "0.1.0", T0 + 3_725.6, 2.0,
                      healthy_snapshot()),
        ManagerStatus("edge-b", "online", 1.1, "edge-b.example", 5120, "0.1.0", T0 + 3_724.9, 2.0,
                      failing_snapshot()),
        ManagerStatus("edge-c", "stopping", 0.2, "edge-c.example", 3318, "0.1.0", T0 + 3_725.8, 2.0,
                      _stopping(healthy_snapshot())),
        ManagerStatus("edge-d", "offline", 5_412.0, "edge-d.example", 2990, "0.0.9", T0 - 1_686.0, 2.0,
                      _stopped(healthy_snapshot())),
        ManagerStatus("edge-e", "stale", 9.3, "edge-e.example", 6001, "0.1.0", T0 + 3_716.7, 2.0,
                      broker_down_snapshot()),
        ManagerStatus("lab-1", "online", 0.9, "lab-1\x1b[31m.example", 777, "0.1.0", T0 + 3_725.1, 2.0,
                      no_shared_snapshot(), problem=BAD_STATUS),
    ]


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class FakeFleet:
    """The fleet as the dashboard sees it (tui.fleet_port.FleetPort), with fixed statuses.

    ``send`` records each command in ``sent`` and answers at once: ok, or the error ``refusals``
    holds for its verb; a verb in ``silent`` is never answered (until ``close()`` cancels the wait, as
    the observer's does). Without ``can_sign`` it raises RemoteControlOff, as the observer does without
    a key.
    """

    statuses: Sequence[ManagerStatus] = field(default_factory=fleet_statuses)
    group: str = GROUP
    can_sign: bool = True
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    waiting: list[Future[Reply]] = field(default_factory=list)
    closed: int = 0
    connected: threading.Event = field(default_factory=_set_event)
    connect_problem: str | None = None

    def managers(self) -> tuple[ManagerStatus, ...]:
        return tuple(self.statuses)

    def manager(self, manager: str) -> ManagerStatus | None:
        return next((status for status in self.statuses if status.manager == manager), None)

    def send(self, manager: str, verb: str, args: dict[str, Any] | None = None) -> Future[Reply]:
        if not self.can_sign:
            raise RemoteControlOff("remote control is off: FLEET_CONTROL_KEY is not set")
        self.sent.append((manager, verb, dict(args or {})))
        future: Future[Reply] = Future()
        if verb in self.silent:
            self.waiting.append(future)
        else:
            error = self.refusals.get(verb)
            future.set_result(Reply(manager, f"c{len(self.sent)}", error is None, error))
        return future

    def close(self) -> None:
        self.closed += 1
        for future in self.waiting:
            future.cancel()

    def show(self, statuses: Sequence[ManagerStatus]) -> None:
        self.statuses = list(statuses)


def make_app(manager: FakeManager, **options: object) -> DashboardApp:
    """The dashboard as tests and screenshots use it: no timer, no start, default theme."""
    options.setdefault("refresh", None)
    options.setdefault("start", False)
    return DashboardApp(manager, **options)  # type: ignore[arg-type]


# --- what the worker and route screens show -----------------------------------------------------

TEMPERATURE_0 = f"{TEMPERATURE}#0"
NOW = 3_726.0  # seconds after T0 when the detail snapshots are taken


def detail_snapshot() -> ManagerSnapshot:
    """The healthy pool, after temperature#0 was killed for hanging and its route saw failures."""
    snapshot = healthy_snapshot()
    workers = list(snapshot.workers)
    workers[0] = dataclasses.replace(
        workers[0], restarts=1, last_exit="SIGKILL (killed: hung, no heartbeat for 60 s)", uptime=NOW - 1_821.2,
        in_flight=2, failed=10, heartbeat_age=0.4,
    )
    workers[1] = dataclasses.replace(workers[1], failed=6, heartbeat_age=0.7)
    routes = list(snapshot.routes)
    routes[0] = dataclasses.replace(routes[0], failed=16, handler_p99=0.0151)
    return _totals(workers, routes)


def _log(seq: int, seconds: float, message: str, level: int = logging.INFO, kind: str = "log") -> EngineEvent:
    return event(seq, seconds, kind, message, TEMPERATURE_0, level)


def _worker_logs() -> tuple[EngineEvent, ...]:
    """What temperature#0's handlers logged, printed and wrote to stderr, across its restart."""
    lines: list[EngineEvent] = [
        _log(20, 1.4, "connected to 127.0.0.1:1883 as " + healthy_snapshot().workers[0].client_id, logging.DEBUG),
        _log(21, 1.5, "subscribed to $share/mqtt_framework_group/sensors/+/temperature (qos 1)"),
        _log(30, 1_690.2, "sensor s-17: 21.4 °C"),
        _log(31, 1_699.9, "calling the calibration service for s-3 (timeout none)", logging.WARNING),
        _log(32, 1_700.0, "[stderr] urllib3: Retrying (Retry(total=2)) after connection broken"),
        _log(40, 1_822.0, "connected to 127.0.0.1:1883 (session present: 7 messages waiting)", logging.DEBUG),
        _log(41, 1_822.1, "subscribed to $share/mqtt_framework_group/sensors/+/temperature (qos 1)"),
    ]
    seq = 50
    for minute in range(30):
        seconds = 1_830.0 + minute * 63.1
        sensor = 3 + minute * 7 % 40
        lines.append(_log(seq, seconds, f"sensor s-{sensor}: {19.0 + minute % 9 * 0.7:.1f} °C"))
        seq += 1
        if minute % 7 == 3:
            lines.append(_log(seq, seconds + 0.2, f"[stdout] recalibrating s-{sensor} (drift 0.{minute:02d})"))
            seq += 1
        if minute % 11 == 5:
            lines.append(_log(seq, seconds + 0.4, f"sensor s-{sensor}: reading 151.2 °C out of range, clamped",
                              logging.WARNING))
            seq += 1
        if minute % 13 == 8:
            lines.append(_log(seq, seconds + 0.5, "handler failed on sensors/s-9/temperature: ValueError: could not "
                              "convert string to float: 'hot'", logging.ERROR, "failure"))
            seq += 1
    lines.append(_log(seq, 3_725.6, "sensor s-17: 21.9 °C"))
    return tuple(lines)


def _worker_lifecycle() -> tuple[EngineEvent, ...]:
    slot = TEMPERATURE_0
    return (
        event(2, 0.1, "spawned", f"worker {slot} started (pid 41180)", slot),
        event(22, 1.5, "running", f"worker {slot} subscribed", slot),
        event(33, 1_760.0, "hung", f"worker {slot}: hung, no heartbeat for 60 s; killing it", slot, logging.WARNING),
        event(34, 1_760.1, "exited", f"worker {slot} exited with SIGKILL (killed: hung, no heartbeat for 60 s); "
              "restarting in 1 s", slot, logging.WARNING),
        event(35, 1_821.2, "spawned", f"worker {slot} started (pid 41200)", slot),
        event(42, 1_822.1, "running", f"worker {slot} subscribed", slot),
    )


def temperature_worker_detail(snapshot: ManagerSnapshot | None = None) -> WorkerDetail:
    """temperature#0 at work: its log, its restart after a hang, five minutes of CPU and memory."""
    info = (snapshot or detail_snapshot()).workers[0]
    cpu = tuple(round(11.0 + 3.0 * math.sin(i / 9) + (14.0 if 200 <= i < 206 else 0.0), 1) for i in range(300))
    memory = tuple(int((45.0 + 3.2 * i / 299) * MiB) for i in range(300))
    held = (HeldMessage("sensors/s-17/temperature", 0.84, 1), HeldMessage("sensors/s-4/temperature", 0.02, 1))
    return WorkerDetail(info, _worker_logs(), _worker_lifecycle(), cpu, memory, held, heartbeat_age=0.4)


def timings(samples: dict[float, int]) -> Timings:
    """Handler times from {seconds: how many messages took that long}."""
    counts = [0] * BUCKETS
    for seconds, count in samples.items():
        counts[bucket_of(seconds)] += count
    return Timings(tuple(counts), sum(s * n for s, n in samples.items()), max(samples))


# Printed in the order Python prints them; 64 lines: a recursive frame decoder deep in a payload.
_DEEP_FRAMES = "".join(
    f'  File "/srv/app/routers/sensors.py", line {41 + depth % 3}, in decode_frame\n'
    f"    return [decode_frame(part) for part in split_frames(raw)]\n"
    for depth in range(29)
)
LONG_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/engine/router.py", line 212, in invoke\n'
    "    return self.handler(context, **params)\n"
    '  File "/srv/app/routers/sensors.py", line 18, in on_temperature\n'
    "    frames = decode_frame(message.payload)\n"
    + _DEEP_FRAMES
    + '  File "/srv/app/routers/sensors.py", line 37, in decode_frame\n'
    "    text = raw.decode('utf-8')\n"
    "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 3: invalid start byte\n"
)
SHORT_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/routers/sensors.py", line 22, in on_temperature\n'
    '    celsius = float(reading["value"])\n'
    "ValueError: could not convert string to float: 'hot'\n"
)
# A device that sends a binary frame: NUL bytes, a terminal escape (red text), invalid UTF-8.
BINARY_PAYLOAD = (b"\x00\x01\x02\xff\xfe\x1b[31mRED\x1b[0m\x07\x08\r\n\x9c\x80[bold]not markup[/bold]"
                  + bytes(range(0, 256, 3)) * 2)[:200]  # the first 200 bytes: what the engine keeps


def temperature_route_detail(snapshot: ManagerSnapshot | None = None) -> RouteDetail:
    """sensors/+/temperature: handler times, an hour of traffic, three kinds of failure, its pool."""
    snapshot = snapshot or detail_snapshot()
    minute = timings({0.00031: 420, 0.00062: 2_310, 0.0011: 3_870, 0.0019: 1_640, 0.0034: 510, 0.0071: 96,
                      0.0151: 18, 0.041: 3})
    total = timings({0.00018: 3_100, 0.00031: 51_000, 0.00062: 286_000, 0.0011: 455_000, 0.0019: 198_000,
                     0.0034: 61_000, 0.0071: 12_400, 0.0151: 2_210, 0.041: 390, 0.12: 41, 2.1: 1})
    # Five minutes: the morning ramp of the dashboard's chart, stretched, with some noise on it.
    throughput = tuple(round(0.74 * THROUGHPUT[i * len(THROUGHPUT) // 300] * (1 + 0.08 * math.sin(i * 1.7)), 1)
                       for i in range(300))
    failures = (
        FailureGroup("UnicodeDecodeError", 3, FailureExample(
            T0 + 3_702.5, f"{TEMPERATURE}#1", "sensors/s-40/temperature", BINARY_PAYLOAD, 4_096, LONG_TRACEBACK)),
        FailureGroup("ValueError", 12, FailureExample(
            T0 + 3_655.0, TEMPERATURE_0, "sensors/s-9/temperature", b'{"value": "hot", "unit": "C"}', 29,
            SHORT_TRACEBACK)),
        FailureGroup("worker died (SIGKILL)", 1, FailureExample(
            T0 + 1_760.1, TEMPERATURE_0, "sensors/s-3/temperature", b'{"value": 20.1, "calibrate": true}', 34,
            "killed: hung, no heartbeat for 60 s\n[stderr] urllib3: Retrying (Retry(total=2)) after connection "
            "broken")),
    )
    route = snapshot.routes[0]
    workers = tuple(w for w in snapshot.workers if w.route == TEMPERATURE)
    return RouteDetail(route, minute, total, throughput, failures, workers)


def detail_manager(**options: object) -> FakeManager:
    """The engine of the detail scenes: temperature#0's and its route's details, fixed."""
    snapshot = detail_snapshot()
    return FakeManager(
        snapshots=[snapshot], events=healthy_events(),
        worker_details={TEMPERATURE_0: temperature_worker_detail(snapshot)},
        route_details={TEMPERATURE: temperature_route_detail(snapshot)}, **options,  # type: ignore[arg-type]
    )


# --- the main screen under trouble (issue 13): long names, stale heartbeats, a short pool ------

TELEMETRY = "factory/{site}/line/{line_id}/machines/{machine_id}/telemetry"
ALARMS = "factory/{site}/line/{line_id}/machines/{machine_id}/alarms"
HUNG_EXIT = "SIGKILL (killed: hung, no heartbeat for 60 s)"
SEGFAULT_EXIT = "SIGSEGV (segmentation fault in the handler's native code)"


def diagnosis_snapshot() -> ManagerSnapshot:
    """Long routes that differ only at the end, long exit causes, a worker not heard for 4.6 s, a
    running worker that crashed once before, a pool short of one worker, handler p99s."""
    workers = (
        worker(TEMPERATURE, 0, cpu_percent=14.2, busy=0.74, restarts=1, last_exit="1 (crashed)", heartbeat_age=0.3),
        worker(TEMPERATURE, 1, cpu_percent=0.0, busy=1.0, messages_per_second=0.0, last_message_age=4.6,
               heartbeat_age=4.6, in_flight=1),
        worker(TEMPERATURE, 2, SlotState.BACKOFF, pid=None, cpu_percent=None, rss_bytes=None, messages_per_second=0.0,
               last_message_age=None, uptime=None, restarts=1, last_exit=HUNG_EXIT, detail="restarting in 1 s"),
        worker(TELEMETRY, 0, cpu_percent=31.5, rss_bytes=int(88.1 * MiB), busy=0.52, messages_per_second=612.0,
               heartbeat_age=0.2),
        worker(TELEMETRY, 1, cpu_percent=29.8, rss_bytes=int(86.7 * MiB), busy=0.49, messages_per_second=598.3,
               heartbeat_age=0.6),
        worker(ALARMS, 0, SlotState.CRASH_LOOP, pid=None, cpu_percent=None, rss_bytes=None, handled=12, failed=6,
               messages_per_second=0.0, last_message_age=None, uptime=None, restarts=5, last_exit=SEGFAULT_EXIT,
               detail="died 5 times within 60 s; last exit SIGSEGV. Restart it by hand (r)."),
        main_worker(busy=0.01, heartbeat_age=0.5),
    )
    routes = (
        RouteInfo(TEMPERATURE, "sensors/+/temperature", 1, True, 3, 2, 131.4, 104_616, 4, utilization=0.87,
                  handler_p99=0.0124),
        RouteInfo(TELEMETRY, "factory/+/line/+/machines/+/telemetry", 0, True, 2, 2, 1_210.3, 2_104_880, 0,
                  utilization=0.505, autoscale_min=1, autoscale_max=6, handler_p99=0.00042),
        RouteInfo(ALARMS, "factory/+/line/+/machines/+/alarms", 2, True, 1, 0, 0.0, 12, 6, dead_lettered=1,
                  handler_p99=1.84),
        RouteInfo(COMMANDS, "devices/+/commands/+", 2, False, 1, 1, 0.2, 118, 0, handler_p99=0.0021),
    )
    return _totals(workers, routes)


def diagnosis_events() -> list[EngineEvent]:
    """A few lifecycle events buried in the log lines of a chatty handler."""
    alarms = f"{ALARMS}#0"
    events = [event(1, 0.0, "started", "workers starting: 5 shared + main")]
    for seq in range(2, 40):
        events.append(event(seq, 3_000.0 + seq, "log", f"machine m-{seq % 7}: 1{seq % 10}.{seq % 3} bar",
                            f"{TELEMETRY}#{seq % 2}"))
    events += [
        event(40, 3_650.0, "exited", f"worker {alarms} exited with {SEGFAULT_EXIT}; restarting in 8 s", alarms,
              logging.WARNING),
        event(41, 3_690.0, "crash-loop", f"Worker {alarms} died 5 times within 60 s and is no longer restarted "
              f"(last exit {SEGFAULT_EXIT}). Fix the cause, then restart it by hand.", alarms, logging.ERROR),
        event(42, 3_700.0, "hung", f"worker {TEMPERATURE}#2: hung, no heartbeat for 60 s; killing it",
              f"{TEMPERATURE}#2", logging.WARNING),
    ]
    for seq in range(43, 60):
        events.append(event(seq, 3_700.0 + seq, "log", f"machine m-{seq % 7}: 1{seq % 10}.{seq % 3} bar",
                            f"{TELEMETRY}#{seq % 2}"))
    return events


# --- the screens that snapshot tests and screenshots show ---------------------------------------


@dataclass(frozen=True)
class Scene:
    """An app in a given state and the keys pressed before the picture is taken."""

    name: str
    snapshots: Callable[[], list[ManagerSnapshot]]
    events: Callable[[], list[EngineEvent]] = list
    press: tuple[str, ...] = ()
    # What the engine's detail views answer, by slot and by route (the worker and route screens).
    worker_details: Callable[[], dict[str, WorkerDetail]] = dict
    route_details: Callable[[], dict[str, RouteDetail]] = dict
    quiet: bool = False  # toasts dismissed before the picture: the screen under them is the subject
    fleet: Callable[[], FakeFleet | None] = lambda: None  # the other managers of the group (F)

    def manager(self) -> FakeManager:
        return FakeManager(snapshots=self.snapshots(), events=self.events(), worker_details=self.worker_details(),
                           route_details=self.route_details())

    def app(self) -> DashboardApp:
        app = make_app(self.manager(), fleet=self.fleet())
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

    async def act(self, pilot: Pilot[object]) -> None:
        """Press the scene's keys, then wait for what they started (a detail screen asks the engine
        in a thread): the picture shows the answer, however slow the machine taking it."""
        await pilot.press(*self.press)
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        if self.quiet:
            pilot.app.clear_notifications()
        await pilot.pause()


SCENES = {
    scene.name: scene
    for scene in (
        Scene("healthy", lambda: with_throughput(healthy_snapshot()), healthy_events),
        Scene("failures", lambda: with_throughput(failing_snapshot()), failing_events),
        Scene("no_shared_routes", lambda: with_throughput(no_shared_snapshot(), THROUGHPUT[:8]), no_shared_events),
        Scene("stop_confirmation", lambda: with_throughput(healthy_snapshot()), healthy_events, press=("s",)),
        Scene("help", lambda: with_throughput(healthy_snapshot()), healthy_events, press=("question_mark",)),
        Scene("diagnosis", lambda: with_throughput(diagnosis_snapshot()), diagnosis_events, quiet=True),
        # The broker died: every worker lives but none serves; at 80 columns the state says so.
        Scene("broker_down", lambda: [*with_throughput(healthy_snapshot()), broker_down_snapshot()],
              healthy_events, quiet=True),
        # `/` then "temp" and Enter: the workers table keeps temperature's rows and says so.
        Scene("filtered", lambda: with_throughput(diagnosis_snapshot()), diagnosis_events,
              press=("slash", "t", "e", "m", "p", "enter"), quiet=True),
        Scene("events_narrowed", lambda: with_throughput(diagnosis_snapshot()), diagnosis_events, press=("w",),
              quiet=True),
        Scene("scale_to", lambda: with_throughput(diagnosis_snapshot()), diagnosis_events,
              press=("down", "down", "down", "equals_sign", "backspace", "7"), quiet=True),
        Scene("worker_screen", lambda: with_throughput(detail_snapshot()), healthy_events, press=("enter",),
              worker_details=lambda: {TEMPERATURE_0: temperature_worker_detail()}),
        # The latest failure group first: a binary payload and a 64-line traceback.
        Scene("route_screen", lambda: with_throughput(detail_snapshot()), healthy_events, press=("tab", "enter"),
              route_details=lambda: {TEMPERATURE: temperature_route_detail()}),
        # F: every manager of the group, in every state, one whose last status did not read.
        Scene("fleet", lambda: with_throughput(healthy_snapshot()), healthy_events, press=("F",), quiet=True,
              fleet=FakeFleet),
        # Enter on edge-b: its workers and routes from its status; this side has no key.
        Scene("fleet_manager", lambda: with_throughput(healthy_snapshot()), healthy_events,
              press=("F", "down", "enter"), quiet=True, fleet=lambda: FakeFleet(can_sign=False)),
    )
}
