"""The engine's detail views on a real broker and real workers: handler times against known
sleep durations, a worker's log and lifecycle across restarts, the messages it holds, the
operator's kill, and /metrics' histogram and failure counts."""

from __future__ import annotations

import pytest

from engine import Router
from engine.metrics import MetricsServer
from tests.engine import workload
from tests.support import Publisher, all_running, handled_ids, http_get, wait_until

SLEEPY = "sleepy/{name}"


def _pool(broker, group_name, start, **settings):
    router = Router()
    router.on(SLEEPY, workload.record_param, qos=1, shared=True)
    manager = start(router, broker, group_name, **settings)
    wait_until(lambda: all_running(manager), what="the worker running")
    return manager


def _handled(manager) -> int:
    route = manager.snapshot().routes[0]
    return route.handled + route.failed


def test_handler_times_match_known_sleeps(broker, group_name, start):
    manager = _pool(broker, group_name, start)
    with Publisher(broker) as pub:
        for i in range(10):
            pub.publish("sleepy/a", {"id": f"s{i}", "sleep": 0.02})
        for i in range(2):
            pub.publish("sleepy/b", {"id": f"l{i}", "sleep": 0.2})
    wait_until(lambda: (d := manager.route_detail(SLEEPY)) is not None and d.timings_total.count == 12,
               what="12 handler times reported")
    detail = manager.route_detail(SLEEPY)
    assert detail is not None
    minute, total = detail.timings_minute, detail.timings_total
    assert minute.counts == total.counts, "all of them within the last minute"
    # A sleep never ends early, so each time is at least its sleep; ten of twelve are short.
    p50, p99 = total.quantile(0.5), total.quantile(0.99)
    assert p50 is not None and p99 is not None and total.max is not None
    assert 0.02 <= p50 < 0.2 <= total.max
    assert p99 > 0.16  # in the bucket of the long sleeps, not the short ones
    assert total.sum >= 10 * 0.02 + 2 * 0.2
    # The snapshot, rebuilt twice a second, says it too.
    p99_shown = wait_until(lambda: manager.snapshot().routes[0].handler_p99, what="p99 in the snapshot")
    assert p99_shown > 0.16
    assert len(detail.workers) == 1 and detail.workers[0].slot == f"{SLEEPY}#0"


def test_a_worker_keeps_its_log_across_restarts_with_its_lifecycle(broker, group_name, start, tmp_path):
    manager = _pool(broker, group_name, start, poison_deaths=0)
    slot = f"{SLEEPY}#0"
    with Publisher(broker) as pub:
        pub.publish("sleepy/x", {"id": "bad", "raise": True})
        wait_until(lambda: any(e.kind == "failure" for e in manager.worker_detail(slot).logs),
                   what="the failure in the worker's log")
        pub.publish("sleepy/x", {"id": "crash", "crash": True}, qos=0)
    wait_until(lambda: manager.snapshot().workers[0].restarts == 1 and all_running(manager), what="a restart")
    detail = manager.worker_detail(slot)
    assert detail is not None
    failure = next(e for e in detail.logs if e.kind == "failure")
    assert failure.exception == "RuntimeError" and failure.topic == "sleepy/x" and "Traceback" in failure.message
    kinds = [e.kind for e in detail.lifecycle]
    assert "exited" in kinds and "restarted" in kinds
    exited = next(e for e in detail.lifecycle if e.kind == "exited")
    assert "13" in exited.message
    wait_until(lambda: manager.worker_detail(slot).cpu_history, what="CPU sampled")
    assert manager.worker_detail(slot).memory_history
    assert manager.worker_detail("no such slot") is None
    assert manager.route_detail("no/such/route") is None


def test_the_messages_a_blocked_handler_holds_show_with_their_age(broker, group_name, start, tmp_path):
    manager = _pool(broker, group_name, start, hang_timeout=600)
    marker = tmp_path / "held"
    with Publisher(broker) as pub:
        pub.publish("sleepy/stuck", {"id": "h", "hold": str(marker)})
    wait_until(marker.exists, what="the handler holding its message")
    slot = f"{SLEEPY}#0"
    # The handler blocks the worker's loop (no heartbeats), yet what it holds is known.
    held = wait_until(lambda: manager.worker_detail(slot).held, what="the held message")
    assert held[0].topic == "sleepy/stuck" and held[0].qos == 1 and held[0].age is not None
    first = held[0].age
    later = wait_until(lambda: (h := manager.worker_detail(slot).held) and h[0].age > first and h,
                       what="its age growing")
    assert later[0].age > first
    wait_until(lambda: (a := manager.worker_detail(slot).heartbeat_age) is not None and a > 2,
               what="the heartbeat age growing while it is stuck")
    wait_until(lambda: (a := manager.snapshot().workers[0].heartbeat_age) is not None and a > 2,
               what="the snapshot showing it too")


def test_the_operators_kill_restarts_without_backoff_or_crash_loop(broker, group_name, start, tmp_path):
    manager = _pool(broker, group_name, start, crash_loop_restarts=2, restart_backoff=30.0)
    slot = f"{SLEEPY}#0"
    marker, out = tmp_path / "held", tmp_path / "records"
    with Publisher(broker) as pub:
        pub.publish("sleepy/k", {"id": "k", "hold": str(marker), "out": str(out)})
    wait_until(marker.exists, what="a message in hand")
    for kills in range(1, 4):
        manager.kill_worker(slot)
        wait_until(lambda k=kills: (w := manager.snapshot().workers[0]).restarts == k and w.state.value == "running",
                   what=f"restart {kills} after the operator's kill")
    worker = manager.snapshot().workers[0]
    assert worker.last_exit == "killed: by the operator"
    # What it held came back from its session and was handled: not a failure of the route.
    wait_until(lambda: handled_ids(out) == {"k"}, what="the held message handled after the kill")
    route = manager.route_detail(SLEEPY)
    assert route is not None and route.info.failed == 0 and route.failures == ()
    said = [e.message for e in manager.worker_detail(slot).lifecycle if e.kind == "exited"]
    assert said and all(m.endswith("was killed by the operator; restarting it now") for m in said)
    with pytest.raises(ValueError, match="no worker slot"):
        manager.kill_worker("nope#0")


def test_metrics_expose_handler_seconds_and_failures_by_exception(broker, group_name, start):
    manager = _pool(broker, group_name, start)
    server = MetricsServer(manager, port=0).start()
    try:
        with Publisher(broker) as pub:
            for i in range(3):
                pub.publish("sleepy/m", {"id": f"m{i}", "sleep": 0.03})
            pub.publish("sleepy/m", {"id": "bad", "raise": True})
        wait_until(lambda: (d := manager.route_detail(SLEEPY)) and d.timings_total.count == 4 and d.failures,
                   what="four times and a failure reported")
        text = http_get(f"http://{server.address}/metrics")[1]
    finally:
        server.stop()
    assert 'routemq_route_handler_seconds_count{route="sleepy/{name}"} 4.0' in text
    assert 'routemq_route_handler_seconds_bucket{le="+Inf",route="sleepy/{name}"} 4.0' in text
    # The three sleeps took at least 30 ms each: at most the failing one is below 25 ms.
    below = next(line for line in text.splitlines()
                 if line.startswith('routemq_route_handler_seconds_bucket{le="0.025",route="sleepy/{name}"}'))
    assert float(below.rsplit(" ", 1)[1]) <= 1.0
    assert 'routemq_route_failures_total{exception="RuntimeError",route="sleepy/{name}"} 1.0' in text


def test_heartbeats_keep_coming_while_a_batch_of_slow_plain_handlers_runs(broker, group_name, start):
    # Thirty messages read in one go (under the concurrency limit of 32), each 0.2 s of a plain
    # handler: the manager sees the count move while they run, not one jump at the end.
    manager = _pool(broker, group_name, start)
    seen: set[int] = set()
    with Publisher(broker) as pub:
        for i in range(30):
            pub.publish("sleepy/batch", {"id": f"b{i}", "sleep": 0.2})

    def all_handled() -> bool:
        seen.add(manager.snapshot().workers[0].handled)
        return 30 in seen

    wait_until(all_handled, what="the batch handled")
    assert len(seen - {0, 30}) >= 2, f"counts seen while the batch ran: {sorted(seen)}"


def test_what_a_handler_logged_before_os_exit_is_the_exit_cause_and_the_failures_example(
    broker, group_name, start
):
    manager = _pool(broker, group_name, start, poison_deaths=1)
    with Publisher(broker) as pub:
        pub.publish("sleepy/bye", {"id": "bye", "say": "giving up on order 17", "crash": True})
    worker = wait_until(lambda: (w := manager.snapshot().workers[0]).restarts == 1 and w, what="the restart")
    assert worker.last_exit == "13: giving up on order 17"
    group = wait_until(lambda: manager.route_detail(SLEEPY).failures, what="the failure group")[0]
    assert group.exception == "worker died: 13" and "giving up on order 17" in group.latest.traceback
    assert group.latest.topic == "sleepy/bye" and b'"say"' in group.latest.payload
