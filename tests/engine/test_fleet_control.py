"""Signed remote commands: what is accepted, and every way a command is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from engine.fleet.control import MAX_SKEW, Refused, RemoteCommand, Verifier, signed

KEY = "k3y-of-the-operators"
NOW = 1_764_831_600.0


def raw(command: dict[str, Any]) -> bytes:
    return json.dumps(command).encode()


def test_a_command_signed_with_the_key_is_accepted_with_its_arguments():
    command = signed("c1", "scale", {"route": "sensors/+/temperature", "count": 3}, NOW, KEY)
    accepted = Verifier(KEY).verify(raw(command), NOW + 5)
    assert accepted == RemoteCommand("c1", "scale", {"route": "sensors/+/temperature", "count": 3})


def test_the_signature_is_the_documented_recipe():
    # HMAC-SHA256 of the UTF-8 JSON of the command without sig, sorted keys, "," and ":".
    text = '{"args":{"slot":"a/é#0"},"id":"c2","ts":1764831600.0,"verb":"restart-worker"}'
    expected = hmac.new(KEY.encode(), text.encode("utf-8"), hashlib.sha256).hexdigest()
    assert signed("c2", "restart-worker", {"slot": "a/é#0"}, NOW, KEY)["sig"] == expected


def refusal(verifier: Verifier, payload: bytes, now: float = NOW) -> Refused:
    with pytest.raises(Refused) as refused:
        verifier.verify(payload, now)
    return refused.value


def test_without_a_key_every_command_is_refused():
    command = signed("c3", "stop", {}, NOW, KEY)
    assert refusal(Verifier(None), raw(command)).reason.startswith("remote control is disabled")


def test_a_wrong_key_is_a_bad_signature():
    command = signed("c4", "stop", {}, NOW, "another key")
    refused = refusal(Verifier(KEY), raw(command))
    assert refused.reason == "bad signature" and refused.command_id == "c4"


def test_a_changed_argument_breaks_the_signature():
    command = signed("c5", "scale", {"route": "r", "count": 2}, NOW, KEY)
    command["args"]["count"] = 200
    assert refusal(Verifier(KEY), raw(command)).reason == "bad signature"


@pytest.mark.parametrize("skew", [MAX_SKEW + 1, -(MAX_SKEW + 1)])
def test_a_command_too_far_from_our_clock_is_stale(skew):
    command = signed("c6", "stop", {}, NOW + skew, KEY)
    assert refusal(Verifier(KEY), raw(command)).reason.startswith("stale: ts is")


def test_a_replayed_id_is_refused_until_it_would_be_stale_anyway():
    verifier = Verifier(KEY)
    command = signed("c7", "stop", {}, NOW, KEY)
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
    ],
    ids=["not-json", "not-an-object", "no-id", "ts-text", "args-list", "no-sig", "too-long"],
)
def test_a_malformed_command_is_refused_saying_what(payload, reason):
    assert refusal(Verifier(KEY), payload).reason.startswith(reason)


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
    command = signed("c9", verb, args, NOW, KEY)
    assert refusal(Verifier(KEY), raw(command)).reason.startswith(reason)


def test_a_refused_command_is_not_remembered_so_a_corrected_one_may_use_its_id():
    verifier = Verifier(KEY)
    refusal(verifier, raw(signed("c10", "scale", {"route": "r", "count": 0}, NOW, KEY)))
    accepted = verifier.verify(raw(signed("c10", "scale", {"route": "r", "count": 1}, NOW, KEY)), NOW)
    assert accepted.args == {"route": "r", "count": 1}


def test_autoscale_off_is_min_null():
    command = signed("c11", "autoscale", {"route": "r", "min": None, "max": None}, NOW, KEY)
    assert Verifier(KEY).verify(raw(command), NOW).args == {"route": "r", "min": None, "max": None}


def test_the_readmes_example_signs_as_the_manager_verifies():
    import hashlib as h
    import time as t
    import uuid

    def readme_signed(verb, args, key):  # the README's ten lines, as printed there
        command = {"id": uuid.uuid4().hex, "verb": verb, "args": args, "ts": t.time()}
        text = json.dumps(command, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        command["sig"] = hmac.new(key.encode(), text.encode("utf-8"), h.sha256).hexdigest()
        return json.dumps(command)

    payload = readme_signed("scale", {"route": "sensors/+/temperature", "count": 3}, KEY)
    assert Verifier(KEY).verify(payload.encode(), t.time()).args["count"] == 3
