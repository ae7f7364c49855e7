"""WorkerProcess: the child process that serves one pool slot.

One worker = one OS process = one paho-mqtt client with a stable client id and a persistent
session. Its life:

1. load its routes (from the router package, or a pickled Router), exit ``EXIT_ROUTES`` if that
   fails;
2. connect (retrying with backoff while the broker is unreachable; exiting ``EXIT_AUTH`` or
   ``EXIT_TLS`` when the broker refuses the credentials or the TLS handshake fails), subscribe
   on every (re)connect;
3. serve: paho's network I/O runs on the asyncio loop of the main thread (paho's external-loop
   interface), whose ``on_message`` runs the handler (plain functions inline, coroutines as
   tasks, at most ``worker_concurrency`` at once: beyond that the socket is not read) and only
   then acknowledges it (``manual_ack``), so a message in hand when the process dies is
   delivered again to the slot's session;
4. stop (SIGTERM, or the manager going away): stop taking QoS>0 messages (left unacknowledged,
   the broker redelivers them to this slot's session), finish what is in hand, acknowledge,
   disconnect keeping the session, exit 0;
   or retire (the manager's "retire" command, or started in drain mode): unsubscribe, handle
   everything the broker still sends, then end the session so nothing is queued for it any more.

Every second the worker sends the manager a heartbeat with its counters and its log lines;
the manager decides whether it is hung.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import io
import json
import logging
import os
import pickle
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .router import Route, Router
from .settings import Settings
from .snapshot import EXIT_AUTH, EXIT_CONFIG, EXIT_CRASH, EXIT_OK, EXIT_ROUTES, EXIT_TLS
from .topics import plan_subscriptions

HEARTBEAT_INTERVAL = 1.0
RECONNECT_MIN_DELAY = 0.5
RECONNECT_MAX_DELAY = 4.0  # a broker that comes back is found again within seconds
DISCONNECT_TIMEOUT = 2.0  # for the DISCONNECT (and acknowledgements before it) to be written
KEEPALIVE_CHECK = 1.0  # paho's timers (PINGREQ, dead link) are run this often
DRAIN_QUIET = 0.5  # retiring: this long without a message after UNSUBACK means the queue is empty
MANAGER_GONE_GRACE = 3.0  # seconds to finish messages in hand when the manager has died
MAX_LOG_BACKLOG = 2000  # log lines kept for the next heartbeat (1 s); beyond that, counted, not sent

log = logging.getLogger("routemq.worker")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, sent to the child by pickle (never on a command line)."""

    slot: str
    client_id: str
    group_name: str
    route_topic: str | None  # the pool's route pattern; None for the main worker
    routes: tuple[str, Any]  # ("package", name, strict) or ("pickle", bytes)
    settings: Settings
    drain: bool = False  # start retiring: serve only what the slot's session still holds


def _run_from_command_line() -> None:
    """``python -m engine.worker_process --slot NAME --fd N``: the manager's socket is fd N.

    The spec (settings included) arrives as the first message on that socket, never on the
    command line or in the environment, so secrets stay out of ``ps``.
    """
    args = sys.argv[1:]
    fd = int(args[args.index("--fd") + 1])
    os.set_inheritable(fd, False)  # a program a handler starts must not hold the manager's socket open
    conn = Connection(fd)
    spec, sys_path = conn.recv()
    sys.path[:] = sys_path  # the manager's import path, so its router modules import here too
    main(spec, conn)


def main(spec: WorkerSpec, conn: Connection) -> None:
    """Serve ``spec``'s slot, talking to the manager over ``conn``. Never returns."""
    _die_with_parent()
    _quiet_standard_streams()
    link = _ManagerLink(conn)
    _install_logging(link, spec.settings.log_level)
    code = EXIT_CRASH
    try:
        code = _serve(spec, link)
    except _Fatal as fatal:
        link.send_now("fatal", {"code": fatal.code, "reason": fatal.reason})
        code = fatal.code
    except BaseException:  # a crash must reach the manager's log before we go
        log.critical("worker crashed:\n%s", traceback.format_exc())
        code = EXIT_CRASH
    finally:
        link.flush()
    sys.exit(code)


class _Fatal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _serve(spec: WorkerSpec, link: _ManagerLink) -> int:
    router, broken = _load_router(spec)
    try:
        worker = Worker(spec, router, link)
    except _Fatal as fatal:
        if broken:  # the route is missing because its module is broken: say which and why
            raise _Fatal(fatal.code, f"{fatal.reason}; broken router modules: {'; '.join(broken)}") from None
        raise
    return asyncio.run(worker.run())


def _load_router(spec: WorkerSpec) -> tuple[Router, list[str]]:
    """The routes, and the router modules that failed to load (a package loads what it can)."""
    kind = spec.routes[0]
    try:
        if kind == "package":
            from .router_registry import RouterRegistry

            _, package, strict = spec.routes
            registry = RouterRegistry(package, strict=strict)
            return registry.discover_and_load_routers(), [str(b) for b in registry.broken]
        return pickle.loads(spec.routes[1]), []
    except (Exception, SystemExit) as exc:  # any failure to load routes is reported the same way
        raise _Fatal(EXIT_ROUTES, f"cannot load routes: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Process plumbing
# ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when our parent dies, so that we never outlive the manager."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _quiet_standard_streams() -> None:
    # Workers share the manager's terminal, where a dashboard may be drawing. Their output goes
    # to the log stream instead (print() included); C-level writes go to /dev/null.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdout = _LogWriter(logging.INFO)
    sys.stderr = _LogWriter(logging.WARNING)


class _LogWriter(io.TextIOBase):
    """A text stream that turns each written line into a log record of ``routemq.worker.stdout``."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._buffer = ""
        self._logger = logging.getLogger("routemq.worker.output")

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line:
                self._logger.log(self._level, "%s", line)
        return len(text)


class _ManagerLink:
    """The pipe to the manager. Log lines are batched into heartbeats; sends are serialised."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.logs: deque[tuple[int, str, str]] = deque()
        self.logs_dropped = 0
        self.closed = False

    def add_log(self, level: int, name: str, message: str) -> None:
        if len(self.logs) >= MAX_LOG_BACKLOG:
            self.logs_dropped += 1
            return
        self.logs.append((level, name, message))

    def send_now(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self._conn.send((kind, body))
            except (OSError, EOFError, ValueError):
                self.closed = True  # the manager is gone; the control thread will stop us

    def take_logs(self) -> tuple[list[tuple[int, str, str]], int]:
        lines = []
        while self.logs:
            lines.append(self.logs.popleft())
        dropped, self.logs_dropped = self.logs_dropped, 0
        return lines, dropped

    def flush(self) -> None:
        lines, dropped = self.take_logs()
        if lines or dropped:
            self.send_now("logs", {"logs": lines, "logs_dropped": dropped})

    def recv(self) -> Any:
        return self._conn.recv()


class _PipeLogHandler(logging.Handler):
    def __init__(self, link: _ManagerLink) -> None:
        super().__init__()
        self._link = link
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._link.add_log(record.levelno, record.name, self.format(record))
        except Exception:  # logging must never break the worker
            self.handleError(record)


def _install_logging(link: _ManagerLink, level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_PipeLogHandler(link))
    root.setLevel(level)
    logging.getLogger("paho").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------

_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')


def decode_payload(raw: bytes) -> Any:
    """Decoded JSON when ``raw`` is valid JSON, else the raw bytes."""
    if not raw or raw[0] not in _JSON_START:
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # invalid JSON or UTF-8; absurdly deep nesting
        return raw


# ---------------------------------------------------------------------------------------------
# Connection failures
# ---------------------------------------------------------------------------------------------

# CONNACK refusals that retrying will not cure. MQTT 3.1.1 return codes and MQTT 5 reason codes.
_AUTH_REFUSALS = {4, 5, 0x86, 0x87, 0x8C}
_CONFIG_REFUSALS = {1, 2, 0x84, 0x85, 0x8A}


def _describe_connect_error(exc: BaseException, host: str, port: int) -> tuple[str, bool]:
    """(what went wrong, whether it is fatal) for an exception raised while connecting."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was rejected: {exc.verify_message}", True
    if isinstance(exc, ssl.SSLError):
        return f"TLS: handshake failed: {exc.reason or exc}", True
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {host}:{port} (is the broker running?)", False
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve broker host {host!r}", False
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out connecting to {host}:{port}", False
    return f"cannot connect to {host}:{port}: {exc}", False


def apply_credentials(client: mqtt.Client, s: Settings) -> None:
    """User name, password and TLS from the settings."""
    if s.username is not None:
        client.username_pw_set(s.username, s.password.reveal() if s.password else None)
    if s.tls:
        client.tls_set(
            ca_certs=s.tls_ca_certs,
            certfile=s.tls_certfile,
            keyfile=s.tls_keyfile,
            keyfile_password=s.tls_keyfile_password.reveal() if s.tls_keyfile_password else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(s.tls_insecure)


def new_client(settings: Settings, client_id: str, *, clean: bool, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for ``client_id`` with the settings' protocol, credentials and TLS."""
    v5 = settings.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    apply_credentials(client, settings)
    return client


def connect_options(settings: Settings, *, clean: bool, session_expiry: int) -> dict[str, Any]:
    """Arguments of ``connect``/``connect_async``: MQTT 5 gets a clean-start flag and an expiry."""
    options: dict[str, Any] = {"host": settings.broker, "port": settings.port, "keepalive": settings.keepalive}
    if settings.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry
        options.update(clean_start=clean, properties=properties)
    return options


def _brief_session(
    client: mqtt.Client,
    settings: Settings,
    done: threading.Event,
    *,
    clean: bool,
    session_expiry: int,
    timeout: float,
    waiting_for: str,
) -> None:
    """Connect, wait until ``done`` is set by the client's callbacks, disconnect."""
    client.connect(**connect_options(settings, clean=clean, session_expiry=session_expiry))
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise TimeoutError(f"no {waiting_for} from the broker within {timeout:g} s")
    finally:
        client.disconnect()
        client.loop_stop()


def end_session(settings: Settings, client_id: str, timeout: float = 5.0) -> None:
    """End the broker session of ``client_id``: connect once with a clean session, disconnect.

    MQTT 3.1.1 has no other way to end a persistent session; in MQTT 5 the clean start with a
    session expiry of 0 does the same. Raises OSError when the broker cannot be reached.
    """
    client = new_client(settings, client_id, clean=True)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    _brief_session(client, settings, connected, clean=True, session_expiry=0, timeout=timeout, waiting_for="CONNACK")


def leave_share_group(settings: Settings, client_id: str, filters: list[str], timeout: float = 5.0) -> None:
    """Unsubscribe the (offline) session of ``client_id`` from ``filters``, keeping the session.

    A dead slot's session stays in its share group and the broker keeps assigning it messages.
    For a slot that will not come back soon (crash-loop), this hands its share to the live
    workers. Messages already queued in the session stay there, unacknowledged, until the slot
    runs again (and resubscribes). Not for QoS 2: paho would take those messages (PUBREC).
    Raises OSError when the broker cannot be reached.
    """
    # manual_ack: never acknowledge what the session hands us; it is redelivered later.
    client = new_client(settings, client_id, clean=False, manual_ack=True)
    unsubscribed = threading.Event()
    client.on_connect = lambda c, *args: c.unsubscribe(filters)
    client.on_unsubscribe = lambda *args: unsubscribed.set()
    _brief_session(
        client,
        settings,
        unsubscribed,
        clean=False,
        session_expiry=settings.session_expiry,
        timeout=timeout,
        waiting_for="UNSUBACK",
    )


# ---------------------------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------------------------


class Worker:
    """One slot's MQTT client and handler runner. Public for tests and benchmarks."""

    def __init__(self, spec: WorkerSpec, router: Router, link: _ManagerLink) -> None:
        self.spec = spec
        self.settings = spec.settings
        self.router = router
        self.link = link
        self.route: Route | None = None
        if spec.route_topic is not None:
            self.route = router.find_route(spec.route_topic)
            if self.route is None or not self.route.shared:
                raise _Fatal(EXIT_ROUTES, f"route {spec.route_topic!r} is not a shared route of the loaded routers")
            self.subscriptions = [(self.route.get_subscription_topic(spec.group_name), self.route.qos)]
        else:
            self.subscriptions = plan_subscriptions((r.mqtt_topic, r.qos) for r in router.unshared_routes)
        self.client = self._make_client()
        # Counters (all written by the loop's thread, where paho runs too).
        self.received = 0
        self.handled = 0
        self.failed = 0
        self.skipped = 0
        self.by_route: dict[str, list[int]] = {}  # route pattern -> [handled, failed]
        self.last_message_at: float | None = None
        self.connected = False
        self.subscribed = False
        self.detail = "connecting"
        # Messages taken from paho and not yet acknowledged, bounded by worker_concurrency.
        self._limit = self.settings.worker_concurrency
        self._pending = 0
        self._reading_paused = False  # worker_concurrency messages in hand: the broker holds the rest
        self._inbox: deque[mqtt.MQTTMessage] = deque()  # read, not yet handled
        self._inbox_scheduled = False
        self._sock: Any = None  # paho's socket while it is open, and its descriptor: the loop
        self._fd: int | None = None  # is given the number (a socket object costs a repr per miss)
        self._loop_thread: int | None = None
        self._reconnecting = False
        self._reconnect_task: asyncio.Future[None] | None = None
        self._running: dict[int, float] = {}  # handler id -> start time (monotonic)
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False  # no new QoS>0 messages are taken
        self._retiring = spec.drain
        self._unsubscribed: asyncio.Event | None = None  # created on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._fatal: _Fatal | None = None
        self._disconnected = False
        self._deadline: threading.Timer | None = None

    # --- client setup --------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = new_client(s, self.spec.client_id, clean=False, manual_ack=True)
        client.max_inflight_messages_set(max(20, s.worker_concurrency))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.connect_async(**connect_options(s, clean=False, session_expiry=s.session_expiry))
        return client

    # --- the main coroutine --------------------------------------------------------------

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop_requested = asyncio.Event()
        self._unsubscribed = asyncio.Event()
        # A plain signal handler, not the loop's: Python runs it between bytecodes even while a
        # handler blocks the loop, so the exit deadline is armed whatever the worker is doing.
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the manager's to handle
        threading.Thread(target=self._read_commands, name="manager-commands", daemon=True).start()
        heartbeat = asyncio.create_task(self._heartbeat())
        keepalive = asyncio.create_task(self._keepalive())
        self.link.send_now("hello", {"pid": os.getpid()})
        try:
            if await self._connect_first():
                if not self._retiring:
                    await self._stop_requested.wait()
                if self._retiring and not self._closing and self._fatal is None:
                    await self._retire()  # returns early when a stop request interrupts it
                if not self._disconnected:
                    await self._stop_keeping_session()
        finally:
            heartbeat.cancel()
            keepalive.cancel()
            self._send_heartbeat()
        if self._fatal is not None:
            raise self._fatal
        return EXIT_OK

    def request_stop(self) -> None:
        """SIGTERM: stop serving, finish what is in hand, keep the session."""
        assert self._stop_requested is not None
        self._closing = True
        self._stop_requested.set()

    def request_retire(self) -> None:
        assert self._stop_requested is not None
        self._retiring = True
        self._stop_requested.set()

    def _fail(self, fatal: _Fatal) -> None:
        """A refusal that retrying cannot cure: report it and stop."""
        if self._fatal is None:
            self._fatal = fatal
            self.detail = fatal.reason
            log.error("%s", fatal.reason)
            self.link.send_now("fatal", {"code": fatal.code, "reason": fatal.reason})
        self._closing = True
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def _connect_first(self) -> bool:
        """Open the first connection, retrying while the broker is unreachable."""
        assert self._stop_requested is not None
        delay = RECONNECT_MIN_DELAY
        while not self._stop_requested.is_set():
            connected = await self._try_connect()
            if connected is not None:
                return connected
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)
        return False

    async def _reconnect(self) -> None:
        """Connect again after losing the connection, retrying with backoff until stopped."""
        delay = RECONNECT_MIN_DELAY
        try:
            while not (self._closing or self._disconnected):
                await asyncio.sleep(delay)
                if self._closing or self._disconnected or await self._try_connect() is not None:
                    return
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
        finally:
            self._reconnecting = False

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
            reason, fatal = _describe_connect_error(exc, s.broker, s.port)
            if fatal:
                self._fail(_Fatal(EXIT_TLS, reason))
                return False
            if reason != self.detail:
                log.warning("%s; retrying", reason)
            self.detail = reason
            self._send_heartbeat()
            return None

    # --- paho on the event loop ------------------------------------------------------------
    # paho's I/O runs here, on the loop, through its external-loop interface (socket callbacks,
    # loop_read/loop_write/loop_misc), not on a thread of its own: a message then reaches its
    # handler, and its acknowledgement the socket, without changing threads. With paho's thread
    # each message cost a self-pipe write to wake the loop, a socket-pair write to wake paho for
    # the acknowledgement and two GIL hand-offs: half a bare paho subscriber's throughput
    # (bench/throughput.py).

    def _in_loop(self, func: Any, *args: Any) -> None:
        """Run ``func`` now on the loop's thread; from another thread, soon, on the loop."""
        if threading.get_ident() == self._loop_thread:
            func(*args)
        else:
            self._from_thread(func, *args)

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
        if not self._reading_paused:
            self._loop.add_reader(self._fd, self._read)

    def _forget_socket(self, sock: Any) -> None:
        # paho calls this before closing the socket. A socket that is not the current one was
        # forgotten already.
        assert self._loop is not None
        if sock is self._sock and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._sock = self._fd = None

    def _watch_writes(self, sock: Any) -> None:
        assert self._loop is not None
        if sock is self._sock and self._fd is not None:
            self._loop.add_writer(self._fd, self.client.loop_write)

    def _forget_writes(self, sock: Any) -> None:
        assert self._loop is not None
        if sock is self._sock and self._fd is not None:
            self._loop.remove_writer(self._fd)

    def _read(self) -> None:
        """Take what the socket holds (up to worker_concurrency messages), then let them run."""
        client = self.client
        while not self._reading_paused:
            before = self.received
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:  # one packet; on_message queues it
                return
            if self.received == before:  # nothing read, or not a PUBLISH: back to the selector,
                sock = client.socket()  # except for TLS bytes already decrypted, which it cannot see
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    return

    def _pause_reading(self) -> None:
        assert self._loop is not None
        self._reading_paused = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)

    def _resume_reading(self) -> None:
        assert self._loop is not None
        self._reading_paused = False
        if self._fd is not None:
            self._loop.add_reader(self._fd, self._read)

    async def _keepalive(self) -> None:
        """paho's timers: a PINGREQ when the link is quiet; a dead link closed (and reconnected)."""
        while True:
            await asyncio.sleep(KEEPALIVE_CHECK)
            self.client.loop_misc()

    # --- paho callbacks (on the loop's thread) --------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            code = reason.value
            text = f"broker refused the connection: {reason}"
            if code in _AUTH_REFUSALS:
                self._from_thread(self._fail, _Fatal(EXIT_AUTH, f"bad credentials: {reason}"))
            elif code in _CONFIG_REFUSALS:
                self._from_thread(self._fail, _Fatal(EXIT_CONFIG, text))
            else:
                self.detail = text
            return
        self.connected = True
        self.detail = ""
        if self._retiring or self._closing:
            if self._retiring:
                client.unsubscribe([topic for topic, _ in self.subscriptions])
            return
        client.subscribe(self.subscriptions)
        self._from_thread(self._send_heartbeat)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected = False
        self.subscribed = False
        if not self._closing and not self._retiring:
            self.detail = f"connection lost ({reason}); reconnecting"
            self._from_thread(self._send_heartbeat)
        if not (self._closing or self._disconnected or self._reconnecting):
            self._reconnecting = True
            self._from_thread(self._start_reconnecting)

    def _start_reconnecting(self) -> None:
        self._reconnect_task = asyncio.ensure_future(self._reconnect())  # referenced: not collected

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        refused = [topic for (topic, _), reason in zip(self.subscriptions, reasons, strict=False) if reason.is_failure]
        if refused:
            self._from_thread(
                self._fail, _Fatal(EXIT_CONFIG, f"broker refused the subscription to {', '.join(refused)}")
            )
            return
        self.subscribed = True
        self._from_thread(self._send_heartbeat)

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self.subscribed = False
        if self._loop is not None and self._unsubscribed is not None:
            self._loop.call_soon_threadsafe(self._unsubscribed.set)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        if self._closing and message.qos > 0:
            # Stopping with the session kept: leave it unacknowledged; the broker delivers it
            # to this slot's session again when the slot restarts.
            return
        self._pending += 1
        if self._pending >= self._limit:
            self._pause_reading()
        self._inbox.append(message)
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._take_inbox)  # same thread: no wake-up needed

    def _from_thread(self, func: Any, *args: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed while stopping
                self._loop.call_soon_threadsafe(func, *args)

    # --- handling (the loop thread) ------------------------------------------------------

    def _take_inbox(self) -> None:
        self._inbox_scheduled = False
        inbox = self._inbox
        while inbox:
            self._handle(inbox.popleft())

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        self.last_message_at = time.time()
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.error("message with a topic that is not valid UTF-8 (%r) was dropped", message._topic[:200])
            self.failed += 1
            self._finish(message)
            return
        found = self.router.match(topic)
        if found is None:
            self.skipped += 1  # matched a merged subscription but no route: nobody wants it
            self._finish(message)
            return
        route, params = found
        if route is not self.route and (route.shared or self.route is not None):
            # A more specific route is served by another pool; it receives its own copy.
            self.skipped += 1
            self._finish(message)
            return
        payload = decode_payload(message.payload)
        if route.is_plain:
            handler_id = self._started()
            try:
                result = route.handler(**params, payload=payload, client=self.client)
            except Exception:  # a bad message never kills the worker
                self._handler_failed(route, topic)
                self._done(handler_id, message, route, ok=False)
                return
            if not inspect.isawaitable(result):
                self._done(handler_id, message, route, ok=True)
                return
            self._running.pop(handler_id, None)
            coroutine = result
        else:
            coroutine = route.run(topic, params, payload, self.client)
        task = asyncio.ensure_future(self._run_async(route, topic, coroutine, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(self, route: Route, topic: str, coroutine: Any, message: mqtt.MQTTMessage) -> None:
        handler_id = self._started()
        try:
            await coroutine
        except Exception:
            self._handler_failed(route, topic)
            self._done(handler_id, message, route, ok=False)
        else:
            self._done(handler_id, message, route, ok=True)

    def _started(self) -> int:
        self._next_id += 1
        self._running[self._next_id] = time.monotonic()
        return self._next_id

    def _handler_failed(self, route: Route, topic: str) -> None:
        name = getattr(route.handler, "__qualname__", repr(route.handler))
        log.error("handler %s failed on topic %r:\n%s", name, topic[:200], traceback.format_exc().rstrip())

    def _done(self, handler_id: int, message: mqtt.MQTTMessage, route: Route, ok: bool) -> None:
        self._running.pop(handler_id, None)
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
            self.client.ack(message.mid, message.qos)
        self._pending -= 1
        if self._reading_paused and self._pending < self._limit:
            self._resume_reading()

    # --- stopping --------------------------------------------------------------------------

    async def _finish_in_hand(self) -> None:
        """Wait until every message taken from paho has been handled and acknowledged."""
        while self._pending > 0 or self._inbox or self._tasks:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=0.05)
            else:
                await asyncio.sleep(0.01)

    async def _stop_keeping_session(self) -> None:
        self._closing = True
        await self._finish_in_hand()
        await self._disconnect(end_session=False)

    async def _retire(self) -> None:
        """Unsubscribe, handle what the broker still sends for this session, end the session."""
        assert self._unsubscribed is not None
        if self.connected:
            self.client.unsubscribe([topic for topic, _ in self.subscriptions])
        # (when not yet connected, _on_connect unsubscribes as soon as the connection is up)
        while not self._unsubscribed.is_set():
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._unsubscribed.wait(), 0.5)
        while not self._closing:
            await self._finish_in_hand()
            before = self.received
            await asyncio.sleep(DRAIN_QUIET)
            if self.received == before and self._pending == 0:
                break
        if self._closing:
            return
        self._closing = True
        await self._disconnect(end_session=True)

    async def _disconnect(self, end_session: bool) -> None:
        self._disconnected = True
        v5 = self.settings.protocol == "5"
        properties = None
        if end_session and v5:
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0
        self.client.disconnect(properties=properties)
        # The loop writes the DISCONNECT (after any acknowledgement still queued) and paho closes
        # the socket once it is out: wait for that, since the loop ends soon after we return.
        deadline = time.monotonic() + DISCONNECT_TIMEOUT
        while self.client.socket() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if end_session and not v5:
            self._end_session_311()

    def _end_session_311(self) -> None:
        try:
            end_session(self.settings, self.spec.client_id)
        except OSError as exc:
            log.warning("could not end the broker session of %s: %s", self.spec.client_id, exc)

    # --- heartbeats and commands -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            self._send_heartbeat()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def _send_heartbeat(self) -> None:
        now = time.monotonic()
        oldest = min(self._running.values(), default=None)
        lines, dropped = self.link.take_logs()
        self.link.send_now(
            "stats",
            {
                "connected": self.connected,
                "subscribed": self.subscribed,
                "detail": self.detail,
                "received": self.received,
                "handled": self.handled,
                "failed": self.failed,
                "skipped": self.skipped,
                "by_route": {topic: tuple(counts) for topic, counts in self.by_route.items()},
                "in_flight": self._pending,
                "last_message_at": self.last_message_at,
                "oldest_handler_age": None if oldest is None else now - oldest,
                "retiring": self._retiring,
                "closing": self._closing,
                "logs": lines,
                "logs_dropped": dropped,
            },
        )

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._exit_by(self.settings.graceful_timeout + 1.0)  # the manager SIGKILLs at the timeout anyway
        self._from_thread(self.request_stop)

    def _exit_by(self, seconds: float) -> None:
        """Leave at the latest ``seconds`` from now, even if a handler never returns."""
        if self._deadline is None or self._deadline.interval > seconds:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = threading.Timer(seconds, os._exit, args=(EXIT_CRASH,))
            self._deadline.daemon = True
            self._deadline.start()

    def _read_commands(self) -> None:
        """Commands from the manager; end of file means the manager is gone: stop."""
        while True:
            try:
                command = self.link.recv()
            except (EOFError, OSError):
                # Nobody will SIGKILL us if we hang now: give in-flight messages a short while
                # (unacknowledged ones go back to the session), then leave.
                self._exit_by(min(self.settings.graceful_timeout, MANAGER_GONE_GRACE))
                self._from_thread(self.request_stop)
                return
            if command == "retire":
                self._from_thread(self.request_retire)
            elif command == "stop":
                self._from_thread(self.request_stop)


if __name__ == "__main__":
    _run_from_command_line()
