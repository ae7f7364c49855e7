"""Scaling: throughput of 2 workers vs 1 on a CPU-bound handler (a shared route, QoS 1).

The handler, ``bench.handlers.work``, burns ~2 ms of pure-Python CPU per message (holding the
GIL, so threads could not help: only processes can) and appends its start and end times to a
file per process. Rate = N / (latest end - earliest start) over all the pool's workers. The
baseline is the same manager shape with worker_count=1; both pools are up at once (idle ones
only heartbeat) and their runs are interleaved. On 2 cores the ideal ratio is 2; the broker
and the publisher take a little CPU too.

What the machine itself allows is measured alongside, interleaved with the runs: the same
number of ``burn`` calls done by 1 plain Python process, then split over 2 processes running
at once (no MQTT at all). On a virtual machine whose two vCPUs share a physical core, or that
shares its host with other work, that ceiling is well below 2, and the pools cannot beat it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.broker import PrivateMosquitto

WORK_SECONDS = 0.002
GOAL_RATIO = 1.7
QOS = 1


def calibrate(seconds: float) -> int:
    """Iterations of ``handlers.burn`` that take about ``seconds`` on this machine."""
    iterations = 10_000
    while True:
        start = time.perf_counter()
        handlers.burn(iterations)
        elapsed = time.perf_counter() - start
        if elapsed > 0.05:
            return max(1, round(iterations * seconds / elapsed))
        iterations *= 2


def pool_rate(broker: PrivateMosquitto, topic: str, count: int, iterations: int, workdir: Path) -> float:
    """Publish ``count`` work messages to ``topic``; the pool's handled-messages rate."""
    out = workdir / uuid.uuid4().hex
    out.mkdir()
    publisher = common.start_publisher(broker, topic, count, QOS, {"k": iterations, "out": str(out)})
    try:
        # Poll cheaply (count lines every 50 ms): the benchmark process shares the 2 cores with
        # the workers it measures. The spans are parsed once, at the end.
        common.wait_until(
            lambda: _lines(out) >= count,
            timeout=30 + count * WORK_SECONDS * 2,
            what=f"{count} on {topic}",
            interval=0.05,
        )
    finally:
        common.finish_publisher(publisher)
    spans = [_span(line) for path in out.iterdir() for line in path.read_text().splitlines()]
    return count / (max(end for _, end in spans) - min(start for start, _ in spans))


def _lines(out: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in out.iterdir())


def _span(line: str) -> tuple[float, float]:
    start, end = line.split()
    return float(start), float(end)


def ceiling_rate(processes: int, count: int, iterations: int) -> float:
    """Burns per second when ``processes`` plain Python processes share ``count`` burns."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from bench.handlers import burn; "
        "start = time.time(); [burn(int(sys.argv[2])) for _ in range(int(sys.argv[3]))]; print(start, time.time())"
    )
    share = count // processes
    args = [common.PYTHON, "-c", code, str(common.ROOT), str(iterations), str(share)]
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    spans = [_span(child.communicate()[0]) for child in children]
    return share * processes / (max(end for _, end in spans) - min(start for start, _ in spans))


def run(quick: bool) -> dict[str, Any]:
    count, runs = (300, 1) if quick else (1_500, 5)
    iterations = calibrate(WORK_SECONDS)
    rates: dict[int, list[float]] = {1: [], 2: []}
    ceiling: dict[int, list[float]] = {1: [], 2: []}
    with common.private_broker() as broker, tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        routers = {n: common.one_route(f"bench/pool{n}", handlers.work, QOS, worker_count=n) for n in rates}
        with (
            common.running_manager(routers[1], broker, common.unique_group()),
            common.running_manager(routers[2], broker, common.unique_group()),
        ):
            for n in rates:  # warm-up
                pool_rate(broker, f"bench/pool{n}", 50, iterations, Path(tmp))
            for _ in range(runs):
                for n in rates:
                    rates[n].append(pool_rate(broker, f"bench/pool{n}", count, iterations, Path(tmp)))
                for n in ceiling:
                    ceiling[n].append(ceiling_rate(n, count, iterations))
    figures = [
        common.figure(
            "2 workers, CPU-bound handler (~2 ms/message), QoS 1",
            "msg/s",
            rates[2],
            baseline=rates[1],
            baseline_label="1 worker",
            goal=("ratio", ">=", GOAL_RATIO),
        ),
        common.figure(
            "machine ceiling: the same burns in 2 plain processes (no MQTT)",
            "burns/s",
            ceiling[2],
            baseline=ceiling[1],
            baseline_label="1 plain process",
        ),
    ]
    return common.report(
        "scaling",
        "Scaling (2 workers vs 1, CPU-bound handler)",
        quick,
        figures,
        notes=[
            f"{count} messages per run, {runs} runs per figure (median); handler: {iterations} iterations of "
            f"pure-Python arithmetic (calibrated to {WORK_SECONDS * 1000:g} ms in the benchmark process)",
            f"one shared route per pool, QoS {QOS}; the publisher sends the whole burst at once",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
