"""A dummy process, a fake clock and a dummy host behind the interfaces a Slot and a Pool use
(supervisord's DummyOptions idea): slot and pool behaviour without a broker or a process."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

from engine.in_hand import InHand
from engine.protocol import Command, DeadLettered, Heartbeat, LogLine, WorkerMessage
from engine.settings import Settings
from engine.supervisor.pool import ClientIds, Pool
from engine.supervisor.slot import Slot

_pids = itertools.count(1000)


class DummyProcess:
    def __init__(self) -> None:
        self.pid = next(_pids)
        self.signals: list[str] = []
        self.commands: list[Command] = []
        self.exitcode: int | None = None
        self.inbox: list[WorkerMessage] = []
        self.usage: tuple[float | None, int | None] = (1.0, 20 * 1024 * 1024)
        self.in_hand: list[InHand] = []
        self.last_output = ""

    @property
    def eof(self) -> bool:
        return self.exitcode is not None

    def read(self) -> list[WorkerMessage]:
        messages, self.inbox = self.inbox, []
        return messages

    def send(self, command: Command) -> None:
        self.commands.append(command)

    def terminate(self) -> None:
        self.signals.append("SIGTERM")

    def kill(self) -> None:
        self.signals.append("SIGKILL")

    def poll(self) -> int | None:
        return self.exitcode

    def sample(self) -> tuple[float | None, int | None]:
        return self.usage

    def read_output(self) -> list[str]:
        return []

    def finish(self) -> tuple[list[WorkerMessage], list[str], str, list[InHand]]:
        return self.read(), [], self.last_output, self.in_hand


@dataclass
class Event:
    kind: str
    message: str
    slot: str | None
    level: int


@dataclass
class DummyHost:
    settings: Settings = field(default_factory=Settings)
    clock: float = 1000.0
    closing: bool = False
    launched: list[DummyProcess] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)
    ended: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    counts: list[Heartbeat] = field(default_factory=list)
    poisoned: list[InHand] = field(default_factory=list)
    quarantine_after: int = 0  # deaths holding one message before died_holding says "set aside"

    def now(self) -> float:
        return self.clock

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def launch(self, slot: Slot) -> DummyProcess:
        process = DummyProcess()
        self.launched.append(process)
        return process

    def event(self, kind: str, message: str, slot: str | None = None, level: int = logging.INFO) -> None:
        self.events.append(Event(kind, message, slot, level))

    def log_lines(self, slot: Slot, lines: tuple[LogLine, ...], dropped: int) -> None:
        for line in lines:
            self.event("log", line.message, slot.key, line.level)

    def session_kept(self, slot: Slot) -> None:
        self.kept.add(slot.client_id)

    def session_ended(self, slot: Slot) -> None:
        self.kept.discard(slot.client_id)
        self.ended.append(slot.client_id)

    def left_for_good(self, slot: Slot) -> None:
        self.left.append(slot.key)

    def counted(self, slot: Slot, before: Heartbeat | None, after: Heartbeat) -> None:
        self.counts.append(after)

    def died_holding(self, slot: Slot, in_hand: list[InHand]) -> bool:
        self.poisoned.extend(in_hand)
        return bool(self.quarantine_after) and self.poisoned.count(in_hand[0]) >= self.quarantine_after

    def dead_lettered(self, slot: Slot, letters: tuple[DeadLettered, ...]) -> None:
        self.event("dead-letter", str(letters), slot.key)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def new_pool(host: DummyHost, desired: int = 1, key: str = "jobs/{name}") -> Pool:
    from engine.router import Route

    route = Route(key, lambda name, payload, client: None, qos=1, shared=True, worker_count=desired)
    return Pool(host, ClientIds("routemq", "host", "group"), key, route, desired)


def process_of(slot: Slot) -> DummyProcess:
    assert isinstance(slot.process, DummyProcess), slot
    return slot.process


def exits(host: DummyHost, slot: Slot, code: int) -> None:
    """The slot's process exits with ``code`` and is reaped, as the arbiter would do it."""
    process = process_of(slot)
    process.exitcode = code
    messages, _, last_output, in_hand = process.finish()
    for message in messages:
        slot.on_message(message)
    slot.reaped(code, last_output, in_hand)
