"""Synthetic traffic for the example routers, so that a first run has something to show."""

from __future__ import annotations

import json
import logging
import random
import threading
import time

from .mqtt_client import connect_options, new_client
from .settings import Settings

log = logging.getLogger("routemq.demo")
SENSORS = 12
DEVICES = 3


class DemoTraffic:
    """Publishes sensor readings (and now and then a device command) at ``rate`` messages/s.

    QoS 1 throughout: the embedded broker's shared subscriptions are exact at QoS 1 only.
    """

    def __init__(self, settings: Settings, rate: float = 20.0) -> None:
        if rate <= 0:
            raise ValueError(f"--demo rate must be above 0 messages/s, not {rate:g}")
        self.settings = settings
        self.rate = rate
        self.published = 0
        self._stop = threading.Event()
        client_id = f"{settings.client_id}-demo-{random.getrandbits(24):06x}"
        self._client = new_client(settings, client_id, clean=True)
        self._client.max_queued_messages_set(10000)
        self._thread = threading.Thread(target=self._run, name="routemq-demo", daemon=True)

    def start(self) -> DemoTraffic:
        self._client.connect_async(**connect_options(self.settings, clean=True, session_expiry=0))
        self._client.loop_start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            topic, payload = self._next_message()
            self._client.publish(topic, json.dumps(payload), qos=1)
            self.published += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind (broker down): do not burst to catch up

    def _next_message(self) -> tuple[str, dict[str, object]]:
        n = self.published
        if n % 50 == 49:
            device = f"d{n % DEVICES}"
            return f"devices/{device}/commands/ping", {"seq": n}
        sensor = f"s{n % SENSORS}"
        if n % 2:
            return f"sensors/{sensor}/humidity", {"value": round(random.uniform(30, 60), 1), "seq": n}
        return f"sensors/{sensor}/temperature", {"value": round(random.uniform(18, 26), 1), "seq": n}
