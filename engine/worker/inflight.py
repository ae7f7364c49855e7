"""Messages in hand: taken from paho, handled, and only then acknowledged.

Messages arrive on the event loop's thread: most in batches through :meth:`InFlight.take`
(the PUBLISH packets BufferedClient parsed itself), the rest one by one through
:meth:`InFlight.on_message`, called by paho from ``loop_read``. Each goes to the inbox, and
the inbox is emptied by one callback scheduled on the same loop (``call_soon``: no wake-up
needed), so a read of many messages is handled as one batch. Each message is dispatched
through the router's own path (``Router.match`` then ``Route.invoke``): a plain handler runs
inline, anything awaitable it returns (and every coroutine route) runs as a task. At most
``limit`` (worker_concurrency) messages are in hand: beyond that the socket is not read and
the broker keeps the rest. A message is acknowledged (``manual_ack``) only once its handler
has returned, so a message in hand when the process dies is delivered again to the slot's
session.

The path is paid by every message, so it is kept short: what a topic leads to (route, captured
parameters, the topic's bytes for the in-hand table) is remembered per topic string; a plain
handler's start time stays a local (only tasks are listed for ``oldest_handler_age``: nothing
can read the list while a plain handler has the loop); JSON is decoded without ``json.loads``'s
wrapping; and a batch is counted, and reading paused, once.
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
from .buffered_client import Publish
from .busy import BusyClock
from .dead_letters import DeadLetters
from .failures import FailureLog

log = logging.getLogger("routemq.worker")

BATCH_SECONDS = 0.1  # longest run of inline handlers before the event loop gets a turn
PLANS_KEPT = 4096  # topics whose match is remembered; beyond that the memory starts again
_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')
_JSON_SPACE = frozenset(b" \t\r\n")
# The C scanner json.loads ends up in, and its pattern for space (both undeclared in typeshed).
_scan_json: Callable[[str, int], tuple[Any, int]] = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]
_json_space: Callable[[str, int], Any] = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]

Plan = tuple[Route | None, dict[str, str], bytes]  # route (None: not handled here), params, topic bytes


def decode_payload(raw: bytes | bytearray) -> Any:
    """Decoded JSON when ``raw`` is valid JSON, else the raw bytes.

    What ``json.loads(raw)`` returns, without its detour (encoding detection, two Python
    frames, a regex for leading space): about a third of its cost for a small document."""
    if not raw or raw[0] not in _JSON_START:
        return raw
    if len(raw) > 1 and not raw[1]:  # UTF-16 or UTF-32: json.loads detects and decodes those
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            return raw
    try:
        text = raw.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        start = 0 if raw[0] not in _JSON_SPACE else _json_space(text, 0).end()
        value, end = _scan_json(text, start)
    except (ValueError, RecursionError, StopIteration):  # invalid JSON or UTF-8; absurdly deep nesting
        return raw
    if end != len(text) and _json_space(text, end).end() != len(text):
        return raw  # something after the document
    return value


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
        self._inbox: deque[mqtt.MQTTMessage | Publish] = deque()  # read, not yet handled
        self._inbox_scheduled = False  # a pass of handling is due (at most one at a time)
        # True while the socket's reader reads: it calls handle_inbox once done, so what arrives
        # meanwhile is handled in the same pass of the loop, not scheduled for the next one.
        self.collecting = False
        self._keeping_session = False
        self._plans: dict[str, Plan] = {}  # topic -> what it leads to (see _plan)
        self._plans_for = len(router.routes)  # the routes the plans were made with
        self._running: dict[int, float] = {}  # task id -> its handler's start time (monotonic)
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
        self._keeping_session = True
        if self._client is not None:
            self._client.on_message = self._on_message_keeping_session

    # --- taking (paho's on_message, in loop_read) ----------------------------------------------

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage | Publish) -> None:
        self.received += 1
        self.pending += 1
        if self._busy_each or self.pending == 1:
            self.busy.set(self.pending)
        if self.pending >= self.limit:
            self._pause()
        self._inbox.append(message)
        if not self._inbox_scheduled and not self.collecting:
            self._inbox_scheduled = True
            self._loop.call_soon(self._take_inbox)  # type: ignore[union-attr]  # same thread: no wake-up needed

    def take(self, messages: list[Publish]) -> None:
        """Messages BufferedClient parsed itself (no more than the limit leaves room for): as
        ``on_message`` for each, with the counting done once. Not scheduled: the caller collects
        and calls :meth:`handle_inbox` once it has read what there is (ClientIO._read does)."""
        if self._keeping_session:
            for message in messages:
                self._on_message_keeping_session(self._client, None, message)
            return
        count = len(messages)
        self.received += count
        self.pending = pending = self.pending + count
        if self._busy_each or pending == count:  # within one batch the level only ends higher
            self.busy.set(pending)
        if pending >= self.limit:
            self._pause()
        self._inbox.extend(messages)

    def _on_message_keeping_session(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage | Publish
    ) -> None:
        if message.qos > 0:
            self.received += 1
            return
        self.on_message(client, userdata, message)

    # --- handling --------------------------------------------------------------------------------

    def handle_inbox(self) -> None:
        """Handle what was collected now, in this pass of the loop (for up to BATCH_SECONDS; the
        rest in a later pass): scheduled for the next, it would cost a pass (an epoll_wait) more.
        Nothing when a pass of handling is due already (a long batch goes on there: one at a
        time, or the loop's other work would wait for several)."""
        self.collecting = False
        if self._inbox and not self._inbox_scheduled:
            self._handle_batch()

    def _take_inbox(self) -> None:
        self._inbox_scheduled = False
        self._handle_batch()

    def _handle_batch(self) -> None:
        inbox = self._inbox
        # Wall clock once a batch, not once a message: it only says how long the route is quiet.
        self.last_message_at = time.time()
        if len(self.router.routes) != self._plans_for:  # routes added since the plans were made
            self._plans.clear()
            self._plans_for = len(self.router.routes)
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

    def _plan(self, topic: str) -> Plan:
        """What ``topic`` leads to here, remembered: the route (None when no route here serves
        it), the parameters it captures (shared by its messages: Route.invoke copies them for
        middleware), and its bytes for the in-hand table."""
        found = self.router.match(topic)
        route: Route | None = None
        params: dict[str, str] = {}
        if found is not None:
            route, params = found
            if route is not self.route and (route.shared or self.route is not None):
                route = None  # a more specific route is served by another pool, with its own copy
        if len(self._plans) >= PLANS_KEPT:  # a topic per device, say: forget, start again
            self._plans.clear()
        plan = self._plans[topic] = (route, params, topic.encode())
        return plan

    def _handle(self, message: mqtt.MQTTMessage | Publish) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.error("a message whose topic is not valid UTF-8 was dropped")
            self.failed += 1
            self._finish(message)
            return
        route, params, topic_bytes = self._plans.get(topic) or self._plan(topic)
        if route is None:  # matched a merged subscription but no route here: nobody here wants it
            self._finish(message)
            return
        letters = self.dead_letters
        if letters is not None and letters.waiting and letters.take(route, topic, message.payload, message.qos,
                                                                     self._client):
            self._finish(message)
            return
        payload = decode_payload(message.payload)
        self._last_started = started = time.monotonic()
        in_hand = self.in_hand
        held = -1 if in_hand is None else in_hand.hold(topic_bytes, message.payload, message.qos, started)
        try:
            result = route.invoke(topic, params, payload, self._client)
        except Exception as error:  # a bad message never kills the worker
            self._handler_failed(route, topic, message.payload, error)
            self._done(route, started, held, message, ok=False)
            return
        # A plain route's handler has run; it may still have returned an awaitable (None, the
        # usual result, is not one). Any other route returned its coroutine.
        if route.is_plain and (result is None or not inspect.isawaitable(result)):
            self._done(route, started, held, message, ok=True)
            return
        task_id = self._next_id = self._next_id + 1
        self._running[task_id] = started
        task = asyncio.ensure_future(self._await(task_id, route, started, held, topic, result, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(
        self, task_id: int, route: Route, started: float, held: int, topic: str, awaitable: Any,
        message: mqtt.MQTTMessage | Publish,
    ) -> None:
        try:
            await awaitable
        except Exception as error:
            self._handler_failed(route, topic, message.payload, error)
            ok = False
        else:
            ok = True
        del self._running[task_id]
        self._done(route, started, held, message, ok)

    def _handler_failed(self, route: Route, topic: str, payload: bytes | bytearray, error: Exception) -> None:
        # Reported with the next heartbeat (grouped, with the traceback): see failures.py.
        name = getattr(route.handler, "__qualname__", None) or repr(route.handler)
        self.failures.failed(route.topic, name, error, topic, payload)

    def _done(self, route: Route, started: float, held: int, message: mqtt.MQTTMessage | Publish, ok: bool) -> None:
        times = self.times.get(route.topic)
        if times is None:
            times = self.times[route.topic] = Histogram()
        times.record(time.monotonic() - started)
        if held >= 0:
            self.in_hand.release(held)  # type: ignore[union-attr]  # held: there is a table
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

    def _finish(self, message: mqtt.MQTTMessage | Publish) -> None:
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
