"""Helpers for tests that talk to a real broker and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from engine import WorkerManager
from engine.broker import PrivateMosquitto
from engine.settings import Settings
from engine.snapshot import SlotState

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def settings_for(broker: PrivateMosquitto, group: str, **changes: Any) -> Settings:
    """Settings for a test: its broker, its group, fast restarts."""
    base = Settings(
        broker=broker.host,
        port=broker.port,
        group_name=group,
        client_id="test",
        graceful_timeout=5.0,
        restart_backoff=0.1,
        restart_backoff_max=2.0,
        fleet_status=False,  # on in the tests of the fleet only: one connection less per manager
    )
    return base.replace(**changes)


class Publisher:
    """A plain paho client that publishes JSON payloads and waits for the broker's acks."""

    def __init__(self, broker: PrivateMosquitto, protocol: int = mqtt.MQTTv311) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: Any, qos: int = 1, wait: bool = True) -> mqtt.MQTTMessageInfo:
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        info = self.client.publish(topic, body, qos=qos)
        if wait and qos > 0:
            info.wait_for_publish(10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_records(path: Path) -> list[tuple[int, str, str]]:
    """Lines ``pid id topic`` written by tests.engine.workload handlers."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        pid, ident, topic = line.split(" ", 2)
        records.append((int(pid), ident, topic))
    return records


def handled_ids(path: Path) -> set[str]:
    return {ident for _, ident, _ in read_records(path)}


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it went while we read
        return True


def our_worker_pids() -> set[int]:
    """Every running worker (engine.worker_process, spawned or forked: a forked one's title names
    it) and zygote (engine.zygote_process) on this machine that this test session started."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if (b"engine.worker_process" in cmdline or b"engine.zygote_process" in cmdline) and not process_gone(
            int(entry)
        ):
            pids.add(int(entry))
    return pids


def all_running(manager: WorkerManager) -> bool:
    workers = manager.snapshot().workers
    return bool(workers) and all(w.state is SlotState.RUNNING and w.connected for w in workers)


def http_get(url: str) -> tuple[int, str]:
    """(status, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


_MANAGER_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys, time
    from engine import Router, WorkerManager
    from engine.settings import Settings

    host, port, group, workers, handler, topic, changes = sys.argv[1:8]
    module, name = handler.split(":")
    record = getattr(importlib.import_module(module), name)
    router = Router()
    router.on(topic, record, qos=1, shared=True, worker_count=int(workers))
    router.on("plain/+", record, qos=1)  # served by the main worker
    settings = Settings(broker=host, port=int(port), group_name=group, client_id="managed")  # default timeouts
    settings = settings.replace(**json.loads(changes))
    manager = WorkerManager(router, settings=settings)
    manager.start_workers()
    while not all(w.state.value == "running" for w in manager.snapshot().workers):
        time.sleep(0.05)
    print(json.dumps([w.pid for w in manager.snapshot().workers]), flush=True)
    time.sleep(3600)
    """
)


class ManagerProcess:
    """A manager in a process of its own, which the test can SIGKILL.

    It serves ``handler`` ("module:function") on a shared route ``topic`` with ``workers``
    workers, and on "plain/+" with its main worker. ``worker_pids`` are its workers, running.
    """

    def __init__(
        self, broker: PrivateMosquitto, group: str, workers: int, handler: str, topic: str, **settings: Any
    ) -> None:
        args = [broker.host, str(broker.port), group, str(workers), handler, topic, json.dumps(settings)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MANAGER_SCRIPT, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the manager process exited with {self.process.wait()} before its workers ran"
        self.worker_pids: list[int] = json.loads(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()
        for pid in self.worker_pids:  # a worker that outlived its manager is ours to clean up
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
