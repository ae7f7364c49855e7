"""Prometheus metrics and a health endpoint, computed from the manager's snapshot at scrape time.

``/metrics`` serves the Prometheus text format (prometheus_client); ``/healthz`` answers 200 when
every pool is at its desired size and the broker is connected, else 503 with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .snapshot import ManagerSnapshot, SlotState
from .worker_manager import WorkerManager

log = logging.getLogger("routemq.metrics")


class SnapshotCollector(Collector):
    """Turns one ManagerSnapshot into metric families (nothing is stored between scrapes)."""

    def __init__(self, manager: WorkerManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Any]:
        snap = self.manager.snapshot()
        yield from _worker_metrics(snap)
        yield from _route_metrics(snap)
        yield from _route_diagnosis(self.manager, snap)
        broker = GaugeMetricFamily(
            "routemq_broker_connected", "1 when a worker is connected to the broker", labels=["address", "kind"]
        )
        broker.add_metric([snap.broker.address, snap.broker.kind], 1.0 if snap.broker.state == "connected" else 0.0)
        yield broker
        yield GaugeMetricFamily("routemq_uptime_seconds", "Seconds since the workers were started", value=snap.uptime)


def _worker_metrics(snap: ManagerSnapshot) -> Iterator[Any]:
    labels = ["slot", "route"]
    up = GaugeMetricFamily("routemq_worker_up", "1 when the slot's worker is running and connected", labels=labels)
    state = GaugeMetricFamily("routemq_worker_state", "1 for the slot's current state", labels=[*labels, "state"])
    handled = CounterMetricFamily(
        "routemq_worker_messages_handled", "Messages handled by the slot's processes, across restarts", labels=labels
    )
    failed = CounterMetricFamily(
        "routemq_worker_messages_failed", "Messages whose handler raised, across the slot's restarts", labels=labels
    )
    in_flight = GaugeMetricFamily("routemq_worker_in_flight", "Messages the worker holds", labels=labels)
    restarts = CounterMetricFamily("routemq_worker_restarts", "Times the slot's worker was restarted", labels=labels)
    cpu = GaugeMetricFamily("routemq_worker_cpu_percent", "CPU use of the worker process", labels=labels)
    rss = GaugeMetricFamily("routemq_worker_rss_bytes", "Resident memory of the worker process", labels=labels)
    busy = GaugeMetricFamily(
        "routemq_worker_busy_ratio", "Share of the last seconds the worker had messages in hand (0..1)", labels=labels
    )
    for w in snap.workers:
        key = [w.slot, w.route]
        up.add_metric(key, 1.0 if w.state is SlotState.RUNNING and w.connected else 0.0)
        for candidate in SlotState:
            state.add_metric([*key, candidate.value], 1.0 if w.state is candidate else 0.0)
        handled.add_metric(key, w.handled)
        failed.add_metric(key, w.failed)
        in_flight.add_metric(key, w.in_flight)
        restarts.add_metric(key, w.restarts)
        if w.cpu_percent is not None:
            cpu.add_metric(key, w.cpu_percent)
        if w.rss_bytes is not None:
            rss.add_metric(key, w.rss_bytes)
        if w.busy is not None:
            busy.add_metric(key, w.busy)
    yield from (up, state, handled, failed, in_flight, restarts, cpu, rss, busy)


def _route_metrics(snap: ManagerSnapshot) -> Iterator[Any]:
    labels = ["route", "filter", "shared"]
    desired = GaugeMetricFamily("routemq_route_desired_workers", "Workers the route's pool should have", labels=labels)
    live = GaugeMetricFamily(
        "routemq_route_live_workers", "Workers of the route's pool starting or running", labels=labels
    )
    handled = CounterMetricFamily(
        "routemq_route_messages_handled", "Messages handled for the route, all workers", labels=labels
    )
    failed = CounterMetricFamily(
        "routemq_route_messages_failed", "Messages whose handler raised or killed its worker", labels=labels
    )
    dead_lettered = CounterMetricFamily(
        "routemq_route_dead_lettered", "Messages set aside to the dead-letter topic after killing workers",
        labels=labels,
    )
    rate = GaugeMetricFamily("routemq_route_messages_per_second", "Recent handling rate", labels=labels)
    utilization = GaugeMetricFamily(
        "routemq_route_utilization", "Mean busy ratio of the route's running workers (0..1)", labels=labels
    )
    autoscaled = GaugeMetricFamily("routemq_route_autoscaled", "1 when the route's pool autoscales", labels=labels)
    low = GaugeMetricFamily("routemq_route_autoscale_min_workers", "Smallest autoscaled pool size", labels=labels)
    high = GaugeMetricFamily("routemq_route_autoscale_max_workers", "Largest autoscaled pool size", labels=labels)
    for r in snap.routes:
        key = [r.topic, r.mqtt_topic, "true" if r.shared else "false"]
        desired.add_metric(key, r.desired_workers)
        live.add_metric(key, r.live_workers)
        handled.add_metric(key, r.handled)
        failed.add_metric(key, r.failed)
        dead_lettered.add_metric(key, r.dead_lettered)
        rate.add_metric(key, r.messages_per_second)
        if r.utilization is not None:
            utilization.add_metric(key, r.utilization)
        if r.shared:
            autoscaled.add_metric(key, 1.0 if r.autoscaled else 0.0)
        if r.autoscale_min is not None and r.autoscale_max is not None:
            low.add_metric(key, r.autoscale_min)
            high.add_metric(key, r.autoscale_max)
    yield from (desired, live, handled, failed, dead_lettered, rate, utilization, autoscaled, low, high)


def _route_diagnosis(manager: WorkerManager, snap: ManagerSnapshot) -> Iterator[Any]:
    """Handler times since start as a Prometheus histogram, and failures by cause, from one call."""
    seconds = HistogramMetricFamily(
        "routemq_route_handler_seconds", "Time a handler took per message, all workers, since start", labels=["route"]
    )
    failures = CounterMetricFamily(
        "routemq_route_failures",
        "Failed messages by cause: the handler's exception type, or 'worker died: <exit>' when it killed its worker",
        labels=["route", "exception"],
    )
    try:
        details = manager.route_details()
    except TimeoutError:  # a supervisor too busy to answer costs these two, not the whole scrape
        log.warning("/metrics: the supervisor did not answer in time; handler times and failures left out")
        return
    for detail in details:
        topic, total = detail.info.topic, detail.timings_total
        buckets = [(repr(bound), float(count)) for bound, count in total.cumulative()]
        seconds.add_metric([topic], [*buckets, ("+Inf", float(total.count))], total.sum)
        for cause, count in detail.failure_counts:
            failures.add_metric([topic, cause], count)
    yield from (seconds, failures)


def health(snap: ManagerSnapshot) -> tuple[bool, str]:
    """(healthy, reason): every pool at its desired size with every worker running and connected."""
    if not snap.started:
        return False, "workers not started"
    if snap.broker.state != "connected":
        return False, f"broker {snap.broker.address} {snap.broker.state}" + (
            f": {snap.broker.detail}" if snap.broker.detail else ""
        )
    problems = [
        f"{r.topic} has {r.serving_workers}/{r.desired_workers} workers serving"
        for r in snap.routes
        if r.shared and r.serving_workers < r.desired_workers
    ]
    if any(w.is_main and not (w.state is SlotState.RUNNING and w.connected) for w in snap.workers):
        problems.append("the main worker is not serving")
    return (not problems, "; ".join(problems) or "ok")


class MetricsServer:
    """Serves /metrics and /healthz on ``host:port`` from a daemon thread."""

    def __init__(self, manager: WorkerManager, port: int, host: str = "127.0.0.1") -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(manager))
        self.manager = manager

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok, reason = health(manager.snapshot())
                    self._reply(200 if ok else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
                else:
                    self._reply(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes every few seconds would flood the log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="routemq-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
