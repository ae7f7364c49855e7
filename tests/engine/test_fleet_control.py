"""Signed remote commands: what is accepted, and every way a command is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from engine.fleet.control import MAX_SKEW, Refused, RemoteCommand, Verifier, reply_is_signed, signed, signed_reply

KEY = "k3y-of-the-operators"
NOW = 1_764_831_600.0
TO = "sensors/edge-a"  # the group and manager id the verifier is for
STARTED = NOW - 3600  # when its manager started


def raw(command: dict[str, Any]) -> bytes:
    return json.dumps(command).encode()


def test_a_command_signed_with_the_key_is_accepted_with_its_arguments():
    command = signed("c1", TO, "scale", {"route": "sensors/+/temperature", "count": 3}, NOW, KEY)
    accepted = Verifier(KEY, TO, STARTED).verify(raw(command), NOW + 5)
    assert accepted == RemoteCommand("c1", "scale", {"route": "sensors/+/temperature", "count": 3})


def test_the_signature_is_the_documented_recipe():
    # HMAC-SHA256 of the UTF-8 JSON of the command without sig, sorted keys, "," and ":".
    text = '{"args":{"slot":"a/é#0"},"id":"c2","to":"sensors/edge-a","ts":1764831600.0,"verb":"restart-worker"}'
    expected = hmac.new(KEY.encode(), text.encode("utf-8"), hashlib.sha256).hexdigest()
    assert signed("c2", TO, "restart-worker", {"slot": "a/é#0"}, NOW, KEY)["sig"] == expected


def refusal(verifier: Verifier, payload: bytes, now: float = NOW) -> Refused:
    with pytest.raises(Refused) as refused:
        verifier.verify(payload, now)
    return refused.value


def test_without_a_key_every_command_is_refused():
    command = signed("c3", TO, "stop", {}, NOW, KEY)
    assert refusal(Verifier(None, TO, STARTED), raw(command)).reason.startswith("remote control is disabled")


def test_a_wrong_key_is_a_bad_signature():
    command = signed("c4", TO, "stop", {}, NOW, "another key")
    refused = refusal(Verifier(KEY, TO, STARTED), raw(command))
    assert refused.reason == "bad signature" and refused.command_id == "c4"


def test_a_changed_argument_breaks_the_signature():
    command = signed("c5", TO, "scale", {"route": "r", "count": 2}, NOW, KEY)
    command["args"]["count"] = 200
    assert refusal(Verifier(KEY, TO, STARTED), raw(command)).reason == "bad signature"


@pytest.mark.parametrize("skew", [MAX_SKEW + 1, -(MAX_SKEW + 1)])
def test_a_command_too_far_from_our_clock_is_stale(skew):
    command = signed("c6", TO, "stop", {}, NOW + skew, KEY)
    assert refusal(Verifier(KEY, TO, STARTED), raw(command)).reason.startswith("stale: ts is")


def test_a_replayed_id_is_refused_until_it_would_be_stale_anyway():
    verifier = Verifier(KEY, TO, STARTED)
    command = signed("c7", TO, "stop", {}, NOW, KEY)
    verifier.verify(raw(command), NOW)
    assert refusal(verifier, raw(command), NOW + 1).reason == "replayed: id 'c7' was already seen"
    assert refusal(verifier, raw(command), NOW + 3 * MAX_SKEW).reason.startswith("stale")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed: not JSON"),
        (b"[1, 2]", "malformed: not a JSON object"),
        (raw({"verb": "stop", "args": {}, "ts": NOW, "sig": "00"}), "malformed: id must be"),
        (raw({"id": "c8", "verb": "stop", "args": {}, "ts": "now", "sig": "00"}), "malformed: ts must be"),
        (raw({"id": "c8", "verb": "stop", "args": [], "ts": NOW, "sig": "00"}), "malformed: args must be an object"),
        (raw({"id": "c8", "verb": "stop", "args": {}, "ts": NOW}), "malformed: sig must be a string"),
        (b"x" * 70_000, "malformed: a command of more than"),
        # Once a TypeError in hmac.compare_digest, which ended the thread carrying commands out.
        (raw({"id": "c8", "verb": "stop", "args": {}, "ts": NOW, "sig": "é" * 64}), "malformed: sig must be 64"),
        (raw({"id": "c8", "verb": "stop", "args": {}, "ts": NOW, "sig": "AB" * 32}), "malformed: sig must be 64"),
    ],
    ids=["not-json", "not-an-object", "no-id", "ts-text", "args-list", "no-sig", "too-long", "sig-not-ascii",
         "sig-upper"],
)
def test_a_malformed_command_is_refused_saying_what(payload, reason):
    assert refusal(Verifier(KEY, TO, STARTED), payload).reason.startswith(reason)


@pytest.mark.parametrize(
    ("verb", "args", "reason"),
    [
        ("explode", {}, "unknown verb 'explode'"),
        ("scale", {"route": "r"}, "scale: count must be a whole number"),
        ("scale", {"route": "r", "count": 0}, "scale: count must be a whole number"),
        ("scale", {"route": "", "count": 2}, "scale: route must be a non-empty string"),
        ("scale", {"route": "r", "count": True}, "scale: count must be"),
        ("restart-worker", {}, "restart-worker: slot must be"),
        ("autoscale", {"route": "r", "min": 4, "max": 2}, "autoscale: max must be at least min"),
    ],
)
def test_unknown_verbs_and_bad_arguments_are_refused_after_the_signature(verb, args, reason):
    command = signed("c9", TO, verb, args, NOW, KEY)
    assert refusal(Verifier(KEY, TO, STARTED), raw(command)).reason.startswith(reason)


def test_a_refused_command_is_not_remembered_so_a_corrected_one_may_use_its_id():
    verifier = Verifier(KEY, TO, STARTED)
    refusal(verifier, raw(signed("c10", TO, "scale", {"route": "r", "count": 0}, NOW, KEY)))
    accepted = verifier.verify(raw(signed("c10", TO, "scale", {"route": "r", "count": 1}, NOW, KEY)), NOW)
    assert accepted.args == {"route": "r", "count": 1}


def test_autoscale_off_is_min_null():
    command = signed("c11", TO, "autoscale", {"route": "r", "min": None, "max": None}, NOW, KEY)
    assert Verifier(KEY, TO, STARTED).verify(raw(command), NOW).args == {"route": "r", "min": None, "max": None}


def test_the_readmes_example_signs_as_the_manager_verifies():
    # The README's ten lines, as printed there (read from it), with KEY for the operators' key.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = next(block for block in readme.split("```python")[1:] if "def signed(to" in block).split("```")[0]
    assert len(example.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {"KEY": KEY}
    exec(example, namespace)
    now = time.time()  # the example stamps the command with the real clock
    assert Verifier(KEY, TO, now - 60).verify(namespace["payload"].encode(), now + 1).args["count"] == 3


def test_a_command_for_another_manager_or_from_before_the_start_is_refused():
    # Seen on edge-b's control topic and replayed to edge-a within the 30 s: not addressed to it.
    for_b = signed("c12", "sensors/edge-b", "stop", {}, NOW, KEY)
    assert refusal(Verifier(KEY, TO, STARTED), raw(for_b)).reason == (
        "addressed to 'sensors/edge-b', not to this manager (sensors/edge-a)")
    # Sent to edge-a before it restarted (which forgot the ids it had seen): stale.
    before = signed("c13", TO, "stop", {}, NOW - 5, KEY)
    assert refusal(Verifier(KEY, TO, NOW - 1), raw(before), NOW).reason == "stale: sent before this manager started"


def test_replies_are_signed_and_a_changed_one_does_not_verify():
    reply = signed_reply("c14", None, KEY)
    assert reply["ok"] is True and reply_is_signed(reply, KEY)
    assert not reply_is_signed({**reply, "id": "c15"}, KEY)
    assert not reply_is_signed(signed_reply("c14", None, None), KEY), "no key, no signature"
    assert signed_reply("c14", "x" * 600, None) == {"id": "c14", "ok": False, "error": "x" * 500}


def test_no_depth_of_nesting_gets_anything_but_a_refusal():
    # Around the recursion limit, json.loads may succeed where json.dumps of the same object (the
    # signature's input) overflows the stack: that RecursionError once ended remote control.
    reasons = set()
    for depth in range(900, 1000, 3):
        payload = (b'{"id":"c8","verb":"stop","ts":1,"sig":"' + b"0" * 64 + b'","args":' + b'{"a":' * depth + b"1"
                   + b"}" * (depth + 1))
        reasons.add(refusal(Verifier(KEY, TO, STARTED), payload).reason)
    assert reasons <= {"malformed: not JSON", "malformed: nested too deep", "bad signature"}
