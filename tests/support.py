"""Helpers for tests that talk to a real broker and real worker processes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from engine.broker import PrivateMosquitto
from engine.settings import Settings

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
    except FileNotFoundError:
        return True


def our_worker_pids() -> set[int]:
    """Every running engine.worker_process on this machine that this test session started."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"engine.worker_process" in cmdline and not process_gone(int(entry)):
            pids.add(int(entry))
    return pids
