"""Autoscaling per route, proven with the real broker and real worker processes.

A pool with ``autoscale=(min, max)`` sizes itself on how busy its workers are (engine/autoscale.py):
it grows while they are busier than the target, shrinks (never more than halving at once) when the
load has been lower for the scale-down window, and stops growing, saying why, when more workers do
not raise throughput (a CPU-bound handler on a machine with fewer cores than workers).

The load comes from a paho client in a thread of the test, publishing at a fixed rate with QoS 1;
handlers (tests.engine.workload) append ``pid id topic`` lines to a records file, which proves what
was handled. Windows are short to keep the tests quick; every wait has a generous deadline, and no
assertion is about how fast something happened.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from engine import Router, WorkerManager
from engine.broker import PrivateMosquitto
from engine.snapshot import RouteInfo, SlotState
from tests.engine import workload
from tests.support import Publisher, all_running, handled_ids, process_gone, wait_until

pytestmark = pytest.mark.e2e

RATE = 150  # messages a second: three times what one worker of a 20 ms handler handles
CHAOS_RATE = 100  # twice what one worker handles: a smaller backlog for the restarted workers to go through
RESIZE = re.compile(r"^autoscale (\S+) (\d+) -> (\d+): ")


# ----------------------------------------------------------------------------------------------
# Load, and what the pools did
# ----------------------------------------------------------------------------------------------


class RateLoad:
    """Publishes ``{"id", "out", **extra}`` to ``topic`` at ``rate`` messages a second (QoS 1, not
    waiting for each ack) from a thread, until ``stop()``. ``rate`` may be changed while it runs."""

    def __init__(self, broker: PrivateMosquitto, topic: str, out: Path, rate: float, **extra: Any) -> None:
        self.topic, self.out, self.extra = topic, str(out), extra
        self._rate = rate
        self._rate_changed = threading.Event()
        self._stopping = threading.Event()
        self.sent: list[tuple[str, mqtt.MQTTMessageInfo]] = []
        self.publisher = Publisher(broker)
        self.thread = threading.Thread(target=self._run, name="rate-load", daemon=True)
        self.thread.start()

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        self._rate = rate
        self._rate_changed.set()

    @property
    def published(self) -> int:
        return len(self.sent)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            ident = f"m{len(self.sent)}"
            payload = {"id": ident, "out": self.out, **self.extra}
            self.sent.append((ident, self.publisher.publish(self.topic, payload, wait=False)))
            if self._rate_changed.is_set():
                self._rate_changed.clear()
                next_at = time.monotonic()
            next_at = max(next_at + 1.0 / self._rate, time.monotonic() - 1.0)  # no burst after a stall
            self._stopping.wait(max(0.0, next_at - time.monotonic()))  # the pace of the load

    def stop(self) -> list[str]:
        """Stop publishing; the ids the broker acknowledged (waiting for the acks of the last ones)."""
        if not self._stopping.is_set():
            self._stopping.set()
            self.thread.join(10)
            for _, info in self.sent:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(10)
            self.publisher.close()
        return [ident for ident, info in self.sent if info.is_published()]


def route(manager: WorkerManager, topic: str) -> RouteInfo:
    return next(r for r in manager.snapshot().routes if r.topic == topic)


def resizes(manager: WorkerManager, topic: str) -> list[tuple[int, int]]:
    """Every (before, after) the autoscaler decided for ``topic``, oldest first."""
    found = []
    for event in manager.events_since(0):
        match = RESIZE.match(event.message) if event.kind == "autoscale" else None
        if match and match.group(1) == topic:
            found.append((int(match.group(2)), int(match.group(3))))
    return found


def sizes(steps: list[tuple[int, int]]) -> str:
    return "->".join(str(size) for size in [steps[0][0], *(after for _, after in steps)]) if steps else "unchanged"


def autoscale_events(manager: WorkerManager, topic: str) -> list[str]:
    return [e.message for e in manager.events_since(0) if e.kind == "autoscale" and topic in e.message]


def trace(manager: WorkerManager, load: RateLoad | None = None) -> str:
    """What the pools were doing: for assertion messages."""
    snap = manager.snapshot()
    lines = [f"  {r}" for r in snap.routes]
    lines += [f"  {w.slot} {w.state.value} pid={w.pid} busy={w.busy} {w.messages_per_second:.0f} msg/s "
              f"handled={w.handled} in_flight={w.in_flight} restarts={w.restarts}" for w in snap.workers]
    kinds = ("autoscale", "scaled", "retired", "exited", "restarted", "crash-loop", "hung", "killed", "spawned")
    start = None
    for event in manager.events_since(0):
        start = start if start is not None else event.time
        if event.kind in kinds:
            lines.append(f"  {event.time - start:7.2f} {event.kind}: {event.message}")
    if load is not None:
        lines.append(f"  load: {load.published} published at {load.rate:g} msg/s")
    return "\n".join(lines)


def wait_for(manager: WorkerManager, predicate: Any, timeout: float, what: str, load: RateLoad | None = None) -> Any:
    """wait_until, with what the pools did in the failure message."""
    try:
        return wait_until(predicate, timeout=timeout, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{trace(manager, load)}") from None


def lines_in(out: Path) -> int:
    """Messages handled so far (duplicates included): complete lines of the records file."""
    try:
        return out.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def autoscaled_router(topic: str, handler: Any) -> Router:
    router = Router()
    router.on(topic, handler, qos=1, shared=True, worker_count=1, autoscale=(1, 8))
    return router


# ----------------------------------------------------------------------------------------------
# The proofs under load
# ----------------------------------------------------------------------------------------------


def test_a_pool_grows_with_the_load_keeps_up_and_shrinks_back_when_it_drops(broker, group_name, start, tmp_path):
    topic = "load/+"
    down_window = 6.0
    manager = start(autoscaled_router(topic, workload.record), broker, group_name,
                    autoscale_up_window=1.0, autoscale_down_window=down_window)
    out = tmp_path / "records"
    load = RateLoad(broker, "load/x", out, RATE, sleep=0.02)  # 20 ms a message: about 50 msg/s a worker

    def backlog() -> int:
        return load.published - lines_in(out)

    try:
        wait_for(manager, lambda: route(manager, topic).desired_workers >= 3 and all_running(manager), 60,
                 "the pool grown to 3 workers or more, all running", load)
        # Keeping up: at the full rate, the grown pool handles more than arrives, so the backlog
        # of the first seconds (one worker for three times its load) shrinks. Mosquitto queues a
        # shared subscription's messages in the session they were dealt to, so that backlog is
        # only drained by the workers that had it: it shrinks, slowly, and this waits for some.
        grown_at = backlog()
        wait_for(manager, lambda: backlog() < grown_at - RATE / 2, 60,
                 f"the backlog ({grown_at} when the pool had grown) shrinking at the full rate", load)
        assert load.rate == RATE

        load.rate = 2  # a trickle
        dropped = time.monotonic()
        wait_for(manager, lambda: any(after < before for before, after in resizes(manager, topic)),
                 down_window + 20, "the pool's first shrink", load)
        first_shrink = time.monotonic() - dropped
        wait_for(manager, lambda: (lambda r: r.desired_workers == 1 and r.live_workers == 1)(route(manager, topic)),
                 40, "the pool shrunk back to one worker", load)
        at_one = time.monotonic() - dropped
    finally:
        acked = load.stop()

    assert len(acked) == load.published, "the broker acknowledged every message"
    wait_for(manager, lambda: set(acked) <= handled_ids(out), 60, "every published message handled")
    steps = resizes(manager, topic)
    assert max(after for _, after in steps) >= 3, trace(manager)
    shrinks = [(before, after) for before, after in steps if after < before]
    assert all(after >= math.ceil(before / 2) for before, after in shrinks), \
        f"a shrink more than halved the pool: {steps}\n{trace(manager)}"
    assert steps[-1][1] == 1
    print(f"\n{topic}: {load.published} published, every one handled; sizes {sizes(steps)}; after the drop, "
          f"first shrink in {first_shrink:.1f} s, one worker in {at_one:.1f} s (window {down_window:g} s)")


def test_a_cpu_bound_pool_stops_growing_when_more_workers_do_not_raise_throughput(broker, group_name, start,
                                                                                  tmp_path):
    # Each message is 20 ms of pure-Python CPU time: three cores' worth at this rate. The workers
    # get two cores at most (shared with the broker and the test), so beyond two workers
    # throughput stays flat. On a larger machine, the supervisor thread (created by this thread)
    # and so every worker it launches are confined to two of them.
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(cores)[:2])
    try:
        topic = "cpu/+"
        manager = start(autoscaled_router(topic, workload.burn), broker, group_name,
                        autoscale_up_window=1.0, autoscale_down_window=30.0)
    finally:
        os.sched_setaffinity(0, cores)
    assert all(len(os.sched_getaffinity(w.pid)) <= 2 for w in manager.snapshot().workers)
    out = tmp_path / "records"
    load = RateLoad(broker, "cpu/x", out, RATE, burn=0.02)
    try:
        held = wait_for(
            manager,
            lambda: [m for m in autoscale_events(manager, topic) if "did not raise throughput" in m],
            90, "the autoscaler to find that more workers do not help", load,
        )
        # Held: the snapshot says at which size, and the pool is back there.
        wait_for(manager, lambda: (lambda r: r.autoscale_held_at is not None
                                   and r.autoscale_held_at == r.desired_workers)(route(manager, topic)),
                 10, "the snapshot showing the pool held", load)
    finally:
        load.stop()

    steps = resizes(manager, topic)
    assert max(after for _, after in steps) <= 4, f"the pool kept growing: {steps}\n{trace(manager)}"
    assert re.search(r"did not raise throughput: holding at [12] \(", held[0]), held[0]
    assert steps[-1][1] < steps[-1][0], f"the last step is the step back: {steps}"
    print(f"\n{topic}: sizes {sizes(steps)}; {held[0]}")


@pytest.mark.chaos
def test_an_autoscaled_pool_under_sigkill_chaos_loses_no_message(broker, group_name, start, tmp_path):
    """Workers are SIGKILLed at the worst moments for a resizing pool: as it grows (new workers
    starting), at full load, as it shrinks (workers draining to retire) and once it is back to one."""
    topic = "chaos/+"
    # The deaths are ours: keep the crash-loop threshold out of reach (as tests/e2e/test_chaos.py).
    manager = start(autoscaled_router(topic, workload.record), broker, group_name, crash_loop_restarts=1000,
                    autoscale_up_window=1.0, autoscale_down_window=5.0)
    seed = random.randrange(1 << 30)
    chooser = random.Random(seed)
    out = tmp_path / "records"
    killed: list[str] = []
    pids: list[int] = []

    def kill_one() -> None:
        victims = [w for w in manager.snapshot().workers if w.route == topic and w.alive and w.pid not in pids]
        assert victims, trace(manager)
        victim = chooser.choice(victims)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(f"{victim.slot} ({victim.state.value})")
            pids.append(victim.pid)

    def shrunk() -> bool:
        return any(after < before for before, after in resizes(manager, topic))

    load = RateLoad(broker, "chaos/x", out, CHAOS_RATE, sleep=0.02)
    try:
        wait_for(manager, lambda: route(manager, topic).desired_workers >= 2, 60, "the pool growing", load)
        kill_one()
        wait_for(manager, lambda: route(manager, topic).desired_workers >= 3, 60, "the pool growing again", load)
        kill_one()
        time.sleep(1.5)  # the pace of the faults
        kill_one()
        load.rate = 2  # a trickle
        wait_for(manager, shrunk, 40, "the pool shrinking", load)
        kill_one()
        wait_for(manager, lambda: route(manager, topic).desired_workers == 1, 60, "the pool back to one", load)
        kill_one()
    finally:
        acked = load.stop()

    assert len(killed) == 5, killed
    assert len(acked) == load.published, "the broker acknowledged every message"
    wait_for(manager, lambda: set(acked) <= handled_ids(out), 90,
             f"every acknowledged message handled (seed {seed}, killed {killed})")
    assert all(process_gone(pid) for pid in pids)
    wait_for(manager, lambda: all_running(manager) and route(manager, topic).live_workers >= 1, 30,
             "the pool running again")
    assert not [w for w in manager.snapshot().workers if w.state is SlotState.CRASH_LOOP]
    print(f"\n{topic}: {load.published} published, every one handled; sizes {sizes(resizes(manager, topic))}; "
          f"killed {', '.join(killed)}")


# ----------------------------------------------------------------------------------------------
# The verbs
# ----------------------------------------------------------------------------------------------


def test_set_autoscale_clamps_turns_off_and_a_manual_scale_turns_autoscaling_off(broker, group_name, start):
    router = Router()
    router.on("hand/+", workload.record, qos=1, shared=True, worker_count=1, autoscale=(1, 8))
    router.on("ctl/+", workload.record, qos=1, shared=True, worker_count=3)  # sized by hand for now
    router.on("plain/#", workload.record, qos=1)  # served by the main worker
    manager = start(router, broker, group_name, autoscale_up_window=1.0, autoscale_down_window=2.0)
    hand = route(manager, "hand/+")
    assert (hand.autoscale_min, hand.autoscale_max, hand.desired_workers) == (1, 8, 1)
    assert route(manager, "ctl/+").autoscale_min is None

    def pool(topic: str, size: int) -> bool:
        r = route(manager, topic)
        slots = [w for w in manager.snapshot().workers if w.route == topic]
        return r.desired_workers == size and len(slots) == size and all_running(manager)

    # The range's low end raises the size at once; an idle pool at its minimum stays there.
    manager.set_autoscale("hand/+", 2, 4)
    wait_for(manager, lambda: pool("hand/+", 2), 30, "hand/+ clamped up to 2 running workers")
    hand = route(manager, "hand/+")
    assert (hand.autoscale_min, hand.autoscale_max) == (2, 4)
    assert "autoscale on for hand/+: 2-4 workers; 1 -> 2 workers" in autoscale_events(manager, "hand/+")

    # Off: the pool keeps its size.
    manager.set_autoscale("hand/+", None)
    wait_for(manager, lambda: route(manager, "hand/+").autoscale_min is None, 10, "autoscaling off for hand/+")
    assert route(manager, "hand/+").desired_workers == 2
    assert "autoscale off for hand/+: the pool stays at 2 workers" in autoscale_events(manager, "hand/+")

    # A size set by hand turns autoscaling off and holds: ctl/+, autoscaled from now on with the
    # same settings and idle too, shrinks (its high end clamps it first); hand/+ does not.
    manager.set_autoscale("hand/+", 1, 8)
    manager.scale_route("hand/+", 3)
    manager.set_autoscale("ctl/+", 1, 2)
    wait_for(manager, lambda: pool("ctl/+", 1) and pool("hand/+", 3), 60,
             "ctl/+ shrunk by its autoscaler to 1, hand/+ at 3")
    hand_events = autoscale_events(manager, "hand/+")
    assert hand_events[-1] == "autoscale off for hand/+ (was 1-8): scaled by hand to 3; turn it on again to resume"
    assert route(manager, "hand/+").autoscale_min is None
    assert not resizes(manager, "hand/+")
    assert "autoscale on for ctl/+: 1-2 workers; 3 -> 2 workers" in autoscale_events(manager, "ctl/+")
    assert resizes(manager, "ctl/+") == [(2, 1)]

    # Refusals name the route, and change nothing.
    for topic in ("plain/#", "nope/+"):
        with pytest.raises(ValueError, match=re.escape(f"no shared route {topic!r}")):
            manager.set_autoscale(topic, 1, 2)
    for low, high in ((0, 3), (3, 2), (2, None), (1, 1001)):
        with pytest.raises(ValueError, match=re.escape("set_autoscale('hand/+')")):
            manager.set_autoscale("hand/+", low, high)
    hand = route(manager, "hand/+")
    assert (hand.autoscale_min, hand.desired_workers) == (None, 3)


@pytest.mark.parametrize(
    ("autoscale", "shared", "why"),
    [
        ((0, 3), True, "autoscale range 0-3 is not valid"),
        ((3, 2), True, "autoscale range 3-2 is not valid"),
        ((1, 1001), True, "autoscale range 1-1001 is not valid"),
        ((1.5, 3), True, "two whole numbers"),
        ((1, 2, 3), True, "must be (min_workers, max_workers)"),
        ((1, 2), False, "autoscale needs shared=True"),
    ],
)
def test_a_bad_autoscale_range_on_a_route_is_refused_naming_the_route(autoscale, shared, why):
    router = Router()
    with pytest.raises(ValueError, match=re.escape("route 'bad/+/#'")) as refused:
        router.on("bad/+/#", workload.record, qos=1, shared=shared, autoscale=autoscale)
    assert why in str(refused.value)
    assert not router.routes
