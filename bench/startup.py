"""Start-up: start_workers() for 16 and 64 workers until every one is subscribed (RUNNING).

Measured: a fresh WorkerManager with one shared route of worker_count=16 (or 64); the clock
starts before ``start_workers()`` and stops when the snapshot shows every slot RUNNING (the
state a worker reaches when its SUBACK has arrived and its heartbeat has told the supervisor).
The time includes starting the zygote (a fresh manager has none yet): an interpreter that
imports the engine, paho and the routes once; every worker is then a fork of it.
Baseline: as many ``bench/bare_subscriber.py`` processes started at once (a Python interpreter
that imports paho, connects and subscribes), until each has printed ``ready`` after its SUBACK.
Issue 15's goals: 16 workers in at most 0.5x the time of 16 bare subscribers, 64 workers in
under 1.5 s. For comparison, 16 workers with WORKER_START_METHOD=spawn (an interpreter each,
as before the zygote) against the same baseline.
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
MANY = 64
GOAL_RATIO = 0.5
GOAL_MANY_SECONDS = 1.5


def manager_start(broker: PrivateMosquitto, workers: int, method: str = "zygote") -> float:
    """Seconds from start_workers() to every slot RUNNING; the manager is closed afterwards."""
    group = common.unique_group()
    router = common.one_route("bench/start", handlers.count, qos=1, worker_count=workers)
    settings = common.bench_settings(broker, group, worker_start_method=method)
    manager = WorkerManager(router, group, settings=settings)
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
    times: dict[str, list[float]] = {"ours": [], "spawn": [], "bare": [], "many": [], "many bare": []}
    with common.private_broker() as broker:
        manager_start(broker, 2)  # warm the page cache for the worker's imports
        manager_start(broker, 2, "spawn")
        for _ in range(runs):
            times["ours"].append(manager_start(broker, WORKERS))
            times["bare"].append(bare_start(broker, WORKERS))
            times["spawn"].append(manager_start(broker, WORKERS, "spawn"))
            times["many"].append(manager_start(broker, MANY))
            times["many bare"].append(bare_start(broker, MANY))
    bare_label = f"{WORKERS} bare paho subscribers"
    figures = [
        common.figure(f"start_workers() to {WORKERS} workers RUNNING (zygote)", "s", times["ours"],
                      baseline=times["bare"], baseline_label=bare_label, goal=("ratio", "<=", GOAL_RATIO)),
        common.figure(f"start_workers() to {MANY} workers RUNNING (zygote)", "s", times["many"],
                      baseline=times["many bare"], baseline_label=f"{MANY} bare paho subscribers",
                      goal=("value", "<", GOAL_MANY_SECONDS)),
        common.figure(f"start_workers() to {WORKERS} workers RUNNING (spawn)", "s", times["spawn"],
                      baseline=times["bare"], baseline_label=bare_label),
    ]
    return common.report(
        "startup",
        f"Start-up ({WORKERS} and {MANY} workers vs as many bare subscribers)",
        quick,
        figures,
        notes=[f"{runs} runs per figure (median), interleaved; a fresh manager (and share group) per run"],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
