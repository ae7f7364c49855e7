"""The autoscaling policy (engine/autoscale.py) on traces with a fake clock, and the busy signal
it runs on (engine/worker/busy.py, engine/supervisor/rates.py's BusyMeter)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from engine.autoscale import (
    MEASURE,
    SETTLE,
    AutoscaleConfig,
    Autoscaler,
    AutoscaleRange,
    Decision,
    Observation,
    desired_size,
)
from engine.protocol import Heartbeat
from engine.supervisor import autoscaling
from engine.supervisor.rates import BusyMeter
from engine.worker.busy import BusyClock

from .dummies import DummyHost, new_pool

CONFIG = AutoscaleConfig(target=0.7, tolerance=0.1, up_window=3.0, down_window=20.0, hold=60.0)


def steady(now: float, size: int, utilization: float, rate: float | None = None) -> Observation:
    return Observation(now, size, utilization, rate if rate is not None else 50.0 * size * utilization, True)


def feed(scaler: Autoscaler, observations: list[Observation]) -> list[tuple[float, Decision]]:
    decisions = []
    for obs in observations:
        decision = scaler.observe(obs)
        if decision is not None:
            decisions.append((obs.now, decision))
    return decisions


# --- the formula ------------------------------------------------------------------------------


def test_desired_size_is_the_hpa_formula_with_a_tolerance():
    assert desired_size(4, 0.35, target=0.7, tolerance=0.1) == 2  # half as busy as wanted: half the workers
    assert desired_size(3, 0.9, target=0.7, tolerance=0.1) == 4  # ceil(3.86)
    assert desired_size(4, 0.75, target=0.7, tolerance=0.1) == 4  # within 10 % of the target: no twitch
    assert desired_size(4, 0.65, target=0.7, tolerance=0.1) == 4
    assert desired_size(1, 0.0, target=0.7, tolerance=0.1) == 1  # never below one


def test_saturated_workers_at_least_double_the_pool():
    # Fully busy workers hide how far the load exceeds them: the formula alone would give 3.
    assert desired_size(2, 1.0, target=0.7, tolerance=0.1) == 4
    assert desired_size(2, 0.94, target=0.7, tolerance=0.1) == 3


def test_a_range_is_checked_and_clamps():
    limits = AutoscaleRange.checked(2, 5, "route 'a/+'")
    assert (limits.clamp(1), limits.clamp(3), limits.clamp(9)) == (2, 3, 5)
    assert str(limits) == "2-5"
    for low, high in ((0, 3), (3, 2), (1, 10_000), (1.5, 2), (True, 2), ("1", 2)):
        with pytest.raises(ValueError, match=r"^route 'a/\+': autoscale range"):
            AutoscaleRange.checked(low, high, "route 'a/+'")


# --- when it may decide -----------------------------------------------------------------------


def test_no_decision_while_converging_disconnected_crash_looping_or_unmeasured():
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    busy = [Observation(float(t), 1, 1.0, 50.0, steady=False) for t in range(10)]
    busy += [Observation(float(t), 1, 1.0, 50.0, True, connected=False) for t in range(10, 20)]
    busy += [Observation(float(t), 1, 1.0, 50.0, True, crash_loop=True) for t in range(20, 30)]
    busy += [Observation(float(t), 1, None, 50.0, True) for t in range(30, 40)]
    assert feed(scaler, busy) == []


def test_readings_count_only_once_the_pool_has_settled():
    scaler = Autoscaler(AutoscaleRange(1, 8), AutoscaleConfig(up_window=0.0))
    assert scaler.observe(steady(0.0, 1, 1.0)) is None
    assert scaler.observe(steady(SETTLE - 0.5, 1, 1.0)) is None
    decision = scaler.observe(steady(SETTLE, 1, 1.0))
    assert decision is not None and decision.size == 2


def test_a_size_outside_the_range_is_clamped_first():
    scaler = Autoscaler(AutoscaleRange(2, 4), CONFIG)
    decisions = feed(scaler, [steady(float(t), 6, 0.7) for t in range(4)])
    assert [d.size for _, d in decisions] == [4]
    assert "range 2-4" in decisions[0][1].reason


# --- growing ----------------------------------------------------------------------------------


def test_a_need_shorter_than_the_up_window_does_nothing():
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    trace = [steady(float(t), 2, 0.7) for t in range(5)]
    trace += [steady(5.0, 2, 1.0), steady(6.0, 2, 1.0)]  # a two-second spike, window 3 s
    trace += [steady(float(t), 2, 0.7) for t in range(7, 15)]
    assert feed(scaler, trace) == []


def test_growth_waits_for_the_up_window_and_takes_the_smallest_need_seen_in_it():
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    trace = [steady(float(t), 2, 0.7) for t in range(3)]
    trace += [steady(3.0, 2, 1.0), steady(4.0, 2, 0.9), steady(5.0, 2, 1.0), steady(6.0, 2, 1.0)]
    decisions = feed(scaler, trace)
    assert len(decisions) == 1
    at, decision = decisions[0]
    assert at == 6.0  # the need began at 3.0 and lasted the 3 s window
    assert decision.size == 3  # busy 90 % asked for ceil(2 x 0.9 / 0.7) = 3, the smallest in the window
    assert decision.reason == "busy 98%, target 70%"


def test_growth_stops_at_the_top_of_the_range():
    scaler = Autoscaler(AutoscaleRange(1, 3), AutoscaleConfig(up_window=0.0))
    decisions = feed(scaler, [steady(float(t), 2, 1.0) for t in range(3)])
    assert [d.size for _, d in decisions] == [3]
    later = feed(scaler, [steady(float(t), 3, 1.0) for t in range(10, 30)])
    assert [d.size for _, d in later] == []


# --- the simulated pool: recorded traces --------------------------------------------------------


@dataclass
class SimulatedPool:
    """A pool whose capacity is ``per_worker`` messages/s per worker, up to ``cores`` workers
    (a CPU-bound handler on a machine with that many free cores), under ``load(t)``. A resize
    takes ``converge`` seconds, during which the pool is not steady."""

    load: Callable[[float], float]
    cores: int = 1000
    per_worker: float = 50.0
    size: int = 1
    converge: float = 1.0
    busy_until: float = -1.0
    sizes: list[tuple[float, int]] = field(default_factory=list)
    decisions: list[tuple[float, Decision]] = field(default_factory=list)

    def observation(self, now: float) -> Observation:
        capacity = self.per_worker * min(self.size, self.cores)
        rate = min(self.load(now), capacity)
        # Workers contending for too few cores are all busy all the time.
        utilization = 1.0 if self.size > self.cores and rate >= capacity else rate / (self.per_worker * self.size)
        return Observation(now, self.size, min(1.0, utilization), rate, steady=now >= self.busy_until)

    def run(self, scaler: Autoscaler, seconds: float, start: float = 0.0) -> None:
        now = start
        while now < start + seconds:
            decision = scaler.observe(self.observation(now))
            if decision is not None:
                self.decisions.append((now, decision))
                if decision.size != self.size:
                    self.size = decision.size
                    self.busy_until = now + self.converge
            self.sizes.append((now, self.size))
            now += 1.0


def test_an_io_bound_pool_grows_to_its_load_then_shrinks_back_by_halves():
    pool = SimulatedPool(load=lambda t: 150.0 if t < 60 else 2.0)
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    pool.run(scaler, 60)
    assert pool.size >= 3 and pool.observation(59.0).utilization <= 0.8, pool.decisions  # keeps up, near target
    assert scaler.held_at is None
    top = pool.size
    pool.run(scaler, 60, start=60.0)
    assert pool.size == 1, pool.decisions
    shrinks = [(at, d.size) for at, d in pool.decisions if at >= 60]
    # Nothing before the down window has passed; then at most halving at each step.
    assert shrinks[0][0] >= 60 + CONFIG.down_window
    sizes = [top] + [size for _, size in shrinks]
    assert all(after >= (before + 1) // 2 for before, after in itertools.pairwise(sizes))


def test_a_cpu_bound_pool_on_two_cores_holds_at_two_and_says_why():
    pool = SimulatedPool(load=lambda t: 300.0, cores=2)
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    pool.run(scaler, CONFIG.hold)  # the hold outlasts the run
    assert max(size for _, size in pool.sizes) <= 4
    assert pool.size == 2 and scaler.held_at == 2
    held = [d for _, d in pool.decisions if d.held]
    assert len(held) == 1  # one trial, one verdict: no oscillation while the load stays
    assert held[0].reason.startswith("adding workers did not raise throughput: holding at 2 (4 workers handled 100")


def test_a_hold_ends_when_the_load_falls_and_growth_is_tried_again():
    load = {"now": 300.0}
    pool = SimulatedPool(load=lambda t: load["now"], cores=2)
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    pool.run(scaler, 60)
    assert scaler.held_at == 2
    load["now"] = 30.0
    pool.run(scaler, 5, start=60.0)
    assert scaler.held_at is None
    assert any("no longer holding at 2: the load fell" in d.reason for _, d in pool.decisions)


def test_a_hold_ends_after_the_hold_time_even_under_load():
    pool = SimulatedPool(load=lambda t: 300.0, cores=2)
    config = AutoscaleConfig(target=0.7, tolerance=0.1, up_window=3.0, down_window=20.0, hold=30.0)
    scaler = Autoscaler(AutoscaleRange(1, 8), config)
    pool.run(scaler, 200)
    releases = [d for _, d in pool.decisions if "no longer holding" in d.reason]
    assert releases and "30 s passed" in releases[0].reason
    assert max(size for _, size in pool.sizes) <= 4  # each retry is judged again, and held again
    assert len([d for _, d in pool.decisions if d.held]) >= 2


def test_a_scale_up_that_helped_is_followed_by_the_next_without_waiting_again():
    pool = SimulatedPool(load=lambda t: 400.0)
    scaler = Autoscaler(AutoscaleRange(1, 8), CONFIG)
    pool.run(scaler, 60)
    ups = [(at, d.size) for at, d in pool.decisions if d.size > 1 and not d.held]
    assert [size for _, size in ups][:3] == [2, 4, 8]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(ups)]
    # converge + settle + measure, not a fresh up window on top
    assert all(gap <= pool.converge + SETTLE + MEASURE + 2 for gap in gaps), ups
    assert scaler.held_at is None


def test_the_load_going_away_during_a_trial_is_no_verdict():
    load = {"now": 200.0}
    pool = SimulatedPool(load=lambda t: load["now"])
    scaler = Autoscaler(AutoscaleRange(1, 8), AutoscaleConfig(up_window=0.0, down_window=20.0))
    pool.run(scaler, 4)
    assert pool.size == 2
    load["now"] = 0.0
    pool.run(scaler, 10, start=4.0)
    assert scaler.held_at is None and not any(d.held for _, d in pool.decisions)


# --- the busy signal ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_busy_clock_counts_a_plain_handler_as_the_whole_worker():
    clock = FakeClock()
    busy = BusyClock(1.0, clock)
    busy.set(1)
    clock.now += 0.3
    busy.set(0)
    clock.now += 0.7
    assert busy.reading() == (101.0, pytest.approx(0.3))
    busy.set(5)  # messages waiting behind a plain handler: still just fully busy
    clock.now += 1.0
    assert busy.reading()[1] == pytest.approx(1.3)


def test_busy_clock_counts_async_messages_as_their_share_of_the_limit():
    clock = FakeClock()
    busy = BusyClock(1.0 / 4, clock)
    busy.set(1)
    clock.now += 1.0
    busy.set(4)  # at the concurrency limit: saturated
    clock.now += 1.0
    busy.set(10)  # beyond it still counts as saturated, no more
    clock.now += 1.0
    assert busy.reading()[1] == pytest.approx(0.25 + 1.0 + 1.0)


def test_busy_meter_measures_over_the_last_seconds_of_the_workers_clock():
    meter = BusyMeter()
    meter.heartbeat(Heartbeat(clock=10.0, busy_seconds=0.0))
    assert meter.busy is None  # one reading is no interval
    meter.heartbeat(Heartbeat(clock=11.0, busy_seconds=1.0))
    assert meter.busy == pytest.approx(1.0)
    for second in range(12, 16):  # idle from now on
        meter.heartbeat(Heartbeat(clock=float(second), busy_seconds=1.0))
    assert meter.busy == pytest.approx(0.0)  # the busy second has left the 3 s window
    meter.heartbeat(Heartbeat(clock=15.0, busy_seconds=9.0))  # the same instant again: ignored
    assert meter.busy == pytest.approx(0.0)
    meter.reset()
    assert meter.busy is None


# --- the supervisor's edge: pools of dummy processes, a fake clock ------------------------------


def beat(slot, clock: float, busy_seconds: float) -> None:
    slot.on_message(Heartbeat(connected=True, subscribed=True, clock=clock, busy_seconds=busy_seconds))


def test_a_pool_is_observed_as_steady_only_when_every_slot_runs_and_reports():
    host = DummyHost()
    pool = new_pool(host, desired=2)
    pool.converge()
    first, second = pool.slots
    assert not autoscaling.observe(pool, host.now()).steady  # both starting
    beat(first, 1.0, 0.0)
    beat(second, 1.0, 0.0)
    seen = autoscaling.observe(pool, host.now())
    assert seen.steady and seen.utilization is None  # one heartbeat each: no interval yet
    beat(first, 2.0, 1.0)  # fully busy
    assert autoscaling.observe(pool, host.now()).utilization is None  # the second has no reading yet
    beat(second, 2.0, 0.5)
    seen = autoscaling.observe(pool, host.now())
    assert seen.utilization == pytest.approx(0.75) and seen.size == 2 and seen.connected


def test_step_resizes_an_autoscaled_pool_and_says_why():
    host = DummyHost()
    pool = new_pool(host, desired=1)
    pool.set_autoscale(AutoscaleRange(1, 4), AutoscaleConfig(up_window=0.0))
    pool.converge()
    slot = pool.slots[0]
    for second in range(6):  # saturated
        beat(slot, float(second), float(second))
        host.advance(1.0)
        autoscaling.step([pool], host, host.now())
        if pool.desired != 1:
            break
    assert pool.desired == 2 and len(pool.slots) == 2
    assert [e.message for e in host.events if e.kind == "autoscale"] == [
        "autoscale jobs/{name} 1 -> 2: busy 100%, target 70%"
    ]
    # Not steady while the new worker starts: no decision, however busy.
    for _ in range(5):
        host.advance(1.0)
        autoscaling.step([pool], host, host.now())
    assert pool.desired == 2


def test_a_pool_not_autoscaled_is_left_alone_and_set_autoscale_clamps():
    host = DummyHost()
    pool = new_pool(host, desired=6)
    autoscaling.step([pool], host, host.now())
    assert pool.desired == 6 and host.events == []
    pool.set_autoscale(AutoscaleRange(1, 4), CONFIG)
    assert pool.desired == 4 and pool.autoscaler is not None
    pool.set_autoscale(None, CONFIG)
    assert pool.autoscaler is None and pool.desired == 4


# --- ranges set at run time and in code, across a reload (no worker needs to run) ---------------


def _router(autoscale: tuple[int, int] | None):
    from engine import Router
    from tests.engine import workload

    router = Router()
    router.on("jobs/+", workload.record, qos=1, shared=True, worker_count=2, autoscale=autoscale)
    return router


def _route(manager):
    return next(r for r in manager.snapshot().routes if r.topic == "jobs/+")


def test_a_range_set_at_run_time_outlives_a_reload_and_one_changed_in_code_replaces_it():
    from engine import WorkerManager
    from engine.settings import Settings

    with WorkerManager(_router(None), "autoscale-reload", settings=Settings(port=1)) as manager:
        assert _route(manager).autoscale_min is None
        manager.set_autoscale("jobs/+", 3, 6)
        assert (_route(manager).autoscale_min, _route(manager).desired_workers) == (3, 3)
        manager.reload_routes(_router(None))  # the code did not change: the operator's range stays
        assert (_route(manager).autoscale_min, _route(manager).autoscale_max) == (3, 6)
        manager.reload_routes(_router((1, 2)))  # the code changed: it wins, as worker_count would
        assert (_route(manager).autoscale_min, _route(manager).autoscale_max) == (1, 2)
        manager.set_autoscale("jobs/+", None)
        manager.reload_routes(_router((1, 2)))
        assert _route(manager).autoscale_min is None  # turned off at run time, and the code is unchanged
        with pytest.raises(ValueError, match=r"^no shared route 'nope/\+'"):
            manager.set_autoscale("nope/+", 1, 2)
        with pytest.raises(ValueError, match=r"^set_autoscale\('jobs/\+'\): autoscale range 0-2 is not valid"):
            manager.set_autoscale("jobs/+", 0, 2)
