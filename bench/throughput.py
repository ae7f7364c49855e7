"""Worker throughput: one worker vs a bare paho-mqtt subscriber, messages handled per second.

Method. The subscriber under test (a WorkerManager with one shared route and worker_count=1,
or ``bench/bare_subscriber.py``) is connected and subscribed first; then a separate publisher
process (``bench/publisher.py``, so it takes no GIL from the measured process) sends a burst of
N JSON messages as fast as the broker accepts them. The handler, ``bench.handlers.count``, is
the same function on both sides: it gets the decoded payload, adds its ``i`` to a counter,
timestamps the start of the burst's first message and the end of its N-th, and writes both to a
file. Rate = N / (last end - first start), measured inside the subscriber process.

Both sides subscribe to a ``$share/<group>/...`` filter, so the broker does the same routing.
Matrix: MQTT 3.1.1 and 5, QoS 0 and 1, a plain (sync) handler and an ``async def`` handler.
The baseline for both handler kinds is the bare subscriber calling the sync handler on paho's
thread: the ratio is what our dispatch costs against the least a subscriber can do. Worker and
bare runs are interleaved so that drift in the machine's speed hits both alike.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.broker import PrivateMosquitto

PROTOCOLS = ("3.1.1", "5")
QOS_LEVELS = (0, 1)
GOAL_RATIO = 0.8  # sync handler, QoS 0 and 1 (RouteMQ's async dispatch reaches 0.18)
WARMUP_MESSAGES = 2_000


def burst_rate(broker: PrivateMosquitto, topic: str, qos: int, count: int, workdir: Path) -> float:
    """Publish ``count`` messages to ``topic``; the subscriber's handled-messages rate."""
    out = workdir / f"{uuid.uuid4().hex}.done"
    fields = {"r": out.stem, "n": count, "out": str(out)}
    publisher = common.start_publisher(broker, topic, count, qos, fields)
    try:
        common.wait_until(out.exists, timeout=30 + count / 1000, what=f"{count} messages handled on {topic}")
    finally:
        common.finish_publisher(publisher)
    first, last, handled = out.read_text().split()
    assert int(handled) == count
    return count / (float(last) - float(first))


def measure_cell(
    broker: PrivateMosquitto, protocol: str, qos: int, count: int, runs: int, workdir: Path
) -> dict[str, list[float]]:
    """Rates of the bare subscriber, a sync-handler worker and an async-handler worker."""
    topics = {kind: f"bench/{kind}" for kind in ("bare", "sync", "async")}
    bare_group = common.unique_group("bare")
    sync_router = common.one_route(topics["sync"], handlers.count, qos)
    async_router = common.one_route(topics["async"], handlers.count_async, qos)
    bare = common.BareSubscriber(broker, f"$share/{bare_group}/{topics['bare']}", qos, protocol)
    rates: dict[str, list[float]] = {kind: [] for kind in topics}
    with (
        bare,
        common.running_manager(sync_router, broker, common.unique_group(), protocol=protocol),
        common.running_manager(async_router, broker, common.unique_group(), protocol=protocol),
    ):
        for topic in topics.values():  # warm-up: first-message allocations, lazy imports
            burst_rate(broker, topic, qos, WARMUP_MESSAGES, workdir)
        for _ in range(runs):
            for kind, topic in topics.items():
                rates[kind].append(burst_rate(broker, topic, qos, count, workdir))
    return rates


def run(quick: bool) -> dict[str, Any]:
    count, runs = (5_000, 1) if quick else (20_000, 5)
    figures = []
    with common.private_broker() as broker, tempfile.TemporaryDirectory(prefix="bench-tp-") as tmp:
        for protocol in PROTOCOLS:
            for qos in QOS_LEVELS:
                rates = measure_cell(broker, protocol, qos, count, runs, Path(tmp))
                for kind in ("sync", "async"):
                    figures.append(
                        common.figure(
                            f"MQTT {protocol}, QoS {qos}, {kind} handler: worker",
                            "msg/s",
                            rates[kind],
                            baseline=rates["bare"],
                            baseline_label="bare paho",
                            goal=("ratio", ">=", GOAL_RATIO) if kind == "sync" else None,
                        )
                    )
    return common.report(
        "throughput",
        "Worker throughput (1 worker vs bare paho subscriber)",
        quick,
        figures,
        messages_per_run=count,
        notes=[
            f"burst of {count} messages per run, {runs} runs per figure (median), after a "
            f"{WARMUP_MESSAGES}-message warm-up; both sides subscribe to $share/<group>/bench/<kind>",
            "baseline: bare paho 2.x subscriber (CallbackAPIVersion.VERSION2), json.loads + the same sync "
            "handler on paho's network thread, paho's automatic QoS 1 ack",
            "publisher: separate process, raw MQTT 3.1.1 socket writes (bench/publisher.py)",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
