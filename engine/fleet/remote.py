"""RemoteControl: signed commands on ``<FLEET_TOPIC>/<group>/<manager id>/control``, carried out
on the manager, each answered on ``.../reply``.

It listens on the status connection (one small connection per manager in all). paho delivers
a command on its network thread; it is queued and carried out on a thread of ours, since a
verb may take seconds (a graceful stop). Every command gets a reply: ``{"id": ..., "ok": true}``
or ``{"id": ..., "ok": false, "error": "one line"}``. A refused one is logged as a warning
with its reason (never its signature) and changes nothing; one the manager cannot carry out
(no such route, say) is refused by the manager's own checks before anything changes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from .control import Refused, RemoteCommand, Verifier

log = logging.getLogger("routemq.fleet")

Execute = Callable[[RemoteCommand], None]
Announce = Callable[[str, int], None]


def _log(message: str, level: int) -> None:
    log.log(level, "%s", message)


class RemoteControl:
    def __init__(self, topic_root: str, key: str | None, execute: Execute, announce: Announce = _log) -> None:
        """``announce`` tells the operator what was carried out or refused (the manager's events)."""
        self.control_topic = f"{topic_root}/control"
        self.reply_topic = f"{topic_root}/reply"
        self._verifier = Verifier(key)
        self._execute = execute
        self._announce = announce
        self._inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._client: mqtt.Client | None = None
        self._thread = threading.Thread(target=self._run, name="routemq-fleet-control", daemon=True)

    def attach(self, client: mqtt.Client) -> None:
        """Listen on ``client`` (subscribe on every connection: see :meth:`connected`)."""
        self._client = client
        client.message_callback_add(self.control_topic, self._on_command)
        self._thread.start()

    def connected(self, client: mqtt.Client) -> None:
        client.subscribe(self.control_topic, qos=1)

    def stop(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=5)

    def _on_command(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            return  # an old command kept by the broker: never carried out on connecting
        self._inbox.put(bytes(message.payload))

    def _run(self) -> None:
        while (raw := self._inbox.get()) is not None:
            self._reply(*self._carry_out(raw))

    def _carry_out(self, raw: bytes) -> tuple[str | None, str | None]:
        """(the command's id, None when done or the one-line reason it was not)."""
        try:
            command = self._verifier.verify(raw, time.time())
        except Refused as refused:
            self._announce(f"remote command {refused.command_id or '(no id)'} refused: {refused.reason}",
                           logging.WARNING)
            return refused.command_id, refused.reason
        try:
            self._execute(command)
        except Exception as exc:  # the manager's own checks: nothing changed
            reason = f"{command.verb}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            self._announce(f"remote command {command.id} refused: {reason}", logging.WARNING)
            return command.id, reason
        self._announce(f"remote command {command.id} carried out: {command.verb} {json.dumps(command.args)}",
                       logging.INFO)
        return command.id, None

    def _reply(self, command_id: str | None, error: str | None) -> None:
        reply: dict[str, Any] = {"id": command_id, "ok": error is None}
        if error is not None:
            reply["error"] = error[:500]
        if self._client is not None:
            self._client.publish(self.reply_topic, json.dumps(reply), qos=1)
