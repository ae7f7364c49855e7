"""RemoteControl: signed commands on ``<FLEET_TOPIC>/<group>/<manager id>/control``, carried out
on the manager, each answered on ``.../reply``.

It listens on the status connection (one small connection per manager in all). paho delivers
a command on its network thread; it is queued (at most INBOX commands: a flood is dropped, not
kept) and carried out on a thread of ours, since a verb may take seconds (a graceful stop).
Every command carried out or refused gets a reply, signed with the key when there is one:
``{"id": ..., "ok": true}`` or ``{"id": ..., "ok": false, "error": "one line"}``. A refused one
is announced as a warning with its reason (never its signature) and changes nothing; one the
manager cannot carry out (no such route, say) is refused by the manager's own checks before
anything changes. Nothing a command holds can end the thread: whatever goes wrong is that
command's refusal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from .control import Refused, RemoteCommand, Verifier, signed_reply

log = logging.getLogger("routemq.fleet")

INBOX = 100  # commands waiting to be carried out; more are dropped (and said so once a second)

Execute = Callable[[RemoteCommand], None]
Announce = Callable[[str, int], None]


def _log(message: str, level: int) -> None:
    log.log(level, "%s", message)


class RemoteControl:
    def __init__(
        self, topic_root: str, key: str | None, to: str, execute: Execute, announce: Announce = _log
    ) -> None:
        """Commands for ``to`` (``<group>/<manager id>``) on ``topic_root``/control; ``announce``
        tells the operator what was carried out or refused (the manager's events)."""
        self.control_topic = f"{topic_root}/control"
        self.reply_topic = f"{topic_root}/reply"
        self._key = key
        self._verifier = Verifier(key, to, started=time.time())
        self._execute = execute
        self._announce = announce
        self._inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=INBOX)
        self._dropped = 0
        self._dropped_said = 0.0
        self._client: mqtt.Client | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routemq-fleet-control", daemon=True)

    def attach(self, client: mqtt.Client) -> None:
        """Listen on ``client`` (subscribe on every connection: see :meth:`connected`)."""
        self._client = client
        client.message_callback_add(self.control_topic, self._on_command)
        self._thread.start()

    def connected(self, client: mqtt.Client) -> None:
        client.subscribe(self.control_topic, qos=1)

    def stop(self) -> None:
        """Take no more commands; wait a little for one being carried out."""
        self._closed.set()
        with contextlib.suppress(queue.Full):  # full: the thread sees _closed at its next command
            self._inbox.put_nowait(None)
        self._thread.join(timeout=5)

    def _on_command(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain or self._closed.is_set():
            return  # an old command kept by the broker: never carried out on connecting
        try:
            self._inbox.put_nowait(bytes(message.payload))
        except queue.Full:
            self._dropped += 1
            if time.monotonic() - self._dropped_said > 1.0:
                self._dropped_said = time.monotonic()
                self._announce(f"remote commands dropped: {self._dropped} arrived faster than they could be "
                               "carried out", logging.WARNING)

    def _run(self) -> None:
        while (raw := self._inbox.get()) is not None:
            if self._closed.is_set():
                break
            try:
                self._reply(*self._carry_out(raw))
            except Exception:  # a bug of ours must not end remote control: log it, go on
                log.exception("remote command: unexpected failure")

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
        if self._client is not None:
            self._client.publish(self.reply_topic, json.dumps(signed_reply(command_id, error, self._key)), qos=1)

