"""BufferedClient: paho's small reads served from one large recv, plain PUBLISH packets parsed
without paho exactly as paho decodes them, and a loud failure on a real broker if a paho release
stops taking either hook (``Client._sock_recv``; the private members take_publishes reads)."""

from __future__ import annotations

import struct
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt._packet import decode_publish
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



# --- PUBLISH packets parsed without paho (take_publishes) -------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, qos: int = 0, mid: int = 0, v5: bool = False,
                   properties: bytes = b"", flags: int = 0) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        body += varint(len(properties)) + properties
    return bytes([0x30 | qos << 1 | flags]) + varint(len(body) + len(payload)) + body + payload


class PretendSocket:
    def close(self) -> None:
        pass


def buffered(data: bytes, v5: bool = False) -> BufferedClient:
    """A client whose buffer holds ``data`` read from its (pretend) socket."""
    client = BufferedClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    client._sock = client._buffer_socket = PretendSocket()  # type: ignore[assignment]
    client._buffer = data
    return client


def as_paho_reads_it(packet: bytes, v5: bool) -> tuple[str, bytes, int, int]:
    header, rest = packet[0], packet[1:]
    while rest[0] & 0x80:  # the remaining length
        rest = rest[1:]
    result = decode_publish(header, rest[1:], mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    return result.topic.decode(), result.payload, result.qos, result.mid


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5"])
def test_plain_publish_packets_are_taken_as_paho_decodes_them(v5):
    packets = [
        publish_packet(b"a/b", b'{"i": 1}', v5=v5),
        publish_packet(b"jobs/\xc3\xa9t\xc3\xa9", b"x" * 200, qos=1, mid=513, v5=v5),  # 2-byte length
        publish_packet(b"big", b"y" * 20_000, qos=1, mid=65535, v5=v5, flags=0x09),  # 3 bytes; dup, retain
        publish_packet(b"t", b"", v5=v5),
    ]
    client = buffered(b"".join(packets), v5)
    taken = client.take_publishes(100)
    assert [tuple(m) for m in taken] == [as_paho_reads_it(p, v5) for p in packets]
    assert client.buffered == 0 and client.publishes_taken == 4


@pytest.mark.parametrize(
    ("stopper", "v5"),
    [
        (publish_packet(b"q2", b"p", qos=2, mid=7), False),  # QoS 2: paho's exchange of PUBREC/PUBREL
        (publish_packet(b"props", b"p", v5=True, properties=b"\x01\x01"), True),  # MQTT 5 properties
        (publish_packet(b"bad/\xff", b"p"), False),  # not UTF-8: paho hands it on, the worker fails it
        (publish_packet(b"", b"p"), False),  # an empty topic: malformed in 3.1.1
        (publish_packet(b"", b"p", v5=True), True),  # a topic alias would need properties
        (b"\xd0\x00", False),  # PINGRESP
        (publish_packet(b"cut", b"p" * 300)[:-1], False),  # the rest is still in the socket
        (b"\x30\xff\xff\xff\xff\x7f", False),  # a remaining length longer than MQTT allows
        (b"\x30\x05\x00\x09abc", False),  # a topic longer than its packet
    ],
    ids=["qos2", "properties", "not utf8", "empty topic", "empty topic v5", "pingresp", "cut", "length", "topic"],
)
def test_what_is_not_a_plain_publish_is_left_where_it_is_for_paho(stopper, v5):
    first = publish_packet(b"first", b"1", v5=v5)
    cut = len(stopper) > 100  # the packet cut short ends the buffer: the rest is still in the socket
    after = b"" if cut else publish_packet(b"after", b"2", v5=v5)
    client = buffered(first + stopper + after, v5)
    assert [m.topic for m in client.take_publishes(100)] == ["first"]
    assert client.buffered == len(stopper) + len(after)
    assert client.take_publishes(100) == [], "taken only once paho has read it"


def test_no_more_are_taken_than_asked_for_nor_while_paho_is_inside_a_packet():
    client = buffered(b"".join(publish_packet(b"t", str(i).encode()) for i in range(5)))
    assert [m.payload for m in client.take_publishes(2)] == [b"0", b"1"]
    client._in_packet["command"] = 0x30
    assert client.take_publishes(100) == []
    client._in_packet["command"] = 0
    assert [m.payload for m in client.take_publishes(100)] == [b"2", b"3", b"4"]


def test_a_buffer_read_from_an_earlier_connection_is_not_taken():
    client = buffered(publish_packet(b"t", b"old"))
    client._sock = PretendSocket()  # type: ignore[assignment]  # reconnected
    assert client.take_publishes(100) == []


@pytest.mark.parametrize(("protocol", "qos"), [(mqtt.MQTTv311, 0), (mqtt.MQTTv311, 1), (mqtt.MQTTv5, 1)],
                         ids=["3.1.1 qos0", "3.1.1 qos1", "5 qos1"])
def test_a_burst_from_a_real_broker_is_taken_without_paho(broker, group_name, protocol, qos):
    """As engine/worker/client_io.py reads: take_publishes first, loop_read for the rest. Fails
    loudly when a paho release changes the private members take_publishes relies on."""
    topic = f"{group_name}/taken"
    received: list[tuple[str, bytes]] = []
    reader = BufferedClient(CallbackAPIVersion.VERSION2, protocol=protocol, manual_ack=True)
    subscribed: list[int] = []
    reader.on_message = lambda client, userdata, message: received.append((message.topic, message.payload))
    reader.on_subscribe = lambda client, userdata, mid, reasons, properties: subscribed.append(mid)
    reader.connect(broker.host, broker.port)
    reader.subscribe(topic, qos=qos)
    wait_until(lambda: pump(reader) and subscribed, what="the SUBACK")
    writer = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    writer.connect(broker.host, broker.port)
    writer.loop_start()
    try:
        for i in range(MESSAGES):
            writer.publish(topic, f"message {i:05d} " + "x" * 40, qos=qos)
        writer.publish(topic, b"end", qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 15
        while len(received) < MESSAGES + 1 and time.monotonic() < deadline:
            taken = reader.take_publishes(100)
            for message in taken:
                received.append((message.topic, message.payload))
                reader.ack(message.mid, message.qos)
            if not taken:  # the next packet is paho's, or nothing is buffered
                reader.loop_read() if reader.buffered else reader.loop(0.05)
        assert len(received) == MESSAGES + 1, f"{len(received)} of {MESSAGES + 1} messages read in 15 s"
    finally:
        writer.loop_stop()
        writer.disconnect()
        reader.disconnect()
    assert received == [(topic, f"message {i:05d} ".encode() + b"x" * 40) for i in range(MESSAGES)] + [(topic, b"end")]
    assert reader.publishes_taken >= MESSAGES * 0.9, (
        f"{reader.publishes_taken} of {MESSAGES} messages parsed by take_publishes: a paho release whose "
        "private members (_sock, _in_packet, _protocol) changed makes it silently give everything to paho")
