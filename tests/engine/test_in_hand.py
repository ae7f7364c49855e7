"""engine/in_hand.py: what a worker holds is readable from the shared table, its payload (or the
start of a long one) and when its handler started included; released entries are gone."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator

import pytest

from engine.in_hand import ENTRY, ENTRY_SIZE, PREFIX_KEPT, TOPIC_KEPT, InHandTable, create, message_key


@pytest.fixture
def table() -> Iterator[InHandTable]:
    fd = create(4)
    table = InHandTable(fd)
    yield table
    table.close()
    os.close(fd)


def test_a_held_message_reads_back_with_its_payload_and_start(table: InHandTable):
    payload = b'{"t": 21.5}'
    entry = table.hold(b"sensors/7/temp", payload, 1, started=12345.678)
    (hand,) = table.read()
    assert hand.topic == "sensors/7/temp"
    assert hand.qos == 1
    assert hand.payload == payload
    assert hand.started == 12345.678
    assert hand.key == message_key(b"sensors/7/temp", payload)
    table.release(entry)
    assert table.read() == []


def test_a_binary_payload_reads_back_byte_for_byte(table: InHandTable):
    payload = bytes(range(PREFIX_KEPT))
    table.hold(b"raw", payload, 0)
    assert table.read()[0].payload == payload


def test_a_payload_that_fits_its_entry_but_not_the_preview_keeps_its_start_and_its_whole_key(table: InHandTable):
    payload = bytes(range(256)) * 2  # 512 bytes: fits the entry, longer than the preview
    assert len(payload) < ENTRY_SIZE - ENTRY.size - len(b"jobs/1")
    table.hold(b"jobs/1", payload, 0, started=1.5)
    (hand,) = table.read()
    assert hand.payload == payload[:PREFIX_KEPT]
    assert hand.key.payload_length == len(payload)
    assert hand.key.payload_crc == zlib.crc32(payload)
    assert hand.started == 1.5


def test_a_payload_too_long_for_its_entry_keeps_its_first_bytes_and_the_whole_ones_length_and_crc(
    table: InHandTable,
):
    payload = os.urandom(64 * 1024)
    table.hold(b"jobs/big", payload, 2, started=99.0)
    (hand,) = table.read()
    assert hand.payload == payload[:PREFIX_KEPT]
    assert hand.key == message_key(b"jobs/big", payload)
    assert hand.key.payload_length == len(payload) and hand.key.payload_crc == zlib.crc32(payload)
    assert hand.qos == 2 and hand.started == 99.0


def test_a_long_topic_and_a_long_payload_together(table: InHandTable):
    topic = b"t/" * TOPIC_KEPT
    payload = b"p" * 4000
    table.hold(topic, payload, 0)
    (hand,) = table.read()
    assert hand.key.topic == topic[:TOPIC_KEPT]
    assert hand.payload == payload[:PREFIX_KEPT]
    assert hand.key.payload_length == 4000


def test_an_empty_payload(table: InHandTable):
    table.hold(b"ping", b"", 0)
    (hand,) = table.read()
    assert hand.payload == b"" and hand.key.payload_length == 0


def test_several_held_come_oldest_first_and_release_clears_only_its_own(table: InHandTable):
    first = table.hold(b"a", b"1", 0, started=1.0)
    second = table.hold(b"b", b"2", 0, started=2.0)
    third = table.hold(b"c", b"3" * 3000, 0, started=3.0)
    assert [(h.topic, h.started) for h in table.read()] == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    table.release(second)
    assert [h.topic for h in table.read()] == ["a", "c"]
    reused = table.hold(b"d", bytearray(b"4"), 1, started=4.0)  # the freed entry, a newer message
    assert [(h.topic, h.payload) for h in table.read()] == [("a", b"1"), ("c", b"3" * PREFIX_KEPT), ("d", b"4")]
    for entry in (first, third, reused):
        table.release(entry)
    assert table.read() == []


def test_when_every_entry_is_used_a_hold_is_not_recorded(table: InHandTable):
    entries = [table.hold(f"m/{i}".encode(), b"x", 0) for i in range(table.entries)]
    assert -1 not in entries
    assert table.hold(b"one/more", b"x", 0) == -1
    table.release(-1)  # releasing what was not recorded is harmless
    assert len(table.read()) == table.entries


def test_the_managers_side_reads_what_the_workers_side_wrote():
    fd = create(2)
    worker, manager = InHandTable(fd), InHandTable(fd)
    try:
        worker.hold(b"jobs/1", b"\x00\xffdata", 1, started=7.25)
        (hand,) = manager.read()
        assert (hand.topic, hand.payload, hand.started) == ("jobs/1", b"\x00\xffdata", 7.25)
    finally:
        worker.close()
        manager.close()
        os.close(fd)
