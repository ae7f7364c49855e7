"""PoisonLedger: messages that keep killing the workers that handle them, and when to set one aside.

A QoS 1 message whose handler kills its worker (``os._exit``, a segfault in a C extension, the
OOM killer) comes back after every restart, so its slot would die until it crash-loops. MQTT
brokers offer no redelivery count and no dead-letter queue (SQS's ``maxReceiveCount``,
RabbitMQ's dead-letter exchanges), so the supervisor keeps the count: after every unplanned
death it reads the worker's in-hand table (engine/in_hand.py) and charges the death to each
message held. A message charged ``deaths_allowed`` times is quarantined for that slot: the
slot's next process is given its key, and when the message comes back (a QoS 1 message not
acknowledged stays in the slot's own session) it is acknowledged without running the handler
and published to the dead-letter topic, once. Counting per slot matters: an identical message
published again later, or handled by another slot, is a new message and runs as usual.
A plain class with no clock or I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..in_hand import InHand, MessageKey

SUSPECTS_KEPT = 1000  # per manager; the oldest suspects are forgotten first


@dataclass
class Suspect:
    slot: str
    topic: str
    qos: int
    deaths: int
    last_exit: str
    quarantined: bool = False


class PoisonLedger:
    def __init__(self, deaths_allowed: int, kept: int = SUSPECTS_KEPT) -> None:
        self.deaths_allowed = deaths_allowed  # 0: never quarantine
        self.kept = kept
        self._suspects: OrderedDict[tuple[str, MessageKey], Suspect] = OrderedDict()

    def died_holding(self, slot: str, in_hand: list[InHand], last_exit: str) -> list[tuple[MessageKey, Suspect]]:
        """Charge a death of ``slot``'s worker to each message in hand; those quarantined now."""
        newly: list[tuple[MessageKey, Suspect]] = []
        for hand in in_hand:
            ident = (slot, hand.key)
            suspect = self._suspects.pop(ident, None) or Suspect(slot, hand.topic, hand.qos, 0, last_exit)
            suspect.deaths += 1
            suspect.last_exit = last_exit
            self._suspects[ident] = suspect  # most recent last
            if self.deaths_allowed and not suspect.quarantined and suspect.deaths >= self.deaths_allowed:
                suspect.quarantined = True
                newly.append((hand.key, suspect))
        while len(self._suspects) > self.kept:
            self._suspects.popitem(last=False)
        return newly

    def __len__(self) -> int:
        return len(self._suspects)

    def quarantined(self, slot: str) -> list[tuple[MessageKey, Suspect]]:
        """The messages ``slot``'s next process must set aside."""
        return [(key, s) for (owner, key), s in self._suspects.items() if owner == slot and s.quarantined]

    def set_aside(self, slot: str, key: MessageKey) -> None:
        """The slot's worker dead-lettered the message: nothing to watch for any more."""
        self._suspects.pop((slot, key), None)
