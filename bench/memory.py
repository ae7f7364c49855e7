"""Memory per idle worker: RSS and USS (psutil ``memory_full_info``) of 8 idle workers.

Workers are forked from the zygote (the default), which has imported the engine, paho and the
routes and frozen them out of the garbage collector's reach, so a worker's unique memory is
what it builds and touches itself. Issue 15's goal: USS at most 0.5x a bare paho process. The
spawn figure (WORKER_START_METHOD=spawn, an interpreter per worker) is there for comparison.

USS (memory unique to the process) is what each extra worker really costs; RSS also counts
shared pages (the interpreter binary, shared libraries) and so overstates the sum. Baseline:
8 idle ``bench/bare_subscriber.py`` processes (interpreter + paho, connected and subscribed),
up at the same time. Each run reads every process once, a second after all are subscribed;
the figure is the median over all processes of all runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

import psutil

from bench import common, handlers
from engine.broker import PrivateMosquitto

WORKERS = 8
SETTLE_SECONDS = 1.0  # after subscribing: let start-up garbage be collected, heartbeats flow
MIB = 1024 * 1024


def memory_of(pids: list[int]) -> tuple[list[float], list[float]]:
    """(RSS, USS) in MiB of each process."""
    infos = [psutil.Process(pid).memory_full_info() for pid in pids]
    return [i.rss / MIB for i in infos], [i.uss / MIB for i in infos]


GOAL_RATIO = 0.5


def one_run(broker: PrivateMosquitto) -> dict[str, tuple[list[float], list[float]]]:
    router = common.one_route("bench/mem", handlers.count, qos=1, worker_count=WORKERS)
    bare_filter = f"$share/{common.unique_group('bare')}/bench/mem"
    subscribers = [common.BareSubscriber(broker, bare_filter, qos=1) for _ in range(WORKERS)]
    try:
        with (
            common.running_manager(router, broker, common.unique_group()) as manager,
            common.running_manager(router, broker, common.unique_group(), worker_start_method="spawn") as spawned,
        ):
            for subscriber in subscribers:
                subscriber.start()
            for subscriber in subscribers:
                subscriber.wait_ready()
            time.sleep(SETTLE_SECONDS)
            worker_pids = [w.pid for w in manager.snapshot().workers if w.pid is not None]
            spawned_pids = [w.pid for w in spawned.snapshot().workers if w.pid is not None]
            return {"worker": memory_of(worker_pids), "spawn": memory_of(spawned_pids),
                    "bare": memory_of([s.pid for s in subscribers])}
    finally:
        for subscriber in subscribers:
            subscriber.close()


def run(quick: bool) -> dict[str, Any]:
    runs = 1 if quick else 3
    rss: dict[str, list[float]] = {"worker": [], "spawn": [], "bare": []}
    uss: dict[str, list[float]] = {"worker": [], "spawn": [], "bare": []}
    with common.private_broker() as broker:
        for _ in range(runs):
            for kind, (run_rss, run_uss) in one_run(broker).items():
                rss[kind] += run_rss
                uss[kind] += run_uss
    figures = [
        common.figure("USS per idle worker (zygote)", "MiB", uss["worker"], baseline=uss["bare"],
                      baseline_label="bare paho", goal=("ratio", "<=", GOAL_RATIO)),
        common.figure("RSS per idle worker (zygote)", "MiB", rss["worker"], baseline=rss["bare"],
                      baseline_label="bare paho"),
        common.figure("USS per idle worker (spawn)", "MiB", uss["spawn"], baseline=uss["bare"],
                      baseline_label="bare paho"),
    ]
    return common.report(
        "memory",
        f"Memory per idle worker ({WORKERS} workers vs {WORKERS} bare subscribers)",
        quick,
        figures,
        notes=[f"{runs} runs x {WORKERS} processes per figure (median over all {runs * WORKERS} readings)"],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
