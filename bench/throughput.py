"""Worker throughput: one worker vs a bare paho-mqtt subscriber (and two vs two), messages handled per second.

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

Two modes (issue 15). *Live*, the above: publisher and subscriber run together, so the rate
is capped by whichever of publisher, broker and subscriber is slowest at the moment. *Drain*:
the subscriber under test is paused with SIGSTOP (the worker process(es) of the manager, or
the bare subscriber process), the publisher sends the same burst of N messages and exits once
the broker has accepted all of them (every PUBACK at QoS 1, the PINGRESP after the last
PUBLISH at QoS 0), so the broker holds the whole burst (``max_queued_messages`` in
``common.LOAD_LIMITS`` is far above N, for QoS 0 too); then SIGCONT, and the rate is measured
exactly as in live mode, from the first handler start to the N-th handler end inside the
subscriber. Drain mode measures how fast a subscriber empties a backlog, without the
publisher competing for CPU. It runs for MQTT 3.1.1 and 5, QoS 0 and 1, the sync handler
only, against the bare subscriber drained the same way, interleaved with the live runs.

Two workers vs two bare subscribers (issue 15). One route with worker_count=2 (both workers
subscribe in the manager's share group, so the broker splits the burst between them) against
two ``bench/bare_subscriber.py`` processes in one share group of their own; sync handler, live
and drain (drain pauses both worker processes, or both bare processes), MQTT 3.1.1 and 5, QoS
0 and 1, all four kinds of run interleaved. Neither process knows how many of the N messages it
will get, so both sides run ``bench.handlers.count_shared``: each process keeps its first start,
last end and count for the burst in a small memory-mapped file of its own (a memory write per
message, no system call); the benchmark sums the counts until they reach N, and rate = N /
(latest last end - earliest first start) over the two processes.

Goals (issue 15), as ratios to the bare baseline measured in the same run: sync handler >= 1.2
at QoS 0 and >= 1.1 at QoS 1, live and drain, one worker and two; async handler >= 1.0 (live).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.broker import PrivateMosquitto
from engine.worker_manager import WorkerManager

PROTOCOLS = ("3.1.1", "5")
QOS_LEVELS = (0, 1)
# Issue 15's goals: the sync handler against bare paho, by QoS, live and drain, one worker and two.
GOAL_RATIO = {0: 1.2, 1: 1.1}
ASYNC_GOAL_RATIO = 1.0  # the async handler, live, against the same bare (sync) baseline
WARMUP_MESSAGES = 2_000
DRAIN_KINDS = ("bare", "sync")
PAIR = 2  # the two-worker figures: a route with worker_count=2 vs two bare subscribers


def burst_rate(broker: PrivateMosquitto, topic: str, qos: int, count: int, workdir: Path) -> float:
    """Publish ``count`` messages to ``topic``; the subscriber's handled-messages rate."""
    out = workdir / f"{uuid.uuid4().hex}.done"
    fields = {"r": out.stem, "n": count, "out": str(out)}
    publisher = common.start_publisher(broker, topic, count, qos, fields)
    try:
        common.wait_until(out.exists, timeout=30 + count / 1000, what=f"{count} messages handled on {topic}")
    finally:
        common.finish_publisher(publisher)
    return _rate(out, count)


def drain_rate(broker: PrivateMosquitto, topic: str, qos: int, count: int, workdir: Path, pids: list[int]) -> float:
    """Pause ``pids`` (SIGSTOP), have the broker accept ``count`` messages to ``topic``, resume
    them (SIGCONT): the subscriber's handled-messages rate while it drains the backlog."""
    out = workdir / f"{uuid.uuid4().hex}.done"
    fields = {"r": out.stem, "n": count, "out": str(out)}
    with _paused(pids, topic):
        common.finish_publisher(common.start_publisher(broker, topic, count, qos, fields))
        if out.exists():
            raise RuntimeError(f"{topic}: the burst was handled while the subscriber was stopped")
    common.wait_until(out.exists, timeout=30 + count / 1000, what=f"{count} queued messages handled on {topic}")
    return _rate(out, count)


@contextlib.contextmanager
def _paused(pids: list[int], topic: str) -> Iterator[None]:
    """The subscriber processes ``pids`` stopped (SIGSTOP) for the block, resumed (SIGCONT) after."""
    assert pids, f"no subscriber process to pause for {topic}"
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _rate(out: Path, count: int) -> float:
    first, last, handled = out.read_text().split()
    assert int(handled) == count
    return count / (float(last) - float(first))


def worker_pids(manager: WorkerManager) -> list[int]:
    return [pid for w in manager.snapshot().workers if (pid := w.pid) is not None]


# ---------------------------------------------------------------------------------------------
# Two subscribers in one share group: the burst is split between two processes
# ---------------------------------------------------------------------------------------------


def shared_burst_rate(
    broker: PrivateMosquitto, topic: str, qos: int, count: int, workdir: Path, processes: int
) -> float:
    """``burst_rate`` for ``processes`` subscribers sharing ``topic`` (``handlers.count_shared``)."""
    out = _shared_dir(workdir)
    fields = {"r": out.name, "n": count, "out": str(out)}
    publisher = common.start_publisher(broker, topic, count, qos, fields)
    try:
        _wait_shared(out, count, topic)
    finally:
        common.finish_publisher(publisher)
    return _shared_rate(out, count, processes, topic)


def shared_drain_rate(
    broker: PrivateMosquitto, topic: str, qos: int, count: int, workdir: Path, pids: list[int]
) -> float:
    """``drain_rate`` for the subscriber processes ``pids`` sharing ``topic``: all are paused
    while the broker accepts the burst, then all are resumed."""
    out = _shared_dir(workdir)
    fields = {"r": out.name, "n": count, "out": str(out)}
    with _paused(pids, topic):
        common.finish_publisher(common.start_publisher(broker, topic, count, qos, fields))
        if any(handled for _, _, handled in handlers.read_shared(str(out))):
            raise RuntimeError(f"{topic}: messages were handled while the subscribers were stopped")
    _wait_shared(out, count, topic)
    return _shared_rate(out, count, len(pids), topic)


def _shared_dir(workdir: Path) -> Path:
    out = workdir / uuid.uuid4().hex
    out.mkdir()
    return out


def _wait_shared(out: Path, count: int, topic: str) -> None:
    def handled() -> bool:
        return sum(n for _, _, n in handlers.read_shared(str(out))) >= count

    common.wait_until(handled, timeout=30 + count / 1000, what=f"{count} messages handled on {topic}")


def _shared_rate(out: Path, count: int, processes: int, topic: str) -> float:
    """N / (latest last end - earliest first start) over the subscriber processes."""
    time.sleep(0.02)  # the slot that reached N may have been read while being written: read it again
    slots = handlers.read_shared(str(out))
    handled = sum(n for _, _, n in slots)
    if handled != count:
        raise RuntimeError(f"{topic}: {handled} messages handled, expected {count}")
    if len(slots) != processes:
        raise RuntimeError(f"{topic}: {len(slots)} of {processes} subscribers got messages (not shared?)")
    return count / (max(last for _, last, _ in slots) - min(first for first, _, _ in slots))


def measure_cell(
    broker: PrivateMosquitto, protocol: str, qos: int, count: int, runs: int, drain_runs: int, workdir: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Live rates of the bare subscriber, a sync-handler worker and an async-handler worker;
    drain rates of the bare subscriber and the sync-handler worker."""
    topics = {kind: f"bench/{kind}" for kind in ("bare", "sync", "async")}
    bare_group = common.unique_group("bare")
    sync_router = common.one_route(topics["sync"], handlers.count, qos)
    async_router = common.one_route(topics["async"], handlers.count_async, qos)
    bare = common.BareSubscriber(broker, f"$share/{bare_group}/{topics['bare']}", qos, protocol)
    rates: dict[str, list[float]] = {kind: [] for kind in topics}
    drain: dict[str, list[float]] = {kind: [] for kind in DRAIN_KINDS}
    with (
        bare,
        common.running_manager(sync_router, broker, common.unique_group(), protocol=protocol) as sync_manager,
        common.running_manager(async_router, broker, common.unique_group(), protocol=protocol),
    ):
        for topic in topics.values():  # warm-up: first-message allocations, lazy imports
            burst_rate(broker, topic, qos, WARMUP_MESSAGES, workdir)
        for run in range(max(runs, drain_runs)):
            if run < runs:
                for kind, topic in topics.items():
                    rates[kind].append(burst_rate(broker, topic, qos, count, workdir))
            if run < drain_runs:
                for kind in DRAIN_KINDS:  # the pids are read each time: a restarted worker has a new one
                    pids = [bare.pid] if kind == "bare" else worker_pids(sync_manager)
                    drain[kind].append(drain_rate(broker, topics[kind], qos, count, workdir, pids))
    return rates, drain


def measure_pair_cell(
    broker: PrivateMosquitto, protocol: str, qos: int, count: int, runs: int, workdir: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Live and drain rates of two bare subscribers in one share group and of one route with
    worker_count=2 (both workers in the manager's share group), sync handler; all four interleaved."""
    topics = {"bare": "bench/pair/bare", "sync": "bench/pair/sync"}
    bare_filter = f"$share/{common.unique_group('bare')}/{topics['bare']}"
    router = common.one_route(topics["sync"], handlers.count_shared, qos, worker_count=PAIR)
    bares = [common.BareSubscriber(broker, bare_filter, qos, protocol, handler="count_shared") for _ in range(PAIR)]
    live: dict[str, list[float]] = {kind: [] for kind in topics}
    drain: dict[str, list[float]] = {kind: [] for kind in topics}
    with contextlib.ExitStack() as stack:
        for bare in bares:
            bare.start()  # start both, then wait for both
            stack.callback(bare.close)
        for bare in bares:
            bare.wait_ready()
        manager = stack.enter_context(common.running_manager(router, broker, common.unique_group(), protocol=protocol))
        common.wait_until(lambda: common.all_running(manager, PAIR), 30, "both workers to subscribe")
        for topic in topics.values():  # warm-up
            shared_burst_rate(broker, topic, qos, WARMUP_MESSAGES, workdir, PAIR)
        for _ in range(runs):
            for kind, topic in topics.items():
                live[kind].append(shared_burst_rate(broker, topic, qos, count, workdir, PAIR))
            for kind, topic in topics.items():  # the pids are read each time: a restarted worker has a new one
                pids = [bare.pid for bare in bares] if kind == "bare" else worker_pids(manager)
                drain[kind].append(shared_drain_rate(broker, topic, qos, count, workdir, pids))
    return live, drain


def run(quick: bool) -> dict[str, Any]:
    count, runs = (5_000, 1) if quick else (20_000, 5)
    drain_runs = runs
    pair_runs = 1 if quick else 3  # two processes per side: fewer runs keep the whole suite's time sane
    figures, drain_figures, pair_figures = [], [], []
    with common.private_broker() as broker, tempfile.TemporaryDirectory(prefix="bench-tp-") as tmp:
        for protocol in PROTOCOLS:
            for qos in QOS_LEVELS:
                rates, drain = measure_cell(broker, protocol, qos, count, runs, drain_runs, Path(tmp))
                for kind in ("sync", "async"):
                    figures.append(
                        common.figure(
                            f"MQTT {protocol}, QoS {qos}, {kind} handler: worker",
                            "msg/s",
                            rates[kind],
                            baseline=rates["bare"],
                            baseline_label="bare paho",
                            goal=("ratio", ">=", GOAL_RATIO[qos] if kind == "sync" else ASYNC_GOAL_RATIO),
                        )
                    )
                drain_figures.append(
                    common.figure(
                        f"MQTT {protocol}, QoS {qos}, sync handler, drain: worker",
                        "msg/s",
                        drain["sync"],
                        baseline=drain["bare"],
                        baseline_label="bare paho, drain",
                        goal=("ratio", ">=", GOAL_RATIO[qos]),
                    )
                )
                pair_live, pair_drain = measure_pair_cell(broker, protocol, qos, count, pair_runs, Path(tmp))
                for mode, rates_of in (("live", pair_live), ("drain", pair_drain)):
                    pair_figures.append(
                        common.figure(
                            f"MQTT {protocol}, QoS {qos}, sync handler, {mode}: {PAIR} workers",
                            "msg/s",
                            rates_of["sync"],
                            baseline=rates_of["bare"],
                            baseline_label=f"{PAIR} bare paho" + (", drain" if mode == "drain" else ""),
                            goal=("ratio", ">=", GOAL_RATIO[qos]),
                        )
                    )
    return common.report(
        "throughput",
        "Worker throughput (1 worker vs a bare paho subscriber, 2 workers vs 2 bare subscribers)",
        quick,
        figures + drain_figures + pair_figures,
        messages_per_run=count,
        notes=[
            f"burst of {count} messages per run, {runs} runs per one-subscriber figure and {pair_runs} per "
            f"two-subscriber figure (median), after a {WARMUP_MESSAGES}-message warm-up; every side subscribes "
            "to $share/<group>/bench/<kind>",
            "baseline: bare paho 2.x subscriber (CallbackAPIVersion.VERSION2), json.loads + the same sync "
            "handler on paho's network thread, paho's automatic QoS 1 ack; the async figures are compared "
            "with the same bare (sync) baseline",
            "publisher: separate process, raw MQTT 3.1.1 socket writes (bench/publisher.py)",
            "live: publisher and subscriber run together; drain: the subscriber (worker process(es) or bare "
            "subscriber(s)) is paused with SIGSTOP while the broker accepts the whole burst, then resumed with "
            "SIGCONT; same burst size, rate from first handler start to last handler end in both modes",
            f"drain: sync handler only, {drain_runs} runs per figure, interleaved with the live runs; baseline "
            "is the bare subscriber drained the same way",
            f"{PAIR} workers: one route with worker_count={PAIR} (both workers in the manager's share group) vs "
            f"{PAIR} bare subscribers in one share group of their own; handler bench.handlers.count_shared on "
            "both sides (each process keeps its first start, last end and count in a memory-mapped file); rate "
            f"= N / (latest end - earliest start) over the {PAIR} processes; live and drain runs interleaved",
            f"goals from issue 15: sync handler ratio >= {GOAL_RATIO[0]:g} at QoS 0 and >= {GOAL_RATIO[1]:g} at "
            f"QoS 1 (live, drain, one worker and two); async handler ratio >= {ASYNC_GOAL_RATIO:g}",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return common.cli(__doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
