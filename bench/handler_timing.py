"""What timing every message costs the worker: recording a handler's time in the route's
fixed-bucket histogram (engine/timings.py), per message, on the worker's own path.

- ``Histogram.record`` on a realistic mix of durations (10 µs to 2 s); baseline: the least a
  per-message count can cost, one list element incremented in a Python method call.
- The handling path of a worker (``InFlight``: match, dispatch, count, timing, ack) for one
  QoS 1 message with a handler that returns at once, in process, with a client whose ack does
  nothing; baseline: the same path with the histogram's ``record`` replaced by a no-op, so the
  ratio is what timing adds to a message.
"""

from __future__ import annotations

import asyncio
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

import paho.mqtt.client as mqtt

from bench import common
from engine.router import Router
from engine.timings import Histogram
from engine.worker.inflight import InFlight

DURATIONS = [1e-5 * 1.7**i for i in range(30)]  # 10 µs .. about 50 s, every bucket range


class _Counter:
    def __init__(self) -> None:
        self.counts = [0] * 72

    def record(self, index: int) -> None:
        self.counts[index] += 1


def _per_call(func: Any, number: int, repeat: int) -> list[float]:
    return [t / number * 1e9 for t in timeit.repeat(func, number=number, repeat=repeat)]


def record_cost(number: int, repeat: int) -> tuple[list[float], list[float]]:
    histogram, counter = Histogram(), _Counter()
    values = DURATIONS * (number // len(DURATIONS) + 1)
    it = iter(values * (repeat + 1))
    ours = _per_call(lambda: histogram.record(next(it)), number, repeat)
    it2 = iter(list(range(30)) * (number * (repeat + 1) // 30 + 1))
    floor = _per_call(lambda: counter.record(next(it2)), number, repeat)
    return ours, floor


def _noop(*args: Any) -> None:
    return None


def path_cost(number: int, repeat: int, timed: bool) -> list[float]:
    router = Router()
    route = router.on("bench/{id}", lambda id, payload, client: None, qos=1, shared=True)
    inflight = InFlight(router, route, limit=64)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench", manual_ack=True)
    client.ack = _noop  # type: ignore[method-assign]  # no socket: what an ack costs is not measured here
    inflight.attach(client, _noop, _noop)
    loop = asyncio.new_event_loop()
    inflight.start(loop)
    message = mqtt.MQTTMessage(mid=1, topic=b"bench/42")
    message.payload = b'{"v": 1}'
    message.qos = 1
    if not timed:
        inflight.times = _NoTimes()  # type: ignore[assignment]

    def one() -> None:
        inflight.received += 1
        inflight.pending += 1
        inflight._handle(message)

    try:
        return _per_call(one, number, repeat)
    finally:
        loop.close()


class _NoHistogram:
    def record(self, seconds: float) -> None:
        return None


class _NoTimes(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        return _NO_HISTOGRAM


_NO_HISTOGRAM = _NoHistogram()


def run(quick: bool) -> dict[str, Any]:
    number, repeat = (20_000, 3) if quick else (200_000, 9)
    ours, floor = record_cost(number, repeat)
    # Interleaved: with and without timing, one repeat each, so drift hits both alike.
    timed: list[float] = []
    untimed: list[float] = []
    for _ in range(repeat):
        timed += path_cost(number // 4, 1, True)
        untimed += path_cost(number // 4, 1, False)
    figures = [
        common.figure("Histogram.record, one message", "ns", ours, baseline=floor,
                      baseline_label="one list element incremented in a method", goal=("value", "<", 1000.0)),
        common.figure("worker handling path, QoS 1, handler returns at once", "ns", timed, baseline=untimed,
                      baseline_label="the same path without timing", goal=("ratio", "<=", 1.1)),
    ]  # fmt: skip
    return common.report(
        "handler_timing",
        "Handler timing (the cost of recording every message's handler time)",
        quick,
        figures,
        notes=[f"{repeat} repeats per figure (median), {number:,} calls each for record(); in process, no broker"],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
