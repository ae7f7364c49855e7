"""Snapshot cost with 64 workers: manager.snapshot(), one supervisor snapshot build, and what
the supervisor spends keeping snapshots fresh while 64 idle workers send heartbeats.

- ``snapshot()`` returns the immutable snapshot the supervisor last published; its baseline is
  the least a Python method call can cost (a method returning an attribute).
- ``Arbiter._build_snapshot()`` (private; called directly, from the benchmark's thread)
  builds one snapshot; its baseline is the same build on a manager with 1 worker, so the ratio
  shows how the cost grows with the number of workers.
- Supervisor load: CPU time of the supervisor thread (psutil, by its native thread id) and the
  number of snapshot builds (counted by wrapping the bound method) over a window in which 64
  idle workers send their heartbeat every second; baseline: the same with 1 idle worker.
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

import psutil

from bench import common, handlers
from engine.broker import PrivateMosquitto
from engine.worker_manager import WorkerManager

WORKERS = 64


class _Holder:
    """The floor for snapshot(): a method that returns an attribute."""

    def __init__(self) -> None:
        self._value = object()

    def get(self) -> object:
        return self._value


def per_call(func: Callable[[], object], number: int, repeat: int) -> list[float]:
    """Seconds per call of ``func``, one sample per repeat."""
    return [t / number for t in timeit.repeat(func, number=number, repeat=repeat)]


def supervisor_load(manager: WorkerManager, seconds: float) -> tuple[float, float]:
    """(supervisor CPU in % of one core, snapshot builds per second) over ``seconds``."""
    thread = manager._thread
    assert thread is not None and thread.native_id is not None
    builds = 0
    build = manager._arbiter._build_snapshot

    def counting_build() -> Any:
        nonlocal builds
        builds += 1
        return build()

    manager._arbiter._build_snapshot = counting_build  # type: ignore[method-assign]
    try:
        cpu_before = _thread_cpu(thread.native_id)
        start = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - start
        cpu = _thread_cpu(thread.native_id) - cpu_before
    finally:
        del manager._arbiter._build_snapshot  # back to the class's method
    return 100 * cpu / elapsed, builds / elapsed


def _thread_cpu(native_id: int) -> float:
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return thread.user_time + thread.system_time
    raise LookupError(f"thread {native_id} not found")


def measure(broker: PrivateMosquitto, workers: int, quick: bool) -> dict[str, Any]:
    router = common.one_route("bench/snap", handlers.count, qos=1, worker_count=workers)
    number, repeat, window = (50, 3, 2.0) if quick else (200, 7, 5.0)
    with common.running_manager(router, broker, common.unique_group(), timeout=300) as manager:
        time.sleep(1.0)  # every worker has sent heartbeats and stats: snapshots at full size
        result = {
            "snapshot": per_call(manager.snapshot, number * 1000, repeat),
            "build": per_call(manager._arbiter._build_snapshot, number, repeat),
            "load": [supervisor_load(manager, window / repeat) for _ in range(repeat)],
        }
        assert len(manager.snapshot().workers) == workers
    return result


def run(quick: bool) -> dict[str, Any]:
    with common.private_broker() as broker:
        small = measure(broker, 1, quick)
        large = measure(broker, WORKERS, quick)
    floor = per_call(_Holder().get, 50_000 if quick else 200_000, len(large["snapshot"]))
    us = 1e6
    figures = [
        common.figure(
            f"manager.snapshot(), {WORKERS} workers", "µs", [t * us for t in large["snapshot"]],
            baseline=[t * us for t in floor], baseline_label="a method returning an attribute",
        ),
        common.figure(
            f"one snapshot build (Arbiter._build_snapshot), {WORKERS} workers", "µs", [t * us for t in large["build"]],
            baseline=[t * us for t in small["build"]], baseline_label="1 worker",
        ),
        common.figure(
            f"supervisor thread CPU, {WORKERS} idle workers", "% of a core", [c for c, _ in large["load"]],
            baseline=[c for c, _ in small["load"]], baseline_label="1 idle worker",
        ),
        common.figure(
            f"snapshot builds per second, {WORKERS} idle workers", "/s", [b for _, b in large["load"]],
            baseline=[b for _, b in small["load"]], baseline_label="1 idle worker",
        ),
    ]  # fmt: skip
    return common.report(
        "snapshot_cost",
        f"Snapshot cost ({WORKERS} workers on one route)",
        quick,
        figures,
        notes=[
            f"{len(large['snapshot'])} repeats per figure (median); timings are per call, from the benchmark's "
            "thread while the supervisor runs",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
