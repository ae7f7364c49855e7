"""A manager's status for the fleet, on a real broker: retained, with its snapshot, online while
it runs, offline when it stops, and offline from its last will when it is killed."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine.fleet.control import reply_is_signed, signed
from engine.fleet.snapshot_json import from_json
from engine.fleet.summary import FleetSummary
from engine.settings import Secret
from engine.snapshot import SlotState
from tests.engine.test_worker_manager import one_route_router
from tests.support import ManagerProcess, wait_until

pytestmark = pytest.mark.e2e


class StatusWatcher:
    """Subscribes to every status of a group and keeps the last one per manager."""

    def __init__(self, broker, group: str) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.received: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"routemq/fleet/{group}/+/status", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        manager = message.topic.split("/")[-2]
        status = json.loads(message.payload)
        with self._lock:
            self.latest[manager] = status
            self.received.append((time.monotonic(), manager, status))

    def state_of(self, manager: str) -> str | None:
        with self._lock:
            return self.latest.get(manager, {}).get("state")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def watcher(broker, group_name):
    watching = StatusWatcher(broker, group_name)
    yield watching
    watching.close()


def test_a_running_manager_publishes_its_snapshot_retained_and_offline_when_it_stops(
    broker, group_name, start, watcher
):
    manager = start(one_route_router(worker_count=2), broker, group_name, fleet_status=True, manager_id="edge-a",
                    fleet_status_interval=0.5, username="fleet-user", password=Secret("s3cret-of-the-fleet"))
    # Published at once on every change of state: the workers' running shows without waiting.
    status = wait_until(lambda: (s := watcher.latest.get("edge-a")) and s["state"] == "online"
                        and [w["state"] for w in s["snapshot"]["workers"]] == ["running", "running"] and s,
                        what="an online status with two running workers")
    assert status["manager"] == "edge-a" and status["pid"] > 0 and status["version"] and status["time"] > 0
    assert "s3cret-of-the-fleet" not in json.dumps(status), "no secret in a status"
    snapshot = from_json(status["snapshot"])
    assert snapshot.group == group_name and {w.state for w in snapshot.workers} == {SlotState.RUNNING}
    assert status["summary"] == FleetSummary.of(snapshot).to_json(), "the fleet table's numbers, as the snapshot's"
    assert status["summary"]["live_workers"] == 2 and status["summary"]["broker_state"] == "connected"
    # Retained: a dashboard that subscribes later sees it at once.
    late = StatusWatcher(broker, group_name)
    try:
        wait_until(lambda: late.state_of("edge-a") == "online", what="the retained status")
    finally:
        late.close()
    manager.close()
    # close() returns once the broker has its "offline": a watcher subscribing now reads it retained.
    after = StatusWatcher(broker, group_name)
    try:
        assert wait_until(lambda: after.state_of("edge-a"), what="the retained status") == "offline"
        assert "host" in after.latest["edge-a"], "said by the manager itself (its will names only the manager)"
    finally:
        after.close()


def test_a_change_of_state_is_published_at_once_not_at_the_next_interval(broker, group_name, start, watcher):
    manager = start(one_route_router(), broker, group_name, fleet_status=True, manager_id="edge-b",
                    fleet_status_interval=3600)
    wait_until(lambda: watcher.state_of("edge-b") == "online", what="the first status")
    manager.scale_route("jobs/{name}", 2)
    status = wait_until(lambda: (s := watcher.latest["edge-b"]) and len(s["snapshot"]["workers"]) == 2 and s,
                        what="the new pool size, long before the hour's interval")
    assert status["snapshot"]["routes"][0]["desired_workers"] == 2


def test_a_killed_manager_reads_offline_from_its_last_will(broker, group_name, watcher):
    keepalive = 5
    process = ManagerProcess(broker, group_name, 1, "tests.e2e.helpers:record", "jobs/{name}",
                             manager_id="edge-k", keepalive=keepalive, fleet_status_interval=0.5)
    try:
        wait_until(lambda: watcher.state_of("edge-k") == "online", what="the killed-to-be manager online")
        process.kill()
        killed_at = time.monotonic()
        wait_until(lambda: watcher.state_of("edge-k") == "offline", timeout=keepalive * 1.5 + 2,
                   what="offline from the last will within 1.5 keepalives")
        print(f"\noffline {time.monotonic() - killed_at:.1f} s after SIGKILL (keepalive {keepalive} s)")
        assert watcher.latest["edge-k"] == {"manager": "edge-k", "state": "offline"}
    finally:
        process.close()


class Operator:
    """Publishes commands to a manager's control topic and collects its replies."""

    def __init__(self, broker, group: str) -> None:
        self.replies: dict[str, dict[str, Any]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_reply
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"routemq/fleet/{group}/+/reply", qos=1)
        self.client.loop_start()
        self.group = group

    def _on_reply(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        reply = json.loads(message.payload)
        self.replies[str(reply.get("id"))] = reply

    def send(self, manager: str, payload: str | bytes, reply_id: str) -> dict[str, Any]:
        self.replies.pop(reply_id, None)  # an id sent again (a replay) gets a reply of its own
        self.client.publish(f"routemq/fleet/{self.group}/{manager}/control", payload, qos=1).wait_for_publish(5)
        return wait_until(lambda: self.replies.get(reply_id), what=f"the reply to {reply_id}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_signed_commands_steer_exactly_one_manager_and_every_bad_one_is_refused_changing_nothing(
    broker, group_name, start, watcher
):
    key = "operators-key-1"
    keyed = start(one_route_router(), broker, group_name, fleet_status=True, manager_id="edge-a",
                  fleet_control_key=Secret(key))
    keyless = start(one_route_router(), broker, group_name, fleet_status=True, manager_id="edge-b")
    wait_until(lambda: watcher.state_of("edge-a") == watcher.state_of("edge-b") == "online", what="both online")
    operator = Operator(broker, group_name)

    def sizes() -> tuple[int, int]:
        return keyed.snapshot().routes[0].desired_workers, keyless.snapshot().routes[0].desired_workers

    try:
        to_a = f"{group_name}/edge-a"
        good = signed("scale-1", to_a, "scale", {"route": "jobs/{name}", "count": 2}, time.time(), key)
        reply = operator.send("edge-a", json.dumps(good), "scale-1")
        assert (reply["id"], reply["ok"]) == ("scale-1", True) and reply_is_signed(reply, key), "a signed ok"
        assert sizes() == (2, 1), "exactly that manager's pool"
        refusals = {
            "wrong-key": signed("wrong-key", to_a, "scale", {"route": "jobs/{name}", "count": 5}, time.time(), "no"),
            "stale": signed("stale", to_a, "scale", {"route": "jobs/{name}", "count": 5}, time.time() - 120, key),
            "scale-1": good,  # replayed
            "no-route": signed("no-route", to_a, "scale", {"route": "elsewhere/+", "count": 5}, time.time(), key),
            # edge-b's command, replayed to edge-a
            "for-b": signed("for-b", f"{group_name}/edge-b", "scale", {"route": "jobs/{name}", "count": 5},
                            time.time(), key),
            "sig-not-hex": {"id": "sig-not-hex", "to": to_a, "verb": "stop", "args": {}, "ts": time.time(),
                            "sig": "é" * 64},
        }
        reasons = {name: operator.send("edge-a", json.dumps(command), name) for name, command in refusals.items()}
        assert reasons["wrong-key"]["error"] == "bad signature"
        assert reasons["stale"]["error"].startswith("stale: ts is")
        assert reasons["scale-1"]["error"].startswith("replayed")
        assert reasons["no-route"]["error"].startswith("scale: no shared route 'elsewhere/+'")
        assert reasons["for-b"]["error"].startswith("addressed to ")
        assert reasons["sig-not-hex"]["error"] == "malformed: sig must be 64 lowercase hex digits"
        assert all(r["ok"] is False for r in reasons.values())
        malformed = operator.send("edge-a", b"{not json", "None")
        assert (malformed["id"], malformed["ok"], malformed["error"]) == (None, False, "malformed: not JSON")
        disabled = signed("keyless", f"{group_name}/edge-b", "scale", {"route": "jobs/{name}", "count": 3},
                          time.time(), key)
        assert operator.send("edge-b", json.dumps(disabled), "keyless")["error"].startswith(
            "remote control is disabled")
        assert sizes() == (2, 1), "no refused command changed anything"
        # And after all that, remote control still works.
        again = signed("scale-2", to_a, "scale", {"route": "jobs/{name}", "count": 1}, time.time(), key)
        assert operator.send("edge-a", json.dumps(again), "scale-2")["ok"] is True and sizes() == (1, 1)
    finally:
        operator.close()


def test_stopping_while_the_workers_stop_then_online_and_idle(broker, group_name, start, watcher):
    manager = start(one_route_router(), broker, group_name, fleet_status=True, manager_id="edge-s",
                    fleet_status_interval=3600)
    wait_until(lambda: watcher.state_of("edge-s") == "online", what="online")
    manager.stop_workers()
    wait_until(lambda: (s := watcher.latest["edge-s"]) and s["state"] == "online"
               and [w["state"] for w in s["snapshot"]["workers"]] == ["exited"], what="online again, stopped")
    states = [status["state"] for _, manager_id, status in watcher.received if manager_id == "edge-s"]
    assert "stopping" in states and states.index("stopping") < len(states) - 1
