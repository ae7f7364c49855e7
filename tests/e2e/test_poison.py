"""Poison messages (issue 11): a QoS 1 message whose handler kills its worker is redelivered after
every restart; after WORKER_POISON_DEATHS deaths it is set aside to the dead-letter topic, the
other messages are all handled, and the route serves on. Real broker, real processes.
"""

from __future__ import annotations

import json
import queue

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine import Router
from engine.broker import PrivateMosquitto
from engine.snapshot import SlotState
from tests.engine import workload
from tests.support import Publisher, handled_ids, wait_until

pytestmark = pytest.mark.e2e

ROUTE = "poison/{name}"


class DeadLetters:
    """A subscriber on the dead-letter topics of one group, with a persistent session of its own."""

    def __init__(self, broker: PrivateMosquitto, group: str) -> None:
        self.received: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        subscribed = queue.SimpleQueue[bool]()
        self.client.on_message = lambda c, u, message: self.received.put(message)
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"routemq/dead-letter/{group}/#", qos=1)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_message_that_kills_its_worker_is_set_aside_and_everything_else_is_handled(
    start, broker: PrivateMosquitto, group_name, tmp_path
):
    out = tmp_path / "records"
    router = Router()
    router.on(ROUTE, workload.record_param, qos=1, shared=True)
    letters = DeadLetters(broker, group_name)
    try:
        manager = start(router, broker, group_name, restart_backoff=0.1, restart_backoff_max=1.0,
                        crash_loop_restarts=5, poison_deaths=3)
        with Publisher(broker) as publisher:
            for n in range(50):
                publisher.publish("poison/good", {"id": f"a{n}", "out": str(out)})
            publisher.publish("poison/bad", {"id": "poison", "crash": True, "out": str(out)})
            for n in range(50):
                publisher.publish("poison/good", {"id": f"b{n}", "out": str(out)})
        expected = {f"a{n}" for n in range(50)} | {f"b{n}" for n in range(50)}
        wait_until(lambda: expected <= handled_ids(out), timeout=60, what="the 100 good messages handled")
        letter = letters.received.get(timeout=30)
        envelope = json.loads(letter.payload)
        assert letter.topic.startswith(f"routemq/dead-letter/{group_name}/poison_name-")
        assert envelope["topic"] == "poison/bad"
        assert json.loads(envelope["payload"]) == {"id": "poison", "crash": True, "out": str(out)}
        assert envelope["payload_encoding"] == "utf-8"
        assert envelope["qos"] == 1 and envelope["deaths"] == 3
        assert envelope["last_exit"].startswith("13")
        assert "poison" not in handled_ids(out)

        def route():
            return next(r for r in manager.snapshot().routes if r.topic == ROUTE)

        wait_until(lambda: route().dead_lettered == 1, what="the route counting its dead letter")
        assert route().failed == 3  # each death holding the message is a failure of the route
        worker = manager.snapshot().workers[0]
        assert worker.state is SlotState.RUNNING and worker.restarts == 3  # serving, never crash-looping
        kinds = [e.kind for e in manager.events_since(0)]
        assert "poison" in kinds and "dead-letter" in kinds
        with Publisher(broker) as publisher:  # and it goes on serving
            publisher.publish("poison/good", {"id": "after", "out": str(out)})
        wait_until(lambda: "after" in handled_ids(out), what="a message after the poison handled")
    finally:
        letters.close()
