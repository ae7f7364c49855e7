"""BufferedClient on a real broker: paho's small reads served from one large recv, and a loud
failure if a paho release stops calling the method it overrides (``Client._sock_recv``)."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from engine.worker.buffered_client import BufferedClient
from tests.support import wait_until

MESSAGES = 2000


def pump(client: BufferedClient) -> bool:
    """One step of the client's loop. What is buffered, the socket's selector cannot see: it is
    all read first, as engine/worker/client_io.py does."""
    while client.buffered:
        if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
            return False
    return client.loop(0.05) == mqtt.MQTT_ERR_SUCCESS


def test_a_burst_is_read_with_one_recv_per_64_kib_not_three_per_message(broker, group_name):
    topic = f"{group_name}/burst"
    received: list[bytes] = []
    reader = BufferedClient(CallbackAPIVersion.VERSION2)
    subscribed: list[int] = []
    reader.on_message = lambda client, userdata, message: received.append(message.payload)
    reader.on_subscribe = lambda client, userdata, mid, reasons, properties: subscribed.append(mid)
    reader.connect(broker.host, broker.port)
    reader.subscribe(topic, qos=0)
    wait_until(lambda: pump(reader) and subscribed, what="the SUBACK")
    writer = mqtt.Client(CallbackAPIVersion.VERSION2)
    writer.connect(broker.host, broker.port)
    writer.loop_start()
    try:
        # Published while the reader does not read: the burst waits in its socket.
        for i in range(MESSAGES):
            writer.publish(topic, f"message {i:05d} " + "x" * 40, qos=0)
        writer.publish(topic, b"end", qos=1).wait_for_publish(10)
        reads_before, served_before = reader.socket_reads, reader.reads_served
        deadline = time.monotonic() + 15  # a poll with a deadline: wait_until's pauses would be 40 s here
        while len(received) < MESSAGES + 1 and time.monotonic() < deadline:
            pump(reader)
        assert len(received) == MESSAGES + 1, f"{len(received)} of {MESSAGES + 1} messages read in 15 s"
    finally:
        writer.loop_stop()
        writer.disconnect()
        reader.disconnect()
    served = reader.reads_served - served_before
    reads = reader.socket_reads - reads_before
    assert served >= 3 * MESSAGES, (
        f"paho served {served} reads for {MESSAGES} messages through BufferedClient._sock_recv: a paho release "
        "that no longer reads through Client._sock_recv makes the buffering silently stop; update "
        "engine/worker/buffered_client.py for it")
    assert reads <= MESSAGES / 20, f"{reads} recv calls for {MESSAGES} messages: the buffer is not used"
    assert received[:3] == [f"message {i:05d} ".encode() + b"x" * 40 for i in range(3)], "bytes in order, whole"

