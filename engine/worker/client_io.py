"""paho-mqtt on the event loop: the socket, reading, keepalive, connecting and reconnecting.

paho's I/O runs on the asyncio loop of the main thread, through its external-loop interface
(socket callbacks, loop_read/loop_write/loop_misc), not on a thread of its own: a message then
reaches its handler, and its acknowledgement the socket, without changing threads. With paho's
thread each message cost a self-pipe write to wake the loop, a socket-pair write to wake paho
for the acknowledgement and two GIL hand-offs: half a bare paho subscriber's throughput
(bench/throughput.py).

What to subscribe to on a connect, and whether to keep (re)connecting at all, is the worker's
lifecycle's to say (:meth:`ClientIO.keep_subscribed`, :meth:`ClientIO.unsubscribe`,
:meth:`ClientIO.let_go`); what happens on the connection is told back to it through
:class:`ConnectionEvents`, always on the loop's thread and never from inside a paho callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..mqtt_client import (
    AUTH_REFUSALS,
    CONFIG_REFUSALS,
    connect_options,
    describe_connect_error,
    end_session,
    new_client,
)
from ..protocol import Failure
from ..settings import Settings
from .buffered_client import READ_SIZE, BufferedClient
from .inflight import InFlight

RECONNECT_MIN_DELAY = 0.5
RECONNECT_MAX_DELAY = 4.0  # a broker that comes back is found again within seconds
DISCONNECT_TIMEOUT = 2.0  # for the DISCONNECT (and acknowledgements before it) to be written
KEEPALIVE_CHECK = 1.0  # paho's timers (PINGREQ, dead link) are run this often

log = logging.getLogger("routemq.worker")


class ConnectionEvents(Protocol):
    """What the connection tells the worker (each called on the loop's thread)."""

    def connected(self) -> None: ...

    def connect_failed(self, reason: str, failure: Failure | None) -> None:
        """An attempt failed: ``failure`` when retrying cannot cure it, else None (retrying)."""

    def connection_lost(self, reason: str) -> None: ...

    def subscribed(self, refused: list[str]) -> None:
        """The SUBACK came; ``refused`` holds the filters the broker refused."""

    def unsubscribed(self) -> None: ...


def _describe_refusal(reason: Any) -> tuple[str, Failure | None]:
    """What a refused CONNACK means, and the failure when retrying will not cure it."""
    if reason.value in AUTH_REFUSALS:
        return f"bad credentials: {reason}", Failure.AUTH
    failure = Failure.CONFIG if reason.value in CONFIG_REFUSALS else None
    return f"broker refused the connection: {reason}", failure


def _backoff() -> Iterator[float]:
    delay = RECONNECT_MIN_DELAY
    while True:
        yield delay
        delay = min(delay * 2, RECONNECT_MAX_DELAY)


class ClientIO:
    """One slot's paho client, driven by the event loop. Public attributes are read for heartbeats."""

    def __init__(self, settings: Settings, client_id: str, inflight: InFlight, events: ConnectionEvents) -> None:
        self.settings = settings
        self.client_id = client_id
        self._events = events
        self._inflight = inflight
        self.connected = False
        self.subscribed = False
        self._subscriptions: list[tuple[str, int]] = []  # subscribed on every connect
        self._leaving: list[str] = []  # unsubscribed on every connect (retiring)
        self._asked: list[tuple[str, int]] = []  # the filters of the SUBSCRIBE last sent
        self._reading_paused = False  # worker_concurrency messages in hand: the broker holds the rest
        self._reader_on = False  # the selector watches the socket for reading
        self._flush_due = False  # a write of what paho queued is due (scheduled, or at the end of _read)
        self._reading = False  # in _read: what it reads is handled, and acknowledged, before it returns
        self._sock: Any = None  # paho's socket while it is open, and its descriptor: the loop
        self._fd: int | None = None  # is given the number (a socket object costs a repr per miss)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._let_go = asyncio.Event()  # set: no more connecting, the worker is leaving
        self._reconnecting: asyncio.Future[Any] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.client = client = cast(BufferedClient, new_client(settings, client_id, clean=False, manual_ack=True,
                                                               client_class=BufferedClient))
        client.max_inflight_messages_set(max(20, settings.worker_concurrency))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        inflight.attach(client, pause=self.pause_reading, resume=self.resume_reading)
        client.connect_async(**connect_options(settings, clean=False, session_expiry=settings.session_expiry))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on ``loop`` (called on it): its thread is where paho's I/O happens from now on."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._inflight.start(loop)
        self._spawn(self._keepalive())

    def stop(self) -> None:
        self._let_go.set()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coroutine: Any) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)  # referenced: not collected while it runs
        task.add_done_callback(self._tasks.discard)
        return task

    # --- what to do on the connection (the lifecycle decides) -----------------------------------

    def keep_subscribed(self, subscriptions: list[tuple[str, int]]) -> None:
        """Subscribe to ``subscriptions`` on every connect (the session survives, the worker
        does not know whether the broker kept it)."""
        self._subscriptions, self._leaving = subscriptions, []

    def unsubscribe(self, filters: list[str]) -> None:
        """Unsubscribe from ``filters`` now if connected, and again on every connect."""
        self._subscriptions, self._leaving = [], filters
        if self.connected:
            self.client.unsubscribe(filters)

    def let_go(self) -> None:
        """No more connecting, reconnecting or subscribing: the worker is leaving."""
        self._subscriptions, self._leaving = [], []
        self._let_go.set()

    # --- connecting ---------------------------------------------------------------------------

    async def connect(self) -> bool:
        """The first connection: True once connected; False after a fatal refusal, or once the
        worker has let go of the connection."""
        return await self._keep_trying(wait_first=False)

    def _start_reconnecting(self) -> None:
        """After losing the connection: connect again, with backoff, until connected or let go."""
        if self._let_go.is_set() or self._sock is not None:  # a newer socket is open already
            return
        attempt = self._reconnecting
        if attempt is not None and not attempt.done():
            # It may be the attempt that opened the socket just lost (its CONNACK refused, say)
            # and about to report success: look again once it has ended.
            attempt.add_done_callback(lambda _: self._start_reconnecting())
            return
        self._reconnecting = self._spawn(self._keep_trying(wait_first=True))

    async def _keep_trying(self, wait_first: bool) -> bool:
        """Connect, retrying with backoff while the broker is unreachable."""
        delays = _backoff()
        if wait_first and not await self._rest(next(delays)):
            return False
        while not self._let_go.is_set():
            outcome = await self._try_connect()
            if outcome is not None:
                return outcome
            if not await self._rest(next(delays)):
                break
        return False

    async def _rest(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the worker lets go meanwhile; True when it still wants to connect."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._let_go.wait(), seconds)
        return not self._let_go.is_set()

    async def _try_connect(self) -> bool | None:
        """One attempt: True connected, False a fatal refusal (reported), None worth retrying."""
        assert self._loop is not None
        s = self.settings
        try:
            # Blocking (TCP connect, TLS handshake): in the executor. paho's socket callbacks,
            # called from there, hand the socket to the loop.
            await self._loop.run_in_executor(None, self.client.reconnect)
            return True
        except (OSError, ValueError) as exc:
            reason, fatal = describe_connect_error(exc, s.broker, s.port)
            self._events.connect_failed(reason, Failure.TLS if fatal else None)
            return False if fatal else None

    async def disconnect(self, end_session_too: bool) -> None:
        """Disconnect (after writing what is queued); with ``end_session_too`` end the session."""
        self.let_go()
        v5 = self.settings.protocol == "5"
        properties = None
        if end_session_too and v5:
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0
        self.client.disconnect(properties=properties)
        # The loop writes the DISCONNECT (after any acknowledgement still queued) and paho closes
        # the socket once it is out: wait for that, since the loop ends soon after we return.
        deadline = time.monotonic() + DISCONNECT_TIMEOUT
        while self.client.socket() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if end_session_too and not v5:
            assert self._loop is not None
            await self._loop.run_in_executor(None, self._end_session_311)

    def _end_session_311(self) -> None:
        try:
            end_session(self.settings, self.client_id)
        except OSError as exc:
            log.warning("could not end the broker session of %s: %s", self.client_id, exc)

    # --- paho's socket on the loop --------------------------------------------------------------

    def _in_loop(self, func: Callable[..., None], *args: Any) -> None:
        """Run ``func`` now on the loop's thread; from another thread, soon, on the loop."""
        if threading.get_ident() == self._loop_thread:
            func(*args)
        else:
            self._tell(func, *args)

    def _tell(self, func: Callable[..., None], *args: Any) -> None:
        """Run ``func`` on the loop soon: out of paho's callback, whatever the thread."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed while stopping
                self._loop.call_soon_threadsafe(func, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch_socket, sock)  # called by reconnect(), in the executor

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._forget_socket, sock)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch_writes, sock)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._forget_writes, sock)

    def _watch_socket(self, sock: Any) -> None:
        assert self._loop is not None
        self._sock, self._fd = sock, sock.fileno()
        self._reader_on = not self._reading_paused
        if self._reader_on:
            self._loop.add_reader(self._fd, self._read)

    def _forget_socket(self, sock: Any) -> None:
        # paho calls this before closing the socket. A socket that is not the current one was
        # forgotten already.
        assert self._loop is not None
        if sock is self._sock and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._sock = self._fd = None
            self._reader_on = False

    def _watch_writes(self, sock: Any) -> None:
        # paho has something to write (acknowledgements, mostly). Written at the end of this pass
        # of the loop, all of it at once, straight to the socket; the selector is asked to watch
        # for writability only when the socket cannot take it all. Registering at once cost two
        # epoll_ctl calls and a trip through epoll_wait for every pass that acknowledged.
        assert self._loop is not None
        if sock is self._sock and self._fd is not None and not self._flush_due:
            self._flush_due = True
            if not self._reading:  # else _read writes it before it returns
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        assert self._loop is not None
        self._flush_due = False
        if self._fd is None:
            return
        client = self.client
        client.loop_write()
        if client.want_write() and self._fd is not None:
            self._loop.add_writer(self._fd, client.loop_write)

    def _forget_writes(self, sock: Any) -> None:
        assert self._loop is not None
        if sock is self._sock and self._fd is not None:
            self._loop.remove_writer(self._fd)

    def _read(self) -> None:
        """Take what the socket holds (up to worker_concurrency messages), handle it and write the
        acknowledgements, all in this pass of the loop: scheduled for later, each would cost
        another pass (an epoll_wait), which at moderate rates comes once every few messages."""
        if self._reading_paused:  # woken for a socket we do not read now: stop watching it
            self._stop_watching_reads()
            return
        self._reading = self._inflight.collecting = True
        try:
            self._take_readable()
        finally:
            try:
                self._inflight.handle_inbox()  # InFlight.take leaves that to us
            finally:
                self._reading = False
                if self._flush_due:  # nothing else would write it: _watch_writes scheduled nothing
                    self._flush()

    def _take_readable(self) -> None:
        client = self.client
        inflight = self._inflight
        drained = False  # the last read took less than it could: the socket is very likely empty
        while not self._reading_paused:
            # The plain PUBLISH packets already buffered, parsed without paho (buffered_client.py),
            # handed over in one go; as many as the concurrency limit leaves room for.
            taken = client.take_publishes(inflight.limit - inflight.pending)
            if taken:
                inflight.take(taken)  # pauses reading at the limit
                continue
            if not client.buffered:
                if drained and not self._tls_pending():
                    return  # another recv would only say EAGAIN: the selector tells us when
                got = client.fill()  # so that what comes is parsed here, not by paho, at any rate
                if got > 0:
                    drained = got < READ_SIZE
                    continue
            before = inflight.received
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:  # one packet; on_message queues it
                return
            if inflight.received == before and not client.buffered and not self._tls_pending():
                # Nothing read, or not a PUBLISH, and nothing left in our buffer (which the
                # selector cannot see): back to the selector, except for TLS bytes already
                # decrypted, which it cannot see either.
                return

    def _tls_pending(self) -> bool:
        sock = self.client.socket()
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def pause_reading(self) -> None:
        # Only a flag: the selector keeps watching the socket until _read is called while paused.
        # Reading mostly resumes within the same pass of the loop (the inbox's first message
        # done), and unregistering then registering again cost two epoll_ctl calls every
        # worker_concurrency messages.
        self._reading_paused = True

    def _stop_watching_reads(self) -> None:
        assert self._loop is not None
        if self._reader_on and self._fd is not None:
            self._loop.remove_reader(self._fd)
        self._reader_on = False

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        assert self._loop is not None
        self._reading_paused = False
        if self._fd is not None:
            if not self._reader_on:
                self._reader_on = True
                self._loop.add_reader(self._fd, self._read)
            if self.client.buffered:  # read already, so the socket may never wake us for it
                self._loop.call_soon(self._read)

    async def _keepalive(self) -> None:
        """paho's timers: a PINGREQ when the link is quiet; a dead link closed (and reconnected)."""
        while True:
            await asyncio.sleep(KEEPALIVE_CHECK)
            self.client.loop_misc()

    # --- paho's callbacks (on the loop's thread, or in the executor during reconnect()) ----------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._tell(self._events.connect_failed, *_describe_refusal(reason))
            return
        self.connected = True
        if self._subscriptions:
            self._asked = self._subscriptions
            client.subscribe(self._subscriptions)
        elif self._leaving:
            client.unsubscribe(self._leaving)
        self._tell(self._events.connected)
        if self._subscriptions and flags.session_present:
            # A kept session holds the subscriptions already, and its backlog comes before the
            # SUBACK (a restarted worker may handle a thousand messages first): it serves now.
            self.subscribed = True
            self._tell(self._events.subscribed, [])

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        accepted, self.connected = self.connected, False
        self.subscribed = False
        if self._let_go.is_set():
            return
        if accepted:
            text = str(reason)
        else:  # paho names a CONNACK that never came (a blackholed broker) a "protocol error"
            s = self.settings
            text = f"no CONNACK from {s.broker}:{s.port}: a connect timeout, or not an MQTT broker ({reason})"
        self._tell(self._events.connection_lost, text)
        self._tell(self._start_reconnecting)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        refused = [topic for (topic, _), reason in zip(self._asked, reasons, strict=False) if reason.is_failure]
        self.subscribed = not refused
        self._tell(self._events.subscribed, refused)

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self.subscribed = False
        self._tell(self._events.unsubscribed)
