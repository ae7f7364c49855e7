"""The supervisor's boundaries against its own workers (issue 11): a worker stopped in the middle
of a message, a handler writing half a frame or a crafted pickle to the manager's socket, and
children a handler forks. Real broker, real worker processes, real signals.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from engine import Router, WorkerManager
from engine.broker import PrivateMosquitto
from engine.metrics import MetricsServer
from engine.snapshot import SlotState
from tests.e2e import hostile_handlers as hostile
from tests.support import ManagerProcess, Publisher, http_get, process_gone, wait_until

pytestmark = pytest.mark.e2e


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def worker(manager: WorkerManager, slot: str):
    return next(w for w in manager.snapshot().workers if w.slot == slot)


def two_pools(attack) -> Router:
    router = Router()
    router.on("attack/+", attack, qos=1, shared=True)
    router.on("steady/+", hostile.record, qos=1, shared=True)
    return router


def events_of(manager: WorkerManager, slot: str) -> list[str]:
    return [e.message for e in manager.events_since(0) if e.slot == slot]


def test_a_worker_stopped_mid_message_delays_nothing_else(start, broker: PrivateMosquitto, group_name, tmp_path):
    out = tmp_path / "out"
    manager = start(two_pools(hostile.stop_mid_frame), broker, group_name, hang_timeout=4.0, graceful_timeout=2.0)
    metrics = MetricsServer(manager, 0).start()
    try:
        steady = worker(manager, "steady/+#0").pid
        with Publisher(broker) as publisher:
            publisher.publish("attack/1", {"out": str(out)})
        stopped = wait_until(lambda: lines(out)[1:2], what="the attacking worker stopped itself")
        stopped_pid = int(stopped[0])
        wait_until(lambda: psutil.Process(stopped_pid).status() == psutil.STATUS_STOPPED,
                   what="the worker in the stopped state")
        # Meanwhile another pool's worker dies: it is replaced, and /metrics shows the new one.
        os.kill(steady, signal.SIGKILL)
        wait_until(lambda: worker(manager, "steady/+#0").state is SlotState.RUNNING
                   and worker(manager, "steady/+#0").pid not in (None, steady), what="the steady worker replaced")
        restarted = 'routemq_worker_restarts_total{route="steady/+",slot="steady/+#0"} 1.0'
        wait_until(lambda: restarted in http_get(f"http://{metrics.address}/metrics")[1], what="/metrics moving on")
        # The stopped worker says nothing more: it is hung, killed and replaced.
        wait_until(lambda: worker(manager, "attack/+#0").pid not in (None, stopped_pid), timeout=30,
                   what="the stopped worker replaced")
        assert any("hung" in message for message in events_of(manager, "attack/+#0"))
    finally:
        metrics.stop()
    began = time.monotonic()
    manager.stop_workers()
    assert time.monotonic() - began < 2.0 + 5.0  # the graceful timeout, then SIGKILL


def test_a_handler_writing_half_a_frame_does_not_stall_the_supervisor(start, broker, group_name, tmp_path):
    out = tmp_path / "out"
    manager = start(two_pools(hostile.partial_frame), broker, group_name, hang_timeout=4.0)
    steady = worker(manager, "steady/+#0").pid
    with Publisher(broker) as publisher:
        publisher.publish("attack/1", {"out": str(out)})
        wait_until(lambda: lines(out), what="the half frame written")
        os.kill(steady, signal.SIGKILL)
        wait_until(lambda: worker(manager, "steady/+#0").state is SlotState.RUNNING
                   and worker(manager, "steady/+#0").pid not in (None, steady), what="the steady worker replaced")
        # The worker's next heartbeats land inside the half frame: garbage, so it is killed
        # for a protocol violation (or as hung when it has not sent enough to fill the frame).
        wait_until(lambda: any("protocol violation" in m or "hung" in m for m in events_of(manager, "attack/+#0")),
                   timeout=30, what="the worker killed")
        wait_until(lambda: worker(manager, "attack/+#0").state is SlotState.RUNNING, what="the slot serving again")


def test_a_crafted_pickle_from_a_handler_runs_nothing_in_the_manager(start, broker, group_name, tmp_path):
    out, marker = tmp_path / "out", tmp_path / "pwned"
    manager = start(two_pools(hostile.send_pickle), broker, group_name)
    with Publisher(broker) as publisher:
        publisher.publish("attack/1", {"out": str(out), "marker": str(marker)})
    wait_until(lambda: any("protocol violation" in m for m in events_of(manager, "attack/+#0")),
               what="the worker killed for a protocol violation")
    wait_until(lambda: worker(manager, "attack/+#0").state is SlotState.RUNNING, what="the slot serving again")
    assert not marker.exists()


def test_children_a_handler_forked_die_with_their_worker_when_it_stops(start, broker, group_name, tmp_path):
    out = tmp_path / "out"
    manager = start(two_pools(hostile.fork_sleeper), broker, group_name)
    with Publisher(broker) as publisher:
        publisher.publish("attack/1", {"out": str(out)})
    child = int(wait_until(lambda: lines(out), what="a child forked")[0])
    assert not process_gone(child)
    manager.stop_workers()
    wait_until(lambda: process_gone(child), timeout=5, what="the handler's child gone")


def test_children_a_handler_forked_die_with_a_killed_worker(start, broker, group_name, tmp_path):
    out = tmp_path / "out"
    manager = start(two_pools(hostile.fork_sleeper), broker, group_name)
    pid = worker(manager, "attack/+#0").pid
    with Publisher(broker) as publisher:
        publisher.publish("attack/1", {"out": str(out)})
    child = int(wait_until(lambda: lines(out), what="a child forked")[0])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: process_gone(child), timeout=5, what="the handler's child gone")


def test_children_a_handler_forked_die_when_the_manager_is_killed(broker, group_name, tmp_path):
    out = tmp_path / "out"
    manager = ManagerProcess(broker, group_name, 1, "tests.e2e.hostile_handlers:fork_sleeper", "attack/+")
    try:
        with Publisher(broker) as publisher:
            publisher.publish("attack/1", {"out": str(out)})
        child = int(wait_until(lambda: lines(out), what="a child forked")[0])
        manager.kill()
        wait_until(lambda: process_gone(child), timeout=10, what="the handler's child gone")
        wait_until(lambda: all(process_gone(pid) for pid in manager.worker_pids), timeout=10, what="workers gone")
    finally:
        manager.close()


def test_a_broker_that_never_answers_connect_is_reported_as_such(managers, group_name):
    """A port that accepts TCP and says nothing (a blackholed or wrong service): the worker says
    no CONNACK came, rather than paho's "protocol error"."""
    import socket
    import threading

    from engine.settings import Settings

    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        router = Router()
        router.on("quiet/+", hostile.record, qos=1, shared=True)
        port = server.getsockname()[1]
        settings = Settings(broker="127.0.0.1", port=port, group_name=group_name, keepalive=5, graceful_timeout=2)
        manager = WorkerManager(router, group_name, settings=settings)
        managers.append(manager)
        manager.start_workers()
        detail = wait_until(lambda: "no CONNACK" in worker(manager, "quiet/+#0").detail
                            and worker(manager, "quiet/+#0").detail, timeout=30, what="the worker saying why")
        assert f"127.0.0.1:{port}" in detail
        assert manager.snapshot().broker.state == "unreachable"
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in accepted:
            conn.close()
