"""Latency and CPU cost at fixed rates (QoS 1): end-to-end p50/p99 and CPU per message, worker vs bare paho.

Rates: 500 msg/s (p50 and p99) and 2,000 msg/s (p50, p99 and CPU per message, with issue 15's
goals), 5 runs of 6 s each, QoS 1, one worker with a sync handler against one bare paho
subscriber (``bench/bare_subscriber.py``).

Latency. The publisher process (``bench/publisher.py --rate``) puts ``time.time_ns()`` into each
payload just before sending it; the handler (``bench.handlers.latency``, the same function on
both sides) appends ``time.time_ns()`` minus that to a file. Both clocks are the same host clock.
The latency thus spans publisher socket -> broker -> subscriber socket -> paho -> (for the
worker: hand-off to the asyncio loop, routing) -> handler. Each run's p50 and p99 are taken
over its messages; a figure is the median of the runs' percentiles.

CPU per message (2,000 msg/s). The CPU time (user + system, psutil ``cpu_times()``, all threads,
children excluded) of the subscriber process, read just before the publisher starts and again
once the handler has recorded every message, divided by the messages of the run, in µs. For the
manager that is the worker process (read from the manager's snapshot at each run), not the
manager process; the CPU the worker spends idling during the run (heartbeats to the manager)
counts, as it is part of what the worker costs. For the bare side it is the bare subscriber
process.

Worker and bare runs alternate, at both rates, so that drift in the machine's speed hits both
alike. Goals at 2,000 msg/s (issue 15), as ratios to bare paho in the same run: p50 <= 1.1,
p99 <= 1.3, CPU per message <= 1.1.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.broker import PrivateMosquitto
from engine.worker_manager import WorkerManager

RATE = 500.0
COST_RATE = 2_000.0  # issue 15's moderate rate: latency with goals, and CPU per message
RATES = (RATE, COST_RATE)
QOS = 1
# Issue 15's goals at COST_RATE, as ratios to bare paho.
GOALS = {"p50": 1.1, "p99": 1.3, "cpu": 1.1}
KINDS = ("worker", "bare")


def latencies_ms(broker: PrivateMosquitto, topic: str, count: int, workdir: Path, rate: float = RATE) -> list[float]:
    """Publish ``count`` messages at ``rate``/s to ``topic``; each message's latency in ms."""
    out = workdir / f"{uuid.uuid4().hex}.lat"
    publisher = common.start_publisher(broker, topic, count, QOS, {"out": str(out)}, rate=rate)
    common.finish_publisher(publisher, timeout=count / rate + 60)
    common.wait_until(lambda: _lines(out) >= count, 30, f"{count} latencies from {topic}", 0.05)
    return [int(line) / 1e6 for line in out.read_text().split()]


def measured_run(
    broker: PrivateMosquitto, topic: str, count: int, workdir: Path, rate: float, pid: int
) -> tuple[list[float], float]:
    """``latencies_ms`` plus the CPU seconds (user + system) process ``pid`` used meanwhile."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    values = latencies_ms(broker, topic, count, workdir, rate)
    after = process.cpu_times()
    return values, (after.user + after.system) - (before.user + before.system)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), by linear interpolation (statistics.quantiles' inclusive method)."""
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 10) - 1]


def worker_pid(manager: WorkerManager) -> int:
    """The pid of the manager's one worker (read at each run: a restarted worker has a new one)."""
    pids = [pid for w in manager.snapshot().workers if (pid := w.pid) is not None]
    if len(pids) != 1:
        raise RuntimeError(f"expected one worker process, found {pids} ({common.recent_logs(manager)})")
    return pids[0]


def run(quick: bool) -> dict[str, Any]:
    seconds, runs = (2, 1) if quick else (6, 5)  # 5 short runs: a median that one disturbed run cannot move
    counts = {rate: int(rate * seconds) for rate in RATES}
    samples: dict[float, dict[str, dict[str, list[float]]]] = {
        rate: {k: {"p50": [], "p99": [], "cpu": []} for k in KINDS} for rate in RATES
    }
    with common.private_broker() as broker, tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp:
        router = common.one_route("bench/lat/worker", handlers.latency, QOS)
        bare_filter = f"$share/{common.unique_group('bare')}/bench/lat/bare"
        with (
            common.BareSubscriber(broker, bare_filter, QOS, handler="latency") as bare,
            common.running_manager(router, broker, common.unique_group()) as manager,
        ):
            for rate in RATES:  # warm-up
                for kind in KINDS:
                    latencies_ms(broker, f"bench/lat/{kind}", int(rate / 5), Path(tmp), rate)
            for _ in range(runs):
                for rate in RATES:
                    for kind in KINDS:
                        pid = worker_pid(manager) if kind == "worker" else bare.pid
                        count = counts[rate]
                        values, cpu = measured_run(broker, f"bench/lat/{kind}", count, Path(tmp), rate, pid)
                        sample = samples[rate][kind]
                        sample["p50"].append(percentile(values, 50))
                        sample["p99"].append(percentile(values, 99))
                        sample["cpu"].append(cpu / count * 1e6)
    figures = []
    for rate in RATES:
        for p in ("p50", "p99"):
            figures.append(
                common.figure(
                    f"{p} latency at {rate:,.0f} msg/s, worker (sync handler)",
                    "ms",
                    samples[rate]["worker"][p],
                    baseline=samples[rate]["bare"][p],
                    baseline_label="bare paho",
                    goal=("ratio", "<=", GOALS[p]) if rate == COST_RATE else None,
                )
            )
    figures.append(
        common.figure(
            f"CPU per message at {COST_RATE:,.0f} msg/s, worker process (sync handler)",
            "µs",
            samples[COST_RATE]["worker"]["cpu"],
            baseline=samples[COST_RATE]["bare"]["cpu"],
            baseline_label="bare paho",
            goal=("ratio", "<=", GOALS["cpu"]),
        )
    )
    return common.report(
        "latency",
        f"End-to-end latency at {RATE:,.0f} and {COST_RATE:,.0f} msg/s, QoS {QOS}, and CPU per message "
        "(1 worker vs bare paho subscriber)",
        quick,
        figures,
        notes=[
            f"{seconds} s per run at each rate ({', '.join(f'{counts[r]:,} messages at {r:,.0f}/s' for r in RATES)}), "
            f"{runs} runs per figure: the median of the runs' percentiles; worker and bare runs alternate",
            "CPU per message: user + system CPU time of the subscriber process (the worker process, not the "
            "manager; the bare subscriber process) from just before the publisher starts until every message "
            "has been handled, divided by the run's messages",
            f"goals from issue 15 at {COST_RATE:,.0f} msg/s: p50 ratio <= {GOALS['p50']:g}, p99 ratio <= "
            f"{GOALS['p99']:g}, CPU per message ratio <= {GOALS['cpu']:g}",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
