"""Helpers shared by the benchmarks: brokers, managers, baseline processes, publishing, figures.

Every benchmark reports *figures*: a measured value (the median of several runs), optionally a
baseline measured in the same run and the ratio value/baseline, and optionally a goal. The same
dict shape goes to ``--json`` and to ``bench/run.py``, which turns it into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import selectors
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from engine.broker import PrivateMosquitto
from engine.router import Router
from engine.settings import Settings
from engine.snapshot import SlotState
from engine.worker_manager import WorkerManager

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BENCH = ROOT / "bench"
# Broker limits far above what a burst needs, so the broker never drops or throttles: the
# benchmarks measure our processes, not Mosquitto's queue limits.
LOAD_LIMITS = "max_queued_messages 1000000\nmax_inflight_messages 100\n"
T = TypeVar("T")
Figure = dict[str, Any]

# The manager logs worker deaths and the like as warnings; without a handler Python would print
# them to stderr, in the middle of the results. Benchmarks provoke those events on purpose.
logging.getLogger("routemq").addHandler(logging.NullHandler())


# ---------------------------------------------------------------------------------------------
# Waiting
# ---------------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.005) -> T:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Broker and managers
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def private_broker() -> Iterator[PrivateMosquitto]:
    """A Mosquitto of our own on a free port, without persistence; stopped and removed after."""
    broker = PrivateMosquitto(persistence=False, extra_config=LOAD_LIMITS)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def unique_group(prefix: str = "bench") -> str:
    """A share group (and host-lock identity) no other manager of this run uses."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def bench_settings(broker: PrivateMosquitto, group: str, **changes: Any) -> Settings:
    """Default settings pointed at ``broker``; worker logs above WARNING only, as in production."""
    base = Settings(
        broker=broker.host,
        port=broker.port,
        group_name=group,
        client_id="bench",
        graceful_timeout=5.0,
        log_level="WARNING",
    )
    return base.replace(**changes)


def one_route(topic: str, handler: Callable[..., Any], qos: int, worker_count: int = 1) -> Router:
    """A router with one shared route, as the benchmarks use."""
    router = Router()
    router.on(topic, handler, qos=qos, shared=True, worker_count=worker_count)
    return router


def all_running(manager: WorkerManager, count: int | None = None) -> bool:
    """Every slot subscribed (and ``count`` of them, when given)."""
    workers = manager.snapshot().workers
    if count is not None and len(workers) != count:
        return False
    return bool(workers) and all(w.state is SlotState.RUNNING and w.connected for w in workers)


@contextlib.contextmanager
def running_manager(
    router: Router, broker: PrivateMosquitto, group: str, timeout: float = 60.0, **changes: Any
) -> Iterator[WorkerManager]:
    """A started manager whose workers are all subscribed; closed (workers stopped) after."""
    manager = WorkerManager(router, group, settings=bench_settings(broker, group, **changes))
    try:
        manager.start_workers()
        wait_until(lambda: all_running(manager), timeout, f"the workers of group {group} to subscribe")
        yield manager
    finally:
        manager.close()


def recent_logs(manager: WorkerManager, lines: int = 5) -> str:
    """The manager's last events, for error messages when a measurement times out."""
    return " | ".join(e.message.splitlines()[0] for e in manager.events_since(0)[-lines:])


# ---------------------------------------------------------------------------------------------
# Baseline subscribers and the publisher (separate processes)
# ---------------------------------------------------------------------------------------------


class BareSubscriber:
    """A ``bench/bare_subscriber.py`` process; ``start()`` spawns it, ``wait_ready()`` waits for
    its SUBACK. Use as a context manager to do both and to terminate it afterwards."""

    def __init__(
        self, broker: PrivateMosquitto, topic: str, qos: int = 0, protocol: str = "3.1.1", handler: str = "count"
    ) -> None:
        self.command = [
            PYTHON, str(BENCH / "bare_subscriber.py"), "--host", broker.host, "--port", str(broker.port),
            "--topic", topic, "--qos", str(qos), "--protocol", protocol, "--handler", handler,
        ]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> BareSubscriber:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"bare subscriber {self.pid} not subscribed after {timeout:g} s")
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"bare subscriber {self.pid} failed (exit {self.process.poll()}): {line!r}")

    def close(self) -> None:
        terminate(self.process)

    def __enter__(self) -> BareSubscriber:
        self.start().wait_ready()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def terminate(process: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it lingers; always reaped."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def start_publisher(
    broker: PrivateMosquitto, topic: str, count: int, qos: int, fields: dict[str, Any], rate: float = 0.0
) -> subprocess.Popen[bytes]:
    """Start ``bench/publisher.py``: ``count`` JSON messages to ``topic`` (burst, or ``rate``/s)."""
    command = [
        PYTHON, str(BENCH / "publisher.py"), "--host", broker.host, "--port", str(broker.port),
        "--topic", topic, "--count", str(count), "--qos", str(qos), "--fields", json.dumps(fields),
        "--rate", str(rate), "--client-id", f"bench-pub-{uuid.uuid4().hex[:8]}",
    ]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE)


def finish_publisher(process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Wait for the publisher; raise if it could not deliver everything to the broker."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        terminate(process)
        raise TimeoutError("the publisher did not finish") from None
    if process.returncode != 0:
        raise RuntimeError(f"publisher exited with {process.returncode}: {err.decode(errors='replace').strip()}")


# ---------------------------------------------------------------------------------------------
# Figures and reports
# ---------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def figure(
    label: str,
    unit: str,
    samples: list[float],
    baseline: list[float] | None = None,
    baseline_label: str | None = None,
    goal: tuple[str, str, float] | None = None,
    note: str = "",
) -> Figure:
    """One reported number: the median of ``samples``, its baseline's median and their ratio.

    ``goal`` is (``"ratio"`` or ``"value"``, ``">="``/``"<="``/``"<"``/``">"``, threshold).
    """
    value = median(samples)
    result: Figure = {"label": label, "unit": unit, "value": value, "runs": len(samples), "samples": samples}
    if baseline:
        base = median(baseline)
        result.update(baseline=base, baseline_label=baseline_label, baseline_samples=baseline)
        result["ratio"] = value / base if base else None
    if goal is not None:
        what, op, threshold = goal
        measured = result.get("ratio") if what == "ratio" else value
        result["goal"] = f"{what} {op} {threshold:g}"
        result["met"] = measured is not None and _compare(measured, op, threshold)
    if note:
        result["note"] = note
    return result


def _compare(measured: float, op: str, threshold: float) -> bool:
    return {">=": measured >= threshold, "<=": measured <= threshold, ">": measured > threshold,
            "<": measured < threshold}[op]  # fmt: skip


def report(name: str, title: str, quick: bool, figures: list[Figure], **extra: Any) -> dict[str, Any]:
    """The JSON object a benchmark prints with ``--json``."""
    return {"benchmark": name, "title": title, "quick": quick, "figures": figures, **extra}


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:.3f}"
    return f"{value:.2e}"


def print_human(result: dict[str, Any]) -> None:
    print(result["title"] + (" (quick)" if result.get("quick") else ""))
    for f in result["figures"]:
        line = f"  {f['label']}: {format_number(f['value'])} {f['unit']} (median of {f['runs']})"
        if "baseline" in f:
            line += f"; {f['baseline_label']}: {format_number(f['baseline'])}; ratio {format_number(f['ratio'])}"
        if "goal" in f:
            line += f"; goal {f['goal']}: {'met' if f['met'] else 'MISSED'}"
        print(line)
    for note in result.get("notes", []):
        print(f"  note: {note}")


def cli(doc: str, run: Callable[[bool], dict[str, Any]], argv: list[str] | None = None) -> int:
    """The command line every benchmark module shares: ``--json`` and ``--quick``."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object of results")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (fewer, smaller runs)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_human(result)
    return 0
