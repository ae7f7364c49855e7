"""/metrics and /healthz, from a real manager on a real broker."""

from __future__ import annotations

import os
import signal

import pytest

from engine import Router, WorkerManager
from engine.metrics import MetricsServer, health
from engine.snapshot import BrokerInfo, ManagerSnapshot, RouteInfo
from tests.engine import workload
from tests.support import Publisher, http_get, settings_for, wait_until


@pytest.fixture
def served(broker, group_name):
    router = Router()
    router.on("metrics/{name}", workload.record_param, qos=1, shared=True, worker_count=2)
    manager = WorkerManager(router, group_name, settings=settings_for(broker, group_name, restart_backoff=2.0))
    server = MetricsServer(manager, port=0).start()
    yield manager, f"http://{server.address}"
    server.stop()
    manager.close()


def test_health_is_503_before_start_and_200_when_every_pool_is_full(served, broker):
    manager, base = served
    status, body = http_get(base + "/healthz")
    assert status == 503 and "not started" in body
    manager.start_workers()
    wait_until(lambda: http_get(base + "/healthz")[0] == 200, what="healthy")
    assert all(w.connected for w in manager.snapshot().workers), "healthy means every worker serves"
    victim = manager.snapshot().workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    status, body = wait_until(lambda: (r := http_get(base + "/healthz"))[0] == 503 and r, what="unhealthy")
    assert "metrics/{name} has 1/2 workers serving" in body


def test_metrics_expose_workers_routes_and_broker(served, broker, tmp_path):
    manager, base = served
    manager.start_workers()
    wait_until(lambda: http_get(base + "/healthz")[0] == 200, what="healthy")
    with Publisher(broker) as pub:
        for i in range(5):
            pub.publish(f"metrics/n{i}", {"id": str(i)})
    wait_until(lambda: manager.snapshot().handled == 5, what="5 handled")
    status, text = http_get(base + "/metrics")
    assert status == 200
    assert 'routemq_route_messages_handled_total{filter="metrics/+",route="metrics/{name}",shared="true"} 5.0' in text
    assert text.count("routemq_worker_up{") == 2
    assert 'routemq_worker_state{route="metrics/{name}",slot="metrics/{name}#0",state="running"} 1.0' in text
    assert "routemq_broker_connected{" in text and "routemq_worker_rss_bytes{" in text
    assert http_get(base + "/nothing")[0] == 404


def test_metrics_expose_busy_utilization_and_the_autoscale_range(served, broker):
    manager, base = served
    key = 'filter="metrics/+",route="metrics/{name}",shared="true"'
    manager.start_workers()
    wait_until(lambda: all(w.busy is not None for w in manager.snapshot().workers), what="busy readings")
    text = http_get(base + "/metrics")[1]
    assert f"routemq_route_autoscaled{{{key}}} 0.0" in text
    assert "routemq_route_autoscale_min_workers{" not in text  # no range while sized by hand
    assert text.count("routemq_worker_busy_ratio{") == 2 and f"routemq_route_utilization{{{key}}}" in text
    manager.set_autoscale("metrics/{name}", 1, 4)
    text = http_get(base + "/metrics")[1]
    assert f"routemq_route_autoscaled{{{key}}} 1.0" in text
    assert f"routemq_route_autoscale_min_workers{{{key}}} 1.0" in text
    assert f"routemq_route_autoscale_max_workers{{{key}}} 4.0" in text


def test_health_names_a_broker_outage():
    snap = ManagerSnapshot(
        group="g",
        broker=BrokerInfo("mqtt:1883", "unreachable", "connection refused"),
        routes=(RouteInfo("a/+", "a/+", 1, True, 2, 2),),
        started=True,
    )
    assert health(snap) == (False, "broker mqtt:1883 unreachable: connection refused")
