"""DeadLetters: setting aside, once each, the messages that kept killing this slot's workers.

The manager hands a new worker the keys of the messages its slot died holding too often (see
engine/supervisor/poison.py). When one comes back, the worker publishes it to the dead-letter
topic (QoS 1) and acknowledges it without running the handler, then forgets the key: an
identical message published later is a new message and runs as usual. The dead letter is a
JSON envelope (the same for MQTT 3.1.1 and 5, so a consumer needs no user properties):
``topic``, ``payload`` (text, or base64 when it is not UTF-8, as ``payload_encoding`` says),
``qos``, ``deaths``, ``last_exit``, ``route``, ``group``, ``slot`` and ``time``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from ..in_hand import MessageKey, message_key
from ..protocol import DeadLettered, Quarantined
from ..router import Route
from ..topics import route_slug

log = logging.getLogger("routemq.worker")


class DeadLetters:
    def __init__(self, quarantine: tuple[Quarantined, ...], topic_template: str, group: str, slot: str) -> None:
        self.waiting: dict[MessageKey, Quarantined] = {q.key: q for q in quarantine}
        self.template = topic_template
        self.group = group
        self.slot = slot
        self.reported: list[DeadLettered] = []  # since the last heartbeat

    def take(self, route: Route, topic: str, payload: bytes | bytearray, qos: int, client: Any) -> bool:
        """If this message is one to set aside: publish it as a dead letter and say so (True);
        the caller acknowledges it without running the handler."""
        key = message_key(topic.encode(), payload)
        quarantined = self.waiting.pop(key, None)
        if quarantined is None:
            return False
        destination = self.template.format(group=self.group, route=route_slug(route.topic))
        client.publish(destination, json.dumps(self.envelope(route, topic, payload, qos, quarantined)), qos=1)
        self.reported.append(DeadLettered(route.topic, key))
        # The manager reports it (a "dead-letter" event); this line, with the destination, is for debugging.
        log.debug(
            "a message on %r killed this slot's worker %d times (last exit %s): published to %s, not handled",
            topic[:200], quarantined.deaths, quarantined.last_exit, destination,
        )
        return True

    def envelope(
        self, route: Route, topic: str, payload: bytes | bytearray, qos: int, quarantined: Quarantined
    ) -> dict[str, Any]:
        try:
            text, encoding = bytes(payload).decode(), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(payload).decode(), "base64"
        return {
            "topic": topic,
            "payload": text,
            "payload_encoding": encoding,
            "qos": qos,
            "deaths": quarantined.deaths,
            "last_exit": quarantined.last_exit,
            "route": route.topic,
            "group": self.group,
            "slot": self.slot,
            "time": time.time(),
        }

    def take_reports(self) -> tuple[DeadLettered, ...]:
        reported, self.reported = tuple(self.reported), []
        return reported
