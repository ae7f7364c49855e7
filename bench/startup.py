"""Start-up: start_workers() for 16 workers until every one is subscribed (RUNNING).

Measured: a fresh WorkerManager with one shared route of worker_count=16; the clock starts
before ``start_workers()`` and stops when the snapshot shows all 16 slots RUNNING (the state a
worker reaches when its SUBACK has arrived and its heartbeat has told the supervisor).
Baseline: 16 ``bench/bare_subscriber.py`` processes started at once (a Python interpreter that
imports paho, connects and subscribes), until each has printed ``ready`` after its SUBACK.
The ratio is our overhead: the worker's extra imports (asyncio, the engine), the spec sent over
the socket, the supervisor and the heartbeat that reports the subscription.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.broker import PrivateMosquitto
from engine.worker_manager import WorkerManager

WORKERS = 16


def manager_start(broker: PrivateMosquitto, workers: int) -> float:
    """Seconds from start_workers() to every slot RUNNING; the manager is closed afterwards."""
    group = common.unique_group()
    router = common.one_route("bench/start", handlers.count, qos=1, worker_count=workers)
    manager = WorkerManager(router, group, settings=common.bench_settings(broker, group))
    try:
        start = time.perf_counter()
        manager.start_workers()
        common.wait_until(lambda: common.all_running(manager, workers), 120, f"{workers} workers running", 0.002)
        return time.perf_counter() - start
    finally:
        manager.close()


def bare_start(broker: PrivateMosquitto, workers: int) -> float:
    """Seconds from spawning ``workers`` bare subscribers to all of them subscribed."""
    group = common.unique_group("bare")
    subscribers = [common.BareSubscriber(broker, f"$share/{group}/bench/start", qos=1) for _ in range(workers)]
    try:
        start = time.perf_counter()
        for subscriber in subscribers:
            subscriber.start()
        for subscriber in subscribers:
            subscriber.wait_ready(60)
        return time.perf_counter() - start
    finally:
        for subscriber in subscribers:
            subscriber.close()


def run(quick: bool) -> dict[str, Any]:
    runs = 1 if quick else 5
    ours: list[float] = []
    bare: list[float] = []
    with common.private_broker() as broker:
        manager_start(broker, 2)  # warm the page cache for the worker's imports
        for _ in range(runs):
            ours.append(manager_start(broker, WORKERS))
            bare.append(bare_start(broker, WORKERS))
    figures = [
        common.figure(
            f"start_workers() to {WORKERS} workers RUNNING",
            "s",
            ours,
            baseline=bare,
            baseline_label=f"{WORKERS} bare paho subscribers",
        )
    ]
    return common.report(
        "startup",
        f"Start-up ({WORKERS} workers vs {WORKERS} bare subscribers)",
        quick,
        figures,
        notes=[f"{runs} runs per figure (median), interleaved; a fresh manager (and share group) per run"],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
