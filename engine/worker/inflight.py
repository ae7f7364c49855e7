"""Messages in hand: taken from paho, handled, and only then acknowledged.

paho calls :meth:`InFlight.on_message` from ``loop_read`` on the event loop's thread. The
message goes to the inbox, and the inbox is emptied by one callback scheduled on the same loop
(``call_soon``: no wake-up needed), so a read of many messages is handled as one batch. Each
message is dispatched through the router's own path (``Router.match`` then ``Route.invoke``):
a plain handler runs inline, anything awaitable it returns (and every coroutine route) runs as
a task. At most ``limit`` (worker_concurrency) messages are in hand: beyond that the socket is
not read and the broker keeps the rest. A message is acknowledged (``manual_ack``) only once
its handler has returned, so a message in hand when the process dies is delivered again to the
slot's session.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from ..in_hand import InHandTable
from ..protocol import RouteTimes
from ..router import Route, Router
from ..timings import Histogram
from .busy import BusyClock
from .dead_letters import DeadLetters
from .failures import FailureLog

log = logging.getLogger("routemq.worker")

BATCH_SECONDS = 0.1  # longest run of inline handlers before the event loop gets a turn
_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')


def decode_payload(raw: bytes | bytearray) -> Any:
    """Decoded JSON when ``raw`` is valid JSON, else the raw bytes."""
    if not raw or raw[0] not in _JSON_START:
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # invalid JSON or UTF-8; absurdly deep nesting
        return raw


def _nothing() -> None:
    pass


class InFlight:
    """The inbox, the concurrency limit, dispatch, the counts per route, and the acknowledgements.

    Everything here runs on the event loop's thread. ``route`` is the pool's route (None for the
    main worker, which serves every non-shared route).
    """

    def __init__(self, router: Router, route: Route | None, limit: int) -> None:
        self.router = router
        self.route = route
        self.limit = limit
        self.received = 0
        self.handled = 0
        self.failed = 0
        self.by_route: dict[str, list[int]] = {}  # route pattern -> [handled, failed]
        self.last_message_at: float | None = None  # wall clock
        self.pending = 0  # taken from paho and not yet acknowledged
        # How busy the worker is (the autoscaler's signal): a plain handler takes all of it, an
        # async one its share of the concurrency limit. The main worker counts as plain.
        waits = route is not None and route.is_async
        self.busy = BusyClock(1.0 / limit if waits else 1.0)
        self._busy_each = waits  # with a share of 1, only 0 -> 1 and 1 -> 0 change the level
        self._inbox: deque[mqtt.MQTTMessage] = deque()  # read, not yet handled
        self._inbox_scheduled = False
        self._running: dict[int, float] = {}  # handler id -> start time (monotonic)
        self._last_started = 0.0
        self.times: dict[str, Histogram] = {}  # route pattern -> handler times since the last heartbeat
        self.failures = FailureLog()
        self._next_id = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self._client: Any = None
        self._ack: Callable[[int, int], object] = lambda mid, qos: None
        self._pause: Callable[[], None] = _nothing
        self._resume: Callable[[], None] = _nothing
        self._loop: asyncio.AbstractEventLoop | None = None
        # Poison messages (engine/in_hand.py, dead_letters.py): what the manager can read if a
        # handler kills the process, and the messages to set aside. None: not tracked.
        self.in_hand: InHandTable | None = None
        self.dead_letters: DeadLetters | None = None
        self._held: dict[int, int] = {}  # handler id -> its in-hand entry

    def attach(self, client: mqtt.Client, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """The client the messages come from (handed to handlers, and acknowledging), and how
        to stop and resume reading its socket."""
        self._client = client
        self._ack = client.ack
        self._pause, self._resume = pause, resume
        client.on_message = self.on_message

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def keep_for_session(self) -> None:
        """From now on leave QoS>0 messages unacknowledged: the broker delivers them to this
        slot's session again when the slot restarts."""
        if self._client is not None:
            self._client.on_message = self._on_message_keeping_session

    # --- taking (paho's on_message, in loop_read) ----------------------------------------------

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        self.pending += 1
        if self._busy_each or self.pending == 1:
            self.busy.set(self.pending)
        if self.pending >= self.limit:
            self._pause()
        self._inbox.append(message)
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            self._loop.call_soon(self._take_inbox)  # type: ignore[union-attr]  # same thread: no wake-up needed

    def _on_message_keeping_session(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.qos > 0:
            self.received += 1
            return
        self.on_message(client, userdata, message)

    # --- handling --------------------------------------------------------------------------------

    def _take_inbox(self) -> None:
        self._inbox_scheduled = False
        inbox = self._inbox
        until = time.monotonic() + BATCH_SECONDS
        while inbox:
            self._handle(inbox.popleft())
            # The last handler's start time, taken anyway: no clock read of our own per message.
            if inbox and self._last_started > until:
                # Plain handlers run inline: a batch of slow ones would hold up the heartbeats
                # (the manager would see no progress, then a jump) and the keepalive pings. The
                # rest of the batch goes on after the loop's turn.
                self._inbox_scheduled = True
                self._loop.call_soon(self._take_inbox)  # type: ignore[union-attr]
                return

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        self.last_message_at = time.time()
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.error("a message whose topic is not valid UTF-8 was dropped")
            self.failed += 1
            self._finish(message)
            return
        found = self.router.match(topic)
        if found is None:  # matched a merged subscription but no route: nobody wants it
            self._finish(message)
            return
        route, params = found
        if route is not self.route and (route.shared or self.route is not None):
            self._finish(message)  # a more specific route is served by another pool, with its own copy
            return
        letters = self.dead_letters
        if letters is not None and letters.waiting and letters.take(route, topic, message.payload, message.qos,
                                                                     self._client):
            self._finish(message)
            return
        payload = decode_payload(message.payload)
        handler_id = self._next_id = self._next_id + 1
        self._running[handler_id] = self._last_started = started = time.monotonic()
        if self.in_hand is not None:
            self._held[handler_id] = self.in_hand.hold(topic.encode(), message.payload, message.qos, started)
        try:
            result = route.invoke(topic, params, payload, self._client)
        except Exception as error:  # a bad message never kills the worker
            self._handler_failed(route, topic, message.payload, error)
            self._done(handler_id, message, route, ok=False)
            return
        # A plain function may still return an awaitable; None (the usual result) is not one.
        if result is None or not inspect.isawaitable(result):
            self._done(handler_id, message, route, ok=True)
            return
        task = asyncio.ensure_future(self._await(handler_id, route, topic, result, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(
        self, handler_id: int, route: Route, topic: str, awaitable: Any, message: mqtt.MQTTMessage
    ) -> None:
        try:
            await awaitable
        except Exception as error:
            self._handler_failed(route, topic, message.payload, error)
            self._done(handler_id, message, route, ok=False)
        else:
            self._done(handler_id, message, route, ok=True)

    def _handler_failed(self, route: Route, topic: str, payload: bytes | bytearray, error: Exception) -> None:
        # Reported with the next heartbeat (grouped, with the traceback): see failures.py.
        name = getattr(route.handler, "__qualname__", None) or repr(route.handler)
        self.failures.failed(route.topic, name, error, topic, payload)

    def _done(self, handler_id: int, message: mqtt.MQTTMessage, route: Route, ok: bool) -> None:
        started = self._running.pop(handler_id, None)
        if started is not None:
            times = self.times.get(route.topic)
            if times is None:
                times = self.times[route.topic] = Histogram()
            times.record(time.monotonic() - started)
        if self.in_hand is not None:
            self.in_hand.release(self._held.pop(handler_id, -1))
        counts = self.by_route.get(route.topic)
        if counts is None:
            counts = self.by_route[route.topic] = [0, 0]
        if ok:
            self.handled += 1
            counts[0] += 1
        else:
            self.failed += 1
            counts[1] += 1
        self._finish(message)

    def _finish(self, message: mqtt.MQTTMessage) -> None:
        # Acknowledge only now: a worker that dies before this line gets the message again.
        if message.qos > 0:
            self._ack(message.mid, message.qos)
        self.pending -= 1
        if self._busy_each or self.pending == 0:
            self.busy.set(self.pending)
        if self.pending == self.limit - 1:  # just went below the limit: read the socket again
            self._resume()

    # --- views and waiting ----------------------------------------------------------------------

    def oldest_handler_age(self) -> float | None:
        """Seconds the longest-running handler has run, None when none runs."""
        oldest = min(self._running.values(), default=None)
        return None if oldest is None else time.monotonic() - oldest

    def counts_by_route(self) -> dict[str, tuple[int, int]]:
        return {topic: (counts[0], counts[1]) for topic, counts in self.by_route.items()}

    def take_timings(self) -> tuple[RouteTimes, ...]:
        """The handler times recorded since the last call, per route; then start again."""
        if not self.times:
            return ()
        times, self.times = self.times, {}
        return tuple(
            RouteTimes(topic, tuple((i, n) for i, n in enumerate(h.counts) if n), h.sum, h.max)
            for topic, h in times.items()
        )

    @property
    def idle(self) -> bool:
        return self.pending == 0 and not self._inbox and not self._tasks

    async def finish_in_hand(self) -> None:
        """Wait until every message taken from paho has been handled and acknowledged."""
        while not self.idle:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=0.05)
            else:
                await asyncio.sleep(0.01)
