"""Signed remote commands: how a manager tells a command from its operators from anything else
published on its control topic.

A command is a JSON object with ``id`` (the sender's), ``to`` (``<group>/<manager id>``),
``verb``, ``args`` (an object), ``ts`` (unix seconds) and ``sig``: the lowercase hex
HMAC-SHA256, under FLEET_CONTROL_KEY, of the UTF-8 JSON of the object without ``sig``, keys
sorted, separators ``,`` and ``:`` (:func:`signed`). :class:`Verifier` accepts a command only
when remote control is on, the JSON is an object of that shape, the signature matches, it is
addressed to this manager, ``ts`` is within MAX_SKEW of our clock and not before the manager
started, the ``id`` was not seen before, the verb is known and its arguments are right; anything
else is :class:`Refused` with a one-line reason, and changes nothing. The signature is checked
before anything that depends on the command's content, so an unsigned sender learns only that.

``to`` is ours, beyond the issue's fields: without it a command seen on one manager's control
topic could be replayed, within the 30 s, to every other manager sharing the key (each
remembers only the ids it saw itself). The start time closes the same gap for a manager that
restarted within the 30 s and forgot its ids. Replies are signed the same way
(:func:`signed_reply`), so that a forged "ok" is not believed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_SKEW = 30.0  # seconds a command's ts may be from the manager's clock
MAX_COMMAND = 64 * 1024  # bytes of one command
MAX_ID = 128  # characters of a command's id
SIGNATURE = re.compile(r"[0-9a-f]{64}")
# How long a sender waits for a reply. Verbs that wait for workers (a graceful stop, a rolling
# reload) answer only when they are done.
REPLY_TIMEOUT = 10.0
LONG_VERBS = frozenset({"stop", "start", "reload"})
LONG_REPLY_TIMEOUT = 90.0


def reply_timeout(verb: str) -> float:
    return LONG_REPLY_TIMEOUT if verb in LONG_VERBS else REPLY_TIMEOUT


class Refused(Exception):
    """A command not carried out: the reason in one line, and its id when it had one."""

    def __init__(self, reason: str, command_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id


@dataclass(frozen=True)
class RemoteCommand:
    id: str
    verb: str
    args: dict[str, Any]


def canonical(command: dict[str, Any]) -> bytes:
    """What is signed: the command without ``sig``, as sorted compact UTF-8 JSON."""
    unsigned = {k: v for k, v in command.items() if k != "sig"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(command: dict[str, Any], key: str) -> str:
    return hmac.new(key.encode("utf-8"), canonical(command), hashlib.sha256).hexdigest()


def signed(command_id: str, to: str, verb: str, args: dict[str, Any], ts: float, key: str) -> dict[str, Any]:
    """A command for ``to`` (``<group>/<manager id>``), ready to publish (what ``routemq-dash
    ctl`` and the fleet screen send)."""
    command: dict[str, Any] = {"id": command_id, "to": to, "verb": verb, "args": args, "ts": ts}
    command["sig"] = signature(command, key)
    return command


def signed_reply(command_id: str | None, error: str | None, key: str | None) -> dict[str, Any]:
    """The answer to a command: ``ok``, or the one-line ``error``; signed when there is a key."""
    reply: dict[str, Any] = {"id": command_id, "ok": error is None}
    if error is not None:
        reply["error"] = error[:500]
    if key:
        reply["sig"] = signature(reply, key)
    return reply


def reply_is_signed(reply: dict[str, Any], key: str) -> bool:
    sig = reply.get("sig")
    return isinstance(sig, str) and SIGNATURE.fullmatch(sig) is not None and hmac.compare_digest(
        signature(reply, key), sig)


# --- the verbs and their arguments -------------------------------------------------------------


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _count(args: dict[str, Any], name: str, nullable: bool = False) -> int | None:
    value = args.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ValueError(f"{name} must be a whole number from 1 to 10000" + (" or null" if nullable else ""))
    return value


def _none(args: dict[str, Any]) -> dict[str, Any]:
    return {}


def _scale(args: dict[str, Any]) -> dict[str, Any]:
    return {"route": _text(args, "route"), "count": _count(args, "count")}


def _restart_worker(args: dict[str, Any]) -> dict[str, Any]:
    return {"slot": _text(args, "slot")}


def _autoscale(args: dict[str, Any]) -> dict[str, Any]:
    low, high = _count(args, "min", nullable=True), _count(args, "max", nullable=True)
    if low is not None and high is not None and high < low:
        raise ValueError("max must be at least min")
    return {"route": _text(args, "route"), "min": low, "max": high}


VERBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "scale": _scale,
    "restart-dead": _none,
    "restart-worker": _restart_worker,
    "stop": _none,
    "start": _none,
    "reload": _none,
    "autoscale": _autoscale,
}


# --- verifying ------------------------------------------------------------------------------------


class Verifier:
    """Checks commands for one manager, ``to`` (``<group>/<manager id>``), started at
    ``started`` (unix seconds); remembers the ids it accepted while they could come back."""

    def __init__(self, key: str | None, to: str, started: float) -> None:
        self._key = key
        self._to = to
        self._started = started
        self._seen: dict[str, float] = {}  # id -> its ts

    def verify(self, raw: bytes, now: float) -> RemoteCommand:
        """The command in ``raw`` (a control message's payload) at ``now`` (unix seconds)."""
        command = _shape(raw)  # first, so that even a refusal names the command it answers
        if not self._key:
            raise Refused("remote control is disabled (FLEET_CONTROL_KEY is not set)", command["id"])
        command_id = command["id"]
        if not hmac.compare_digest(signature(command, self._key), command["sig"]):
            raise Refused("bad signature", command_id)
        if command.get("to") != self._to:
            raise Refused(f"addressed to {str(command.get('to'))[:80]!r}, not to this manager ({self._to})", command_id)
        ts = command["ts"]
        if abs(now - ts) > MAX_SKEW:
            raise Refused(f"stale: ts is {now - ts:+.0f} s from the manager's clock (at most {MAX_SKEW:g})", command_id)
        if ts < self._started:
            raise Refused("stale: sent before this manager started", command_id)
        self._forget_before(now - 2 * MAX_SKEW)
        if command_id in self._seen:
            raise Refused(f"replayed: id {command_id!r} was already seen", command_id)
        verb = command["verb"]
        check = VERBS.get(verb)
        if check is None:
            raise Refused(f"unknown verb {verb[:40]!r} (known: {', '.join(VERBS)})", command_id)
        try:
            args = check(command["args"])
        except ValueError as exc:
            raise Refused(f"{verb}: {exc}", command_id) from None
        self._seen[command_id] = ts
        return RemoteCommand(command_id, verb, args)

    def _forget_before(self, oldest: float) -> None:
        # An id whose ts is this old is refused as stale anyway: no need to remember it.
        for command_id in [i for i, ts in self._seen.items() if ts < oldest]:
            del self._seen[command_id]


def _shape(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_COMMAND:
        raise Refused(f"malformed: a command of more than {MAX_COMMAND} bytes")
    try:
        command = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused("malformed: not JSON") from None
    if not isinstance(command, dict):
        raise Refused("malformed: not a JSON object")
    try:
        canonical(command)  # what checking its signature takes: no depth that breaks json.dumps
    except (ValueError, RecursionError):
        raise Refused("malformed: nested too deep") from None
    command_id = command.get("id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= MAX_ID:
        raise Refused(f"malformed: id must be a string of 1 to {MAX_ID} characters")
    ts = command.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise Refused("malformed: ts must be a number of unix seconds", command_id)
    for name, kind in (("sig", str), ("verb", str), ("args", dict)):
        if not isinstance(command.get(name), kind):
            raise Refused(f"malformed: {name} must be a{'n object' if kind is dict else ' string'}", command_id)
    if not SIGNATURE.fullmatch(command["sig"]):
        raise Refused("malformed: sig must be 64 lowercase hex digits", command_id)
    return command
