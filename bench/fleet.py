"""Fleet observation cost: what a stream of 100 managers' statuses costs the observing dashboard.

Issue 14's goal: a status stream from 100 simulated managers with 16 workers each, at one status
per second each, costs the observing dashboard less than 10 % of a core.

- The fleet: one simulator process (``python bench/fleet.py simulate ...``) publishes, for the
  managers ``sim-000`` .. ``sim-099`` of one group, a status on
  ``<FLEET_TOPIC>/<group>/<manager>/status`` (retained, QoS 1), one per manager per second, spread
  evenly over the second (one every 10 ms, never in a burst). Each status is built by
  ``engine.fleet.status.status_payload``, as every manager builds it (manager, state, host, pid,
  version, time, interval 1 s, the summary, and ``to_json`` of a ``ManagerSnapshot`` with 16
  running, connected workers over 2 to 4 shared routes), with counters that grow and rates, CPU,
  memory and busy shares that change every second, so that no two statuses of a manager are the
  same. On exit it clears its retained
  statuses.
- The observer: the real ``routemq-dash --observe --broker HOST:PORT --group G`` (the fleet
  screen alone) in a pseudo-terminal of 160x48 at the default refresh (1 s), like
  bench/dashboard.py. Should the command lack ``--observe``, a stand-in runs instead (``python
  bench/fleet.py stand-in``: a FleetObserver whose managers() is read once a second), and the
  report says so.
- Measured: the observing process's CPU (psutil user + system) over a window that opens
  WARM_UP seconds after the command started, once its screen's title says ``100 managers: 100
  online`` and ``routemq-dash ctl status`` (another observer) agrees; as % of one core.
  Baseline: the same command, the simulator publishing for 0 managers (an idle fleet),
  interleaved with the measured runs (A B A B ...) in the same run. Also: the statuses per second
  the broker acknowledged to the simulator (and so delivered to the observer, QoS 1) over the
  window, the simulator's own CPU, a status's size, and, after the window, how many managers the
  screen and ``ctl status`` say are online.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

import psutil

from bench import common
from engine.broker import PrivateMosquitto
from engine.snapshot import BrokerInfo, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo

MANAGERS = 100
WORKERS = 16  # per manager
INTERVAL = 1.0  # seconds between two statuses of one manager
GOAL = 10.0  # % of one core
FLEET_TOPIC = "routemq/fleet"  # the default FLEET_TOPIC
SIZE = (160, 48)
COMMAND = Path(sys.executable).with_name("routemq-dash")
ROUTES = ("sensors/+/temperature", "sensors/+/humidity", "orders/{id}/created", "audit/#")
WARM_UP = 8.0  # seconds from the command's start to the window (Textual's import, CSS, first layout)


# ---------------------------------------------------------------------------------------------
# The simulated fleet (runs in its own process)
# ---------------------------------------------------------------------------------------------


@dataclass
class _SimulatedManager:
    """One simulated manager: its routes, its workers' counters, and a status a second."""

    name: str
    group: str
    rng: random.Random
    pid: int
    routes: list[tuple[str, int]] = field(default_factory=list)  # (pattern, workers)
    received: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @classmethod
    def new(cls, index: int, group: str) -> _SimulatedManager:
        rng = random.Random(index)
        count = 2 + index % 3  # 2 to 4 routes, 16 workers over them
        sizes = [WORKERS // count + (1 if i < WORKERS % count else 0) for i in range(count)]
        manager = cls(f"sim-{index:03d}", group, rng, 20_000 + 100 * index, list(zip(ROUTES, sizes, strict=False)))
        manager.received = [rng.randrange(10_000, 1_000_000) for _ in range(WORKERS)]
        manager.failed = [rng.randrange(0, 20) for _ in range(WORKERS)]
        manager.started -= rng.uniform(600, 86_400)
        return manager

    def snapshot(self) -> ManagerSnapshot:
        rng, now = self.rng, time.time()
        workers: list[WorkerInfo] = []
        routes: list[RouteInfo] = []
        for number, (pattern, size) in enumerate(self.routes):
            pool: list[WorkerInfo] = []
            for index in range(size):
                k = len(workers) + len(pool)
                rate = max(0.0, rng.gauss(40.0, 15.0))
                self.received[k] += int(rate * INTERVAL)
                if rng.random() < 0.05:
                    self.failed[k] += 1
                in_flight = rng.randrange(0, 4)
                pool.append(WorkerInfo(
                    slot=f"{pattern}#{index}", route=pattern, index=index,
                    client_id=f"routemq-{self.name}-{self.group}-r{number}-{index}", state=SlotState.RUNNING,
                    pid=self.pid + k + 1, connected=True, cpu_percent=round(rng.uniform(0.5, 35.0), 1),
                    rss_bytes=rng.randrange(38_000_000, 64_000_000), received=self.received[k],
                    handled=self.received[k] - in_flight, failed=self.failed[k], in_flight=in_flight,
                    messages_per_second=rate, last_message_age=rng.uniform(0.0, 0.5),
                    restarts=0, uptime=now - self.started, busy=rng.uniform(0.05, 0.9),
                    heartbeat_age=rng.uniform(0.0, 1.0),
                ))  # fmt: skip
            autoscaled = number == 0 and self.name[-1] in "02468"
            routes.append(RouteInfo(
                topic=pattern, mqtt_topic=f"$share/{self.group}/{pattern.replace('{id}', '+')}", qos=1, shared=True,
                desired_workers=size, live_workers=size, messages_per_second=sum(w.messages_per_second for w in pool),
                handled=sum(w.handled for w in pool), failed=sum(w.failed for w in pool),
                utilization=sum(w.busy or 0.0 for w in pool) / size, autoscale_min=1 if autoscaled else None,
                autoscale_max=size if autoscaled else None, handler_p99=rng.uniform(0.001, 0.05),
                serving_workers=size,
            ))  # fmt: skip
            workers += pool
        return ManagerSnapshot(
            group=self.group, broker=BrokerInfo("mqtt.example:1883", "connected"), workers=tuple(workers),
            routes=tuple(routes), uptime=now - self.started, started=True,
            messages_per_second=sum(w.messages_per_second for w in workers), handled=sum(w.handled for w in workers),
            failed=sum(w.failed for w in workers),
        )  # fmt: skip

    def payload(self) -> str:
        """What a manager publishes (engine.fleet.status.status_payload), for this simulated one."""
        from engine.fleet.status import status_payload

        return status_payload(self.name, "online", "0.1.0", INTERVAL, self.snapshot())


def simulate(host: str, port: int, group: str, managers: int) -> int:
    """Publish ``managers`` statuses a second until SIGTERM; a line ``t acked published bytes`` a second."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    acked = [0]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-fleet-sim-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    fleet = [_SimulatedManager.new(i, group) for i in range(managers)]
    topic = f"{FLEET_TOPIC}/{group}/{{}}/status"
    published = size = 0
    start = reported = time.monotonic()
    tick = 0
    print(f"{start:.6f} 0 0 0", flush=True)
    while not stop.is_set():
        if fleet:
            due = start + tick * INTERVAL / len(fleet)
            manager = fleet[tick % len(fleet)]
            tick += 1
            if (delay := due - time.monotonic()) > 0 and stop.wait(delay):
                break
            text = manager.payload()
            client.publish(topic.format(manager.name), text, qos=1, retain=True)
            published, size = published + 1, size + len(text)
        elif stop.wait(0.1):
            break
        if (now := time.monotonic()) - reported >= 1.0:
            reported = now
            print(f"{now:.6f} {acked[0]} {published} {size}", flush=True)
    cleared = [client.publish(topic.format(m.name), b"", qos=1, retain=True) for m in fleet]  # leave none behind
    for info in cleared:
        info.wait_for_publish(5.0)
    client.disconnect()
    client.loop_stop()
    return 0


def stand_in(host: str, port: int, group: str) -> int:
    """A stand-in for ``routemq-dash --observe``: a FleetObserver read once a second, as a screen would."""
    from engine.fleet.observer import FleetObserver
    from engine.settings import Settings

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    observer = FleetObserver(Settings(broker=host, port=port, group_name=group, client_id="bench"), group).start()
    try:
        while not stop.wait(1.0):
            managers = observer.managers()
            online = sum(1 for m in managers if m.state == "online")
            workers = sum(m.live_workers for m in managers)
            rate = sum(m.messages_per_second for m in managers)
            print(f"{len(managers)} managers: {online} online, {workers} workers, {rate:.0f} msg/s, "
                  f"read {observer.statuses_read}", flush=True)  # fmt: skip
    finally:
        observer.close()
    return 0


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


def observe_available() -> bool:
    """Whether ``routemq-dash`` has ``--observe`` (it is being built alongside this benchmark)."""
    result = subprocess.run([str(COMMAND), "--help"], capture_output=True, text=True, timeout=60, env=_clean_env())
    return "--observe" in result.stdout


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "WORKER_", "FLEET_", "MANAGER_"))}
    env.update(PYTHONPATH=str(common.ROOT), LOG_LEVEL="WARNING", TERM="xterm-256color")
    return env


class _Simulator:
    """The simulator process; the latest line it printed: (monotonic time, acked, published, bytes)."""

    def __init__(self, broker: PrivateMosquitto, group: str, managers: int) -> None:
        self.managers = managers
        self.process = subprocess.Popen(
            [common.PYTHON, __file__, "simulate", broker.host, str(broker.port), group, str(managers)],
            stdout=subprocess.PIPE, text=True, env=_clean_env(),
        )  # fmt: skip
        self.latest: tuple[float, int, int, int] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            t, acked, published, size = line.split()
            self.latest = float(t), int(acked), int(published), int(size)

    def wait_full_round(self, timeout: float = 30.0) -> None:
        """Until every manager's first status is on the broker (retained)."""
        common.wait_until(
            lambda: self.latest is not None and self.latest[1] >= self.managers, timeout, "the simulator's first round",
            interval=0.05,
        )  # fmt: skip

    def close(self) -> None:
        common.terminate(self.process, timeout=10.0)
        self._reader.join(timeout=5)


class _Terminal:
    """The pseudo-terminal's side of the observing command: drained so that the command never
    blocks writing, and scanned for the summary the fleet screen's title shows
    (``100 managers: 100 online``; the stand-in prints the same words, and ``read N``)."""

    SUMMARY = re.compile(rb"(\d+) managers?: (\d+) online")
    READ = re.compile(rb"read (\d+)")
    ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0  # bytes
        self.online: int | None = None  # managers online, as the screen last said
        self.read: int | None = None  # statuses applied, as the stand-in last said
        self.tail = b""
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 65536):
                self.written += len(chunk)
                text = self.ESCAPE.sub(b"", self.tail[-400:] + chunk)
                self.tail = (self.tail + chunk)[-4000:]
                if found := self.SUMMARY.findall(text):
                    self.online = int(found[-1][1])
                if found := self.READ.findall(text):
                    self.read = int(found[-1])

    def close(self) -> None:
        os.close(self.fd)
        self._thread.join(timeout=5)


@contextlib.contextmanager
def _observing(broker: PrivateMosquitto, group: str, real: bool) -> Iterator[tuple[subprocess.Popen[bytes], _Terminal]]:
    """The observing command in a pseudo-terminal of 160x48, stopped (SIGINT) after the block."""
    if real:
        args = [str(COMMAND), "--observe", "--broker", broker.address, "--group", group]
    else:
        args = [common.PYTHON, __file__, "stand-in", broker.host, str(broker.port), group]
    with tempfile.TemporaryDirectory(prefix="fleetbench-") as cwd:  # no .env of anyone's
        primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        process = subprocess.Popen(
            args, cwd=cwd, env=_clean_env(), stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True
        )
        os.close(secondary)
        terminal = _Terminal(primary)
        try:
            yield process, terminal
        finally:
            process.send_signal(signal.SIGINT)  # the same graceful way out as q / Ctrl+C
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            terminal.close()


def managers_online(broker: PrivateMosquitto, group: str) -> int:
    """How many managers of ``group`` ``routemq-dash ctl status --json`` reports online."""
    with tempfile.TemporaryDirectory(prefix="fleetbench-") as cwd:
        result = subprocess.run(
            [str(COMMAND), "ctl", "status", "--json", "--broker", broker.address, "--group", group],
            capture_output=True, text=True, timeout=60, cwd=cwd, env=_clean_env(),
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"ctl status failed ({result.returncode}): {result.stderr.strip()}")
    managers = json.loads(result.stdout)
    return sum(1 for m in managers if m["state"] == "online")


def _machine_busy() -> float:
    """CPU seconds every process has used since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def one_run(broker: PrivateMosquitto, managers: int, seconds: float, real: bool) -> dict[str, Any]:
    """One observing command against a fleet of ``managers``: its CPU over ``seconds``, and the rest."""
    group = common.unique_group("fleet")
    simulator = _Simulator(broker, group, managers)
    try:
        simulator.wait_full_round()
        with _observing(broker, group, real) as (process, terminal):
            started = time.monotonic()
            common.wait_until(lambda: terminal.written, 60, "the observing command's first output", interval=0.05)
            if managers:
                common.wait_until(lambda: terminal.online == managers, 60, f"the screen to show {managers} online")
                common.wait_until(
                    lambda: managers_online(broker, group) >= managers, 60, f"{managers} managers online", interval=0.5
                )  # fmt: skip
            time.sleep(max(0.0, started + WARM_UP - time.monotonic()))
            if process.poll() is not None:
                raise RuntimeError(f"the observing command exited with {process.returncode}: {terminal.tail[-2000:]!r}")
            observed, simulated = psutil.Process(process.pid), psutil.Process(simulator.process.pid)
            load = os.getloadavg()[0]
            read_before = terminal.read
            before = _cpu(observed), _cpu(simulated), _machine_busy(), simulator.latest, time.monotonic()
            time.sleep(seconds)
            after = _cpu(observed), _cpu(simulated), _machine_busy(), simulator.latest, time.monotonic()
            read_after = terminal.read
            online = managers_online(broker, group)
            shown = terminal.online or 0
    finally:
        simulator.close()
    elapsed = after[4] - before[4]
    first, last = before[3], after[3]
    assert first is not None and last is not None
    span = last[0] - first[0]
    acked = last[1] - first[1]
    return {
        "managers": managers,
        "cpu": 100.0 * (after[0] - before[0]) / elapsed,
        "simulator_cpu": 100.0 * (after[1] - before[1]) / elapsed,
        "machine_busy": 100.0 * (after[2] - before[2]) / (elapsed * (os.cpu_count() or 1)),
        "statuses_per_second": acked / span if span > 0 else 0.0,
        "status_bytes": (last[3] - first[3]) / (last[2] - first[2]) if last[2] > first[2] else 0.0,
        "online": online,  # as `ctl status` says
        "shown_online": shown,  # as the observing command's screen says
        "load": load,
        # what the stand-in says it applied (the real dashboard does not print it)
        "observer_reads_per_second": (read_after - read_before) / elapsed
        if read_before is not None and read_after is not None
        else None,
    }


def run(quick: bool) -> dict[str, Any]:
    seconds = 5.0 if quick else 20.0
    pairs = 1 if quick else 3
    real = observe_available()
    runs: list[dict[str, Any]] = []
    with common.private_broker() as broker:
        for _ in range(pairs):  # A B A B ...: the fleet, then the idle fleet
            runs.append(one_run(broker, MANAGERS, seconds, real))
            runs.append(one_run(broker, 0, seconds, real))
    fleet = [r for r in runs if r["managers"]]
    idle = [r for r in runs if not r["managers"]]
    observer = "`routemq-dash --observe`" if real else "STAND-IN observer (FleetObserver, managers() once a second)"
    what = f"{MANAGERS} managers x {WORKERS} workers, 1 status/s each"
    all_seen = all(r["online"] == MANAGERS and r["shown_online"] == MANAGERS for r in fleet)
    figures = [
        common.figure(
            f"{observer} process CPU, {what}" + (", 160x48, refresh 1 s" if real else ""),
            "% of one core",
            [r["cpu"] for r in fleet],
            baseline=[r["cpu"] for r in idle],
            baseline_label="same command, idle fleet (0 managers)",
            goal=("value", "<", GOAL),
        ),
        common.figure(
            "cost of the stream (fleet - idle fleet, run by run)",
            "% of one core",
            [a["cpu"] - b["cpu"] for a, b in zip(fleet, idle, strict=True)],
        ),
        common.figure(
            "statuses acknowledged by the broker (and delivered to the observer)",
            "statuses/s",
            [r["statuses_per_second"] for r in fleet],
        ),
        common.figure("size of one status", "bytes", [r["status_bytes"] for r in fleet]),
        common.figure(
            "simulator process CPU (builds and publishes the statuses)",
            "% of one core",
            [r["simulator_cpu"] for r in fleet],
            baseline=[r["simulator_cpu"] for r in idle],
            baseline_label="publishing for 0 managers",
        ),
    ]
    if not all_seen:  # the goal is about seeing the whole fleet; a cheap observer that misses some does not meet it
        figures[0]["met"] = False

    def listed(key: str, rows: list[dict[str, Any]], fmt: str = "{:.2f}") -> str:
        return ", ".join(fmt.format(r[key]) for r in rows)

    spread_fleet = max(r["cpu"] for r in fleet) - min(r["cpu"] for r in fleet)
    spread_idle = max(r["cpu"] for r in idle) - min(r["cpu"] for r in idle)
    notes = [
        f"observer: {observer}" + ("" if real else " -- `routemq-dash --observe` did not exist when this ran"),
        f"{pairs} pairs of runs, interleaved (fleet, idle fleet, fleet, ...); {seconds:g} s window per run, opened "
        f"{WARM_UP:g} s after the command started, once its screen and `routemq-dash ctl status` showed all "
        f"{MANAGERS} managers online",
        f"observer CPU per run, fleet: {listed('cpu', fleet)}; idle fleet: {listed('cpu', idle)} (% of one core; "
        f"spread {spread_fleet:.2f} and {spread_idle:.2f})",
        f"managers online after each fleet window, as the observer's screen said: "
        f"{listed('shown_online', fleet, '{}')}; as `routemq-dash ctl status` said: {listed('online', fleet, '{}')}"
        + (
            ""
            if real
            else f"; statuses/s the stand-in's FleetObserver applied: {listed('observer_reads_per_second', fleet)}"
        ),
        f"machine: load average at each window {listed('load', runs)}; whole machine busy during each window "
        f"{listed('machine_busy', runs, '{:.0f}')} % ({os.cpu_count()} cores)",
        "simulator: one process, one paho connection, a status every 10 ms (retained, QoS 1); each built "
        "by engine.fleet.status.status_payload (summary and snapshot), numbers changing every second",
        f"the goal (< {GOAL:g} % of one core) is checked on the observing process's whole CPU with the fleet, "
        "which is stricter than the cost of the stream alone (the difference, given too)",
    ]
    title = f"Fleet observation cost ({what})" + ("" if real else " [stand-in observer]")
    return common.report("fleet", title, quick, figures, notes=notes, observer_is_dashboard=real, runs=runs)


def main(argv: list[str]) -> int:
    if argv[:1] == ["simulate"]:
        host, port, group, managers = argv[1:5]
        return simulate(host, int(port), group, int(managers))
    if argv[:1] == ["stand-in"]:
        host, port, group = argv[1:4]
        return stand_in(host, int(port), group)
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
