"""A lean MQTT 3.1.1 publisher, run as its own process by the benchmarks.

Why not paho: on a 2-core machine the publisher competes for CPU with the broker and the
process being measured. Encoding packets with a few ``struct`` calls and writing them in large
chunks costs a small fraction of what paho's publish path costs per message, so the measured
subscriber, not the publisher, sets the pace. The publisher speaks 3.1.1 whatever protocol the
subscriber uses; the broker translates.

Modes:
- burst (default): ``count`` messages as fast as the socket takes them; payload ``{**fields, "i": i}``;
- paced (``--rate R``): one message every 1/R s; payload ``{**fields, "t": time.time_ns()}``
  taken just before the send, for latency.
QoS 1 waits for every PUBACK; QoS 0 ends with a PINGREQ/PINGRESP round trip, which the broker
answers only after it has processed every PUBLISH before it. Exit status 0 means all delivered
to the broker.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

CHUNK = 64 * 1024
PUBACK_SIZE = 4  # fixed header (2) + packet id (2)
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


def varint(n: int) -> bytes:
    """MQTT's remaining-length encoding."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    name = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + struct.pack("!H", keepalive) + struct.pack("!H", len(name)) + name
    return b"\x10" + varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


def message_id(i: int) -> int:
    # QoS 1 ids may wrap: the broker does not deduplicate incoming QoS 1 ids.
    return i % 65535 + 1


def open_session(host: str, port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id))
    connack = _read_exactly(sock, 4)
    if connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"publisher: broker refused the connection: {connack!r}")
    return sock


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise SystemExit("publisher: broker closed the connection")
        data += more
    return data


class AckCounter(threading.Thread):
    """Reads the broker's replies: counts PUBACKs (4 bytes each) and notices the PINGRESP."""

    def __init__(self, sock: socket.socket, expected_bytes: int) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.expected_bytes = expected_bytes
        self.received = 0
        self.done = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(None)
        while self.received < self.expected_bytes:
            data = self.sock.recv(CHUNK)
            if not data:
                break
            self.received += len(data)
        self.done.set()


def burst(sock: socket.socket, topic: bytes, count: int, qos: int, fields: dict[str, object]) -> None:
    # Payloads and packets are built before the first send so the send loop is pure I/O.
    prefix = json.dumps(fields)[:-1] + (', "i": ' if fields else '"i": ')
    packets = b"".join(publish_packet(topic, f"{prefix}{i}}}".encode(), qos, message_id(i)) for i in range(count))
    view = memoryview(packets)
    for offset in range(0, len(view), CHUNK):
        sock.sendall(view[offset : offset + CHUNK])


def paced(sock: socket.socket, topic: bytes, count: int, qos: int, fields: dict[str, object], rate: float) -> None:
    prefix = json.dumps(fields)[:-1] + (', "t": ' if fields else '"t": ')
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(publish_packet(topic, f"{prefix}{time.time_ns()}}}".encode(), qos, message_id(i)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lean MQTT 3.1.1 publisher for the benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--fields", default="{}", help="JSON object merged into every payload")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)")
    parser.add_argument("--client-id", default="bench-publisher")
    args = parser.parse_args(argv)
    fields = json.loads(args.fields)
    sock = open_session(args.host, args.port, args.client_id)
    # Replies expected: a PUBACK per message at QoS 1, then the 2-byte PINGRESP.
    acks = AckCounter(sock, (PUBACK_SIZE * args.count if args.qos else 0) + 2)
    acks.start()
    topic = args.topic.encode()
    if args.rate > 0:
        paced(sock, topic, args.count, args.qos, fields, args.rate)
    else:
        burst(sock, topic, args.count, args.qos, fields)
    sock.sendall(PINGREQ)
    delivered = acks.done.wait(timeout=120)
    sock.sendall(DISCONNECT)
    sock.close()
    if not delivered:
        print(f"publisher: only {acks.received} of {acks.expected_bytes} reply bytes arrived", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
