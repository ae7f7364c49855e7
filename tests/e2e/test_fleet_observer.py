"""FleetObserver on a real broker: what it makes of statuses, good, stale and hostile, and of
replies that are not for it."""

from __future__ import annotations

import json
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine.fleet.control import signature, signed_reply
from engine.fleet.observer import FleetObserver, RemoteControlOff, Reply
from engine.fleet.snapshot_json import to_json
from engine.settings import Secret
from engine.snapshot import BrokerInfo, ManagerSnapshot, SlotState, WorkerInfo
from tests.support import settings_for, wait_until

pytestmark = pytest.mark.e2e

KEY = "key-of-the-operators"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot_json(group: str, workers: int) -> dict[str, Any]:
    snapshot = ManagerSnapshot(
        group=group, broker=BrokerInfo("b:1883", "connected"), messages_per_second=12.5, failed=3,
        workers=tuple(WorkerInfo(f"r#{i}", "r", i, f"c{i}", SlotState.RUNNING, pid=100 + i, connected=True)
                      for i in range(workers)))
    return to_json(snapshot)


class Publisher:
    def __init__(self, broker, group: str) -> None:
        self.group = group
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def status(self, manager: str, payload: dict[str, Any] | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        topic = f"routemq/fleet/{self.group}/{manager}/status"
        self.client.publish(topic, data, qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        # Retained: cleared for the next test.
        for manager in ("edge-a", "edge-b", "edge-c", "liar", "junk", "broken", "lazy"):
            self.client.publish(f"routemq/fleet/{self.group}/{manager}/status", b"", qos=1, retain=True)
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(broker, group_name):
    made = Publisher(broker, group_name)
    yield made
    made.close()


def online(manager: str, group: str, workers: int = 2, interval: float = 1.0) -> dict[str, Any]:
    return {"manager": manager, "state": "online", "host": "h1", "pid": 42, "version": "1.0", "time": 1.7e9,
            "interval": interval, "snapshot": snapshot_json(group, workers)}


def test_retained_statuses_are_all_in_once_synced_and_go_stale_after_three_intervals(broker, group_name, publisher):
    publisher.status("edge-a", online("edge-a", group_name, workers=3))
    publisher.status("edge-b", {"manager": "edge-b", "state": "offline"})  # a last will, nothing known before
    clock = Clock()
    old = online("edge-c", group_name)
    old["time"] -= 100  # its manager's last word, 100 s ago: kept by the broker since
    publisher.status("edge-c", old)
    observer = FleetObserver(settings_for(broker, group_name), group_name, clock=clock, wall=lambda: 1.7e9).start()
    try:
        assert observer.wait_synced(10)
        a, b, c = observer.managers()  # in order of their ids, all there once synced: no waiting
        # A retained status is as old as its sender's clock says, not as new as its delivery.
        assert (c.manager, c.state, round(c.age)) == ("edge-c", "stale", 100)
        assert (a.manager, a.state, a.host, a.pid, a.live_workers, a.messages_per_second, a.failed,
                a.broker_state) == ("edge-a", "online", "h1", 42, 3, 12.5, 3, "connected")
        assert (b.manager, b.state, b.snapshot, b.reachable) == ("edge-b", "offline", None, False)
        clock.now += 3.0
        assert observer.manager("edge-a").state == "online", "three intervals is not yet stale"
        clock.now += 0.1
        stale = observer.manager("edge-a")
        assert (stale.state, stale.live_workers, stale.reachable) == ("stale", 3, False)
        assert observer.manager("edge-b").state == "offline", "offline never reads stale"
        # The will arrives: offline, and what was known of the manager is kept.
        publisher.status("edge-a", {"manager": "edge-a", "state": "offline"})
        gone = wait_until(lambda: (m := observer.manager("edge-a")) and m.state == "offline" and m,
                          what="edge-a offline")
        assert (gone.host, gone.live_workers, gone.messages_per_second) == ("h1", 3, 0.0)
    finally:
        observer.close()


def test_a_hostile_status_is_a_problem_of_its_manager_never_an_error(broker, group_name, publisher):
    observer = FleetObserver(settings_for(broker, group_name), group_name).start()
    try:
        assert observer.wait_synced(10)
        publisher.status("edge-a", online("edge-a", group_name))
        publisher.status("liar", online("edge-a", group_name))  # claims another manager's name
        publisher.status("junk", b"\xff{not json")
        broken = online("broken", group_name)
        broken["snapshot"]["workers"][0]["state"] = "dancing"
        broken["pid"] = "not a pid"
        publisher.status("broken", broken)  # no summary (an older manager): its snapshot is read at once
        lazy = online("lazy", group_name)
        lazy["summary"] = {"live_workers": 2, "desired_workers": 2, "serving_workers": 2,
                           "messages_per_second": 1.5, "failed": 0, "broker_state": "connected"}
        lazy["snapshot"]["routes"] = "not a list"
        publisher.status("lazy", lazy)
        seen = wait_until(lambda: len(m := observer.managers()) == 5 and {x.manager: x for x in m},
                          what="five managers")
        assert seen["edge-a"].problem is None and seen["edge-a"].live_workers == 2
        assert seen["liar"].problem == "status names manager 'edge-a', not the one of its topic"
        assert seen["junk"].problem == "status is not JSON"
        assert seen["broken"].problem == "snapshot.workers[0].state: unknown state 'dancing'"
        assert seen["broken"].pid is None and seen["broken"].snapshot is None
        # With a summary, the table's numbers come from it and the snapshot is read when asked for.
        assert (seen["lazy"].problem, seen["lazy"].live_workers, seen["lazy"].messages_per_second) == (None, 2, 1.5)
        assert seen["lazy"].snapshot is None
        assert seen["lazy"].snapshot_problem == "snapshot.routes: not a list of at most 4096"
        # A cleared retained status forgets the manager.
        publisher.status("junk", b"")
        wait_until(lambda: observer.manager("junk") is None, what="junk forgotten")
    finally:
        observer.close()


def test_without_a_key_nothing_is_sent(broker, group_name):
    observer = FleetObserver(settings_for(broker, group_name), group_name).start()
    try:
        assert observer.wait_synced(10) and not observer.can_sign
        with pytest.raises(RemoteControlOff, match="FLEET_CONTROL_KEY is not set"):
            observer.send("edge-a", "stop")
    finally:
        observer.close()


def test_a_reply_counts_only_from_the_manager_the_command_went_to(broker, group_name, publisher):
    commands: list[dict[str, Any]] = []
    publisher.client.on_message = lambda c, u, message: commands.append(json.loads(message.payload))
    publisher.client.subscribe(f"routemq/fleet/{group_name}/+/control", qos=1)
    observer = FleetObserver(settings_for(broker, group_name, fleet_control_key=Secret(KEY)), group_name).start()
    try:
        assert observer.wait_synced(10)
        reply = observer.send("edge-a", "scale", {"route": "r", "count": 2})
        command = wait_until(lambda: commands and commands[0], what="the command on edge-a's control topic")
        assert command["verb"] == "scale" and command["sig"] == signature(command, KEY)

        def answer(manager: str, body: dict[str, Any]) -> None:
            topic = f"routemq/fleet/{group_name}/{manager}/reply"
            publisher.client.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)

        assert command["to"] == f"{group_name}/edge-a"
        answer("edge-b", signed_reply(command["id"], None, KEY))  # the wrong manager: ignored
        answer("edge-a", signed_reply("someone-elses", None, KEY))  # another sender's command: ignored
        answer("edge-a", {"id": command["id"], "ok": True})  # an unsigned ok: forged, ignored
        answer("edge-a", {**signed_reply(command["id"], None, "not-the-key")})  # signed by another key
        answer("edge-a", signed_reply(command["id"], "scale: no shared route 'r'", KEY))
        assert reply.result(timeout=10) == Reply("edge-a", command["id"], False, "scale: no shared route 'r'")
        # A signed ok is believed.
        second = observer.send("edge-a", "restart-dead")
        command = wait_until(lambda: len(commands) == 2 and commands[1], what="the second command")
        answer("edge-a", signed_reply(command["id"], None, KEY))
        assert second.result(timeout=10) == Reply("edge-a", command["id"], True, None)
    finally:
        observer.close()
