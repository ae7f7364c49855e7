"""Latency: end-to-end p50/p99 at a fixed rate (500 msg/s, 5 runs of 6 s, QoS 1), worker vs bare paho.

The publisher process (``bench/publisher.py --rate``) puts ``time.time_ns()`` into each payload
just before sending it; the handler (``bench.handlers.latency``, the same function on both
sides) appends ``time.time_ns()`` minus that to a file. Both clocks are the same host clock.
The latency thus spans publisher socket -> broker -> subscriber socket -> paho -> (for the
worker: hand-off to the asyncio loop, routing) -> handler. Worker and bare runs alternate.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.broker import PrivateMosquitto

RATE = 500.0
QOS = 1


def latencies_ms(broker: PrivateMosquitto, topic: str, count: int, workdir: Path) -> list[float]:
    """Publish ``count`` messages at RATE/s to ``topic``; each message's latency in ms."""
    out = workdir / f"{uuid.uuid4().hex}.lat"
    publisher = common.start_publisher(broker, topic, count, QOS, {"out": str(out)}, rate=RATE)
    common.finish_publisher(publisher, timeout=count / RATE + 60)
    common.wait_until(lambda: _lines(out) >= count, 30, f"{count} latencies from {topic}", 0.05)
    return [int(line) / 1e6 for line in out.read_text().split()]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), by linear interpolation (statistics.quantiles' inclusive method)."""
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 10) - 1]


def run(quick: bool) -> dict[str, Any]:
    seconds, runs = (2, 1) if quick else (6, 5)  # 5 short runs: a median that one disturbed run cannot move
    count = int(RATE * seconds)
    samples: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": []} for k in ("worker", "bare")}
    with common.private_broker() as broker, tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp:
        router = common.one_route("bench/lat/worker", handlers.latency, QOS)
        bare_filter = f"$share/{common.unique_group('bare')}/bench/lat/bare"
        with (
            common.BareSubscriber(broker, bare_filter, QOS, handler="latency"),
            common.running_manager(router, broker, common.unique_group()),
        ):
            for kind in samples:  # warm-up
                latencies_ms(broker, f"bench/lat/{kind}", 100, Path(tmp))
            for _ in range(runs):
                for kind, sample in samples.items():
                    values = latencies_ms(broker, f"bench/lat/{kind}", count, Path(tmp))
                    sample["p50"].append(percentile(values, 50))
                    sample["p99"].append(percentile(values, 99))
    figures = [
        common.figure(
            f"{p} latency, worker (sync handler)",
            "ms",
            samples["worker"][p],
            baseline=samples["bare"][p],
            baseline_label="bare paho",
        )
        for p in ("p50", "p99")
    ]
    return common.report(
        "latency",
        f"End-to-end latency at {RATE:g} msg/s, QoS {QOS} (1 worker vs bare paho subscriber)",
        quick,
        figures,
        notes=[
            f"{count} messages per run ({seconds} s at {RATE:g}/s), {runs} runs per figure: the median of the "
            "runs' percentiles",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
