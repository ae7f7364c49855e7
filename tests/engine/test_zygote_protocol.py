"""What the manager accepts from a zygote: exactly the protocol's messages, nothing else."""

from __future__ import annotations

import json

import pytest

from engine.zygote_protocol import ZygoteViolation, decode


def packet(message: object) -> bytes:
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    "message",
    [
        {"ready": 1234, "preloaded": True, "problem": None},
        {"forked": 7, "pid": 4321},
        {"fork_failed": 7, "error": "fork: [Errno 11] Resource temporarily unavailable"},
        {"exited": 4321, "code": -9},
    ],
)
def test_the_protocols_messages_are_taken(message):
    kind, decoded = decode(packet(message))
    assert kind == next(iter(message)) and decoded == message


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"not json", "not JSON"),
        ([1, 2], "not a JSON object"),
        ({}, "not a JSON object"),
        ({"spawn": 1}, "unknown message"),
        ({"exited": 4321, "code": 0, "ready": 1}, "fields"),  # one kind's fields plus another's
        ({"forked": 7}, "fields"),
        ({"forked": 7, "pid": 0}, "not a process id"),  # killpg(0) would be our own group
        ({"forked": 7, "pid": -5}, "not a process id"),
        ({"forked": 7, "pid": 1}, "not a process id"),
        ({"forked": 7, "pid": 2**22}, "not a process id"),
        ({"forked": 7, "pid": True}, "is bool"),
        ({"forked": "7", "pid": 4321}, "is str"),
        ({"exited": 4321, "code": 4096}, "not an exit code"),
        ({"ready": 1234, "preloaded": 1, "problem": None}, "is int"),
    ],
)
def test_anything_else_is_a_violation_naming_what_is_wrong(message, why):
    with pytest.raises(ZygoteViolation, match=why):
        decode(message if isinstance(message, bytes) else packet(message))


def test_long_texts_are_cut():
    _, decoded = decode(packet({"fork_failed": 1, "error": "x" * 100_000}))
    assert len(decoded["error"]) == 2000
