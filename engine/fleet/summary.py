"""FleetSummary: the few numbers of a manager's status that the fleet table shows, sent beside
the whole snapshot so that an observer need not decode every snapshot it receives.

A hundred managers of 16 workers send a hundred statuses a second; checking each snapshot field
by field (``from_json``) was a third of an observing dashboard's CPU, and the fleet table needs
six numbers of it. The publisher computes them with ``ManagerSnapshot``'s own properties; the
observer checks only these and decodes a snapshot when a screen asks for it
(:class:`LazySnapshot`).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

from ..snapshot import ManagerSnapshot
from .snapshot_json import MAX_NUMBER, MAX_STRING, from_json


@dataclass(frozen=True)
class FleetSummary:
    live_workers: int
    desired_workers: int
    serving_workers: int
    messages_per_second: float
    failed: int
    broker_state: str

    @classmethod
    def of(cls, snapshot: ManagerSnapshot) -> FleetSummary:
        return cls(snapshot.live_workers, snapshot.desired_workers, snapshot.serving_workers,
                   snapshot.messages_per_second, snapshot.failed, snapshot.broker.state)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> FleetSummary:
        """The summary in ``data``; ValueError naming the field otherwise."""
        if not isinstance(data, dict):
            raise ValueError("summary: not an object")
        rate = data.get("messages_per_second")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or not (
                0 <= rate <= MAX_NUMBER):
            raise ValueError("summary.messages_per_second: not a number from 0")
        broker = data.get("broker_state")
        if not isinstance(broker, str):
            raise ValueError("summary.broker_state: not a string")
        return cls(_count(data, "live_workers"), _count(data, "desired_workers"), _count(data, "serving_workers"),
                   float(rate), _count(data, "failed"), broker[:MAX_STRING])


def _count(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NUMBER:
        raise ValueError(f"summary.{name}: not a whole number from 0")
    return value


class LazySnapshot:
    """A status's snapshot, decoded (and checked) the first time a screen asks for it. Until then
    only the status's bytes are kept: a fraction of the memory of the parsed JSON."""

    def __init__(self, payload: bytes) -> None:
        self._payload: bytes | None = payload
        self._lock = threading.Lock()
        self._decoded: ManagerSnapshot | None = None
        self.problem: str | None = None

    @property
    def decoded(self) -> bool:
        return self._payload is None

    def get(self) -> ManagerSnapshot | None:
        """The snapshot, or None when it does not read (``problem`` says why)."""
        with self._lock:
            if self._payload is not None:
                try:
                    self._decoded = from_json(json.loads(self._payload)["snapshot"])
                except (ValueError, TypeError, KeyError, RecursionError) as exc:
                    self.problem = str(exc)[:200]
                self._payload = None  # decoded once; the bytes are no longer needed
            return self._decoded
