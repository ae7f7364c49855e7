"""BufferedClient: a paho client that reads its socket in 64 KiB gulps and takes plain PUBLISH
packets out of them itself.

paho reads each packet with about three ``recv`` calls (the fixed header's first byte, the
remaining length a byte at a time, then the rest): some 4 µs a message of system calls and
their Python wrapping, a fifth of a small message's cost. Here one ``recv`` of up to READ_SIZE
bytes fills a buffer from which paho's small reads are served, so a burst of messages costs one
system call per 64 KiB instead of three per message.

Even served from the buffer, paho's way through a PUBLISH (``_packet_read``, its per-packet
dict, ``decode_publish``, an ``MQTTMessage`` with a ``threading.Condition`` inside, the
``on_message`` dispatch under two locks) took more than half of a worker's time per message.
:meth:`BufferedClient.take_publishes` parses the PUBLISH packets lying whole in the buffer
directly into :class:`Publish` tuples. It takes only what needs nothing else of paho: QoS 0
and 1 (acknowledged by the worker with ``ack``, manual_ack), a valid UTF-8 topic, and in MQTT 5
no properties. Anything else (QoS 2, properties, a packet cut at the end of the buffer, other
packet types, malformed ones) is left where it is for paho's ``loop_read``, which reads it
from the same buffer exactly as before. Messages taken here do not go through paho's
``on_message`` dispatch: ``message_callback_add`` filters are not supported on this client.

This overrides ``Client._sock_recv`` and reads ``_sock``, ``_in_packet``, ``_protocol`` and
``_last_bytes_received``, private members of paho-mqtt: the version is pinned to the minor
versions it was tested with (pyproject.toml), and tests/engine/test_buffered_client.py fails
loudly when the hooks stop taking effect (it counts the reads served against the messages).

Data in the buffer is invisible to the selector: whoever reads must keep calling
``take_publishes`` and ``loop_read`` while :attr:`buffered` is non-zero
(engine/worker/client_io.py does).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion

READ_SIZE = 65536
_PUBLISH_QOS_0_1 = 0x30  # the fixed header's first byte & 0xF4: PUBLISH, and the QoS 2 bit clear


class Publish(NamedTuple):
    """A message taken by :meth:`BufferedClient.take_publishes`: what the worker reads of a
    paho ``MQTTMessage`` (``topic`` already decoded), for a fraction of its cost."""

    topic: str
    payload: bytes
    qos: int
    mid: int


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = b""
        self._offset = 0
        self._buffer_socket: Any = None  # the socket the buffer was read from
        self.socket_reads = 0  # recv calls on the socket (the test's evidence that the hook works)
        self.reads_served = 0  # paho's reads served
        self.publishes_taken = 0  # messages parsed by take_publishes (the test's evidence too)
        self._eof_pending = False  # fill() met the end of the stream: paho's next read returns it

    @property
    def buffered(self) -> int:
        """Bytes read from the socket that paho has not taken yet."""
        if self._buffer_socket is not self.socket():
            return 0
        return len(self._buffer) - self._offset

    def _sock_recv(self, bufsize: int) -> bytes:
        self.reads_served += 1
        if self._eof_pending:
            self._eof_pending = False
            return b""
        sock = self.socket()
        if sock is not self._buffer_socket:  # a new connection: what was left belongs to the old one
            self._buffer, self._offset, self._buffer_socket = b"", 0, sock
        if self._offset >= len(self._buffer):
            data = super()._sock_recv(max(bufsize, READ_SIZE))  # raises BlockingIOError when empty
            self.socket_reads += 1
            if len(data) <= bufsize:  # all of it is asked for (or the end of the stream): no copy
                return data
            self._buffer, self._offset = data, 0
        start = self._offset
        self._offset = min(start + bufsize, len(self._buffer))
        return self._buffer[start : self._offset]

    def fill(self) -> int:
        """Read the socket into the emptied buffer (one ``recv`` of up to READ_SIZE), so that
        :meth:`take_publishes` sees what came: the bytes read; -1 when there is nothing to read
        now, or the end of the stream or an error, which paho's ``loop_read`` must see itself."""
        sock = self.socket()
        if sock is None or self.buffered:
            return -1
        try:
            data = super()._sock_recv(READ_SIZE)
        except OSError:  # nothing to read (BlockingIOError, TLS's want-read), or a broken link
            return -1
        self.socket_reads += 1
        if not data:
            self._eof_pending = True  # paho's next read sees the end of the stream, as it would have
            return -1
        self._buffer, self._offset, self._buffer_socket = data, 0, sock
        return len(data)

    def take_publishes(self, most: int) -> list[Publish]:
        """Up to ``most`` messages, from the PUBLISH packets at the head of what is buffered;
        none when the next packet is one for paho's ``loop_read`` (see the module's doc).

        Never reads the socket: when this returns fewer than ``most``, call ``loop_read``."""
        if self._buffer_socket is not self._sock or self._in_packet["command"]:
            return []  # nothing of this connection buffered, or paho is in the middle of a packet
        buf, pos = self._buffer, self._offset
        end = len(buf)
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        taken: list[Publish] = []
        while len(taken) < most:
            found = _publish_at(buf, pos, end, v5)
            if found is None:
                break
            message, pos = found
            taken.append(message)
        if taken:
            self._offset = pos
            self.publishes_taken += len(taken)
            # paho's keepalive counts bytes as received once a packet is handled (it would not
            # close a link whose messages a slow handler is still working through).
            self._last_bytes_received = mqtt.time_func()
        return taken


def _publish_at(buf: bytes, pos: int, end: int, v5: bool) -> tuple[Publish, int] | None:
    """The message of the PUBLISH packet at ``pos`` and where the packet ends; None when the
    packet there is for paho (see the module's doc)."""
    if pos + 1 >= end or buf[pos] & 0xF4 != _PUBLISH_QOS_0_1:
        return None
    qos = (buf[pos] >> 1) & 1
    length = buf[pos + 1]
    start = pos + 2
    if length & 0x80:  # the remaining length takes more than one byte (two: up to 16 KiB)
        if start < end and buf[start] < 0x80:
            length = (length & 0x7F) | buf[start] << 7
            start += 1
        else:
            length, start = _remaining_length(buf, pos + 1, end)
    stop = start + length
    if length < 2 or stop > end:
        return None  # cut at the end of the buffer (paho reads the rest), or malformed
    topic_end = start + 2 + (buf[start] << 8 | buf[start + 1])
    payload_start = topic_end + 2 * qos + v5  # the packet id at QoS 1, the properties' length in MQTT 5
    if topic_end == start + 2 or payload_start > stop or (v5 and buf[payload_start - 1]):
        return None  # an empty topic, lengths beyond the packet, properties: paho's to judge
    try:
        topic = buf[start + 2 : topic_end].decode()
    except UnicodeDecodeError:
        return None  # paho hands it on, and the worker counts it as failed
    mid = buf[topic_end] << 8 | buf[topic_end + 1] if qos else 0
    return Publish(topic, buf[payload_start:stop], qos, mid), stop


def _remaining_length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The MQTT variable-length integer at ``pos`` and where it ends; (-1, 0) when it is cut at
    ``end`` or longer than the four bytes MQTT allows."""
    length = shift = 0
    for index in range(pos, min(pos + 4, end)):
        byte = buf[index]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return length, index + 1
        shift += 7
    return -1, 0
