"""InHandTable: the messages a worker's handlers hold right now, in memory its manager can read.

When a handler kills its worker (``os._exit``, a segfault in a C extension, the OOM killer),
nothing the worker meant to send arrives. So before a handler runs, the worker writes what it
is about to handle into a small shared-memory table (a memfd the manager created and keeps),
and clears the entry when the handler is done: two writes into memory, no system call. After
the worker died, the manager reads the entries still set: the messages that were in hand. A
message that keeps killing workers is then known by its :class:`MessageKey` and set aside
(see engine/supervisor/poison.py). Standard library only: both sides use it.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from dataclasses import dataclass

# sequence (0: free), qos, cut, topic length kept, payload length, crc if cut, when its handler started
# (CLOCK_MONOTONIC: the same clock in every process of the machine)
ENTRY = struct.Struct("<IBBHIId")
ENTRY_SIZE = 1024
TOPIC_KEPT = 256  # bytes of a topic kept (and identifying it); longer topics are rare
MAX_ENTRIES = 256
PREFIX_KEPT = 200  # bytes of a payload too long for its entry kept all the same (for the operator)
_FREE = bytes(4)


@dataclass(frozen=True, slots=True)
class MessageKey:
    """What identifies one message across redeliveries: its topic, and its payload by checksum."""

    topic: bytes  # at most TOPIC_KEPT bytes
    payload_length: int
    payload_crc: int


@dataclass(frozen=True, slots=True)
class InHand:
    """A message a worker held when it was last seen."""

    key: MessageKey
    qos: int
    payload: bytes = b""  # the payload, or its first PREFIX_KEPT bytes when it was long
    started: float = 0.0  # time.monotonic() when its handler started


    @property
    def topic(self) -> str:
        return self.key.topic.decode(errors="replace")


def message_key(topic: bytes, payload: bytes | bytearray) -> MessageKey:
    return MessageKey(topic[:TOPIC_KEPT], len(payload), zlib.crc32(payload))


def table_size(entries: int) -> int:
    return max(1, min(entries, MAX_ENTRIES)) * ENTRY_SIZE


def create(entries: int) -> int:
    """A memfd big enough for ``entries`` messages in hand; the caller owns the descriptor."""
    fd = os.memfd_create("routemq-in-hand", os.MFD_CLOEXEC)
    os.ftruncate(fd, table_size(entries))
    return fd


class InHandTable:
    """The worker's side: ``hold`` before a handler runs, ``release`` after; ``read`` for the
    manager's side.

    A hold copies the topic and (when it fits) the payload: measured cheaper here than a
    checksum, and far cheaper than a frame to the manager (a system call per message).
    """

    def __init__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        self._map = mmap.mmap(fd, size)
        self.entries = size // ENTRY_SIZE
        self._free = list(range(self.entries - 1, -1, -1))
        self._seq = 0

    def hold(self, topic: bytes, payload: bytes | bytearray, qos: int, started: float = 0.0) -> int:
        """Record a message whose handler starts at ``started`` (time.monotonic()); the entry to
        release, or -1 when all are used."""
        if not self._free:
            return -1
        entry = self._free.pop()
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF or 1
        topic = topic[:TOPIC_KEPT]
        room = ENTRY_SIZE - ENTRY.size - len(topic)
        if len(payload) <= room:
            data = ENTRY.pack(seq, qos, 0, len(topic), len(payload), 0, started) + topic + payload
        else:
            crc = zlib.crc32(payload)
            data = ENTRY.pack(seq, qos, 1, len(topic), len(payload), crc, started) + topic + payload[:PREFIX_KEPT]
        offset = entry * ENTRY_SIZE
        self._map[offset : offset + len(data)] = data
        return entry

    def release(self, entry: int) -> None:
        if entry >= 0:
            self._map[entry * ENTRY_SIZE : entry * ENTRY_SIZE + 4] = _FREE
            self._free.append(entry)

    def read(self) -> list[InHand]:
        """The messages still in hand, oldest first."""
        found: list[tuple[int, InHand]] = []
        for entry in range(self.entries):
            offset = entry * ENTRY_SIZE
            seq, qos, cut, topic_length, length, crc, started = ENTRY.unpack_from(self._map, offset)
            if seq == 0 or topic_length > TOPIC_KEPT:
                continue
            start = offset + ENTRY.size
            topic = bytes(self._map[start : start + topic_length])
            kept = min(length, PREFIX_KEPT) if cut else length
            if kept > ENTRY_SIZE - ENTRY.size - topic_length:
                continue  # not an entry this module wrote
            payload = bytes(self._map[start + topic_length : start + topic_length + kept])
            if not cut:
                crc = zlib.crc32(payload)
            found.append((seq, InHand(MessageKey(topic, length, crc), qos, payload[:PREFIX_KEPT], started)))
        return [hand for _, hand in sorted(found, key=lambda pair: pair[0])]

    def close(self) -> None:
        self._map.close()
