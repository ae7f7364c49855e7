"""The worker's life: one named phase, its changes in one place, and the run coroutine.

::

    connecting --CONNACK--> serving --retire--> retiring --drained, session ended--> done
        |                      |                   |
        |--retire------------------------------->--'
        '----------------------'--SIGTERM, or the manager gone--> stopping --in hand finished--> done
        '----------------------'--refused for good (auth, TLS, config)--> failed --in hand finished--> done

(``retiring`` also gives way to ``stopping`` and ``failed``; ``stopping`` to ``failed``.)

What the worker guarantees in each: it keeps a persistent session and subscribes on every
(re)connect while connecting or serving; retiring, it unsubscribes (now, and on every connect),
handles what the broker still sends for the session until DRAIN_QUIET passes without a
message, then ends the session so nothing is queued for the slot any more; stopping or failed,
it takes no new QoS>0 message (left unacknowledged, the broker delivers it to this slot's
session again), finishes what is in hand, acknowledges, and disconnects keeping the session.
A refusal that retrying cannot cure is reported to the manager (:class:`~engine.protocol.Fatal`)
and the process exits with its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import NoReturn

from ..in_hand import InHandTable
from ..protocol import HEARTBEAT_INTERVAL, Command, ExitCode, Failure, Fatal, Heartbeat, Hello, WorkerSpec
from ..router import Route, Router
from ..topics import plan_subscriptions
from .client_io import ClientIO
from .dead_letters import DeadLetters
from .inflight import InFlight
from .link import ManagerLink, printable

DRAIN_QUIET = 0.5  # retiring: this long without a message after UNSUBACK means the queue is empty
MANAGER_GONE_GRACE = 3.0  # seconds to finish messages in hand when the manager has died
MAX_DETAIL = 2000  # characters of the detail a heartbeat carries (the manager keeps no more)

log = logging.getLogger("routemq.worker")


class Phase(StrEnum):
    CONNECTING = "connecting"  # not yet accepted by the broker; retrying while it is unreachable
    SERVING = "serving"  # accepted; subscribes on every (re)connect
    RETIRING = "retiring"  # unsubscribing, handling what the session still holds, then ending it
    STOPPING = "stopping"  # finishing what is in hand, then disconnecting, keeping the session
    FAILED = "failed"  # refused for good (reported): finishing what is in hand, then exiting
    DONE = "done"  # disconnecting or disconnected: nothing left but to exit


P = Phase
LEGAL_CHANGES: dict[Phase, frozenset[Phase]] = {
    P.CONNECTING: frozenset({P.SERVING, P.RETIRING, P.STOPPING, P.FAILED}),
    P.SERVING: frozenset({P.RETIRING, P.STOPPING, P.FAILED}),
    P.RETIRING: frozenset({P.STOPPING, P.FAILED, P.DONE}),
    P.STOPPING: frozenset({P.FAILED, P.DONE}),
    P.FAILED: frozenset({P.DONE}),
    P.DONE: frozenset(),
}
LEAVING = frozenset({P.STOPPING, P.FAILED, P.DONE})  # no new QoS>0 messages, no more connecting


class IllegalPhaseChange(RuntimeError):
    pass


class Phases:
    """The current phase; every change goes through :meth:`move`, which refuses illegal ones."""

    def __init__(self) -> None:
        self.phase = Phase.CONNECTING
        self._changed = asyncio.Event()  # replaced on each change; waiters wake on the old one

    def can(self, new: Phase) -> bool:
        return new in LEGAL_CHANGES[self.phase]

    def move(self, new: Phase) -> None:
        if not self.can(new):
            raise IllegalPhaseChange(f"worker: illegal phase change {self.phase} -> {new}")
        self.phase = new
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def leaving(self, *phases: Phase) -> None:
        """Return once the phase is none of ``phases``."""
        while self.phase in phases:
            await self._changed.wait()


class Refusal(Exception):
    """A refusal that retrying cannot cure (routes that do not load, say)."""

    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


def take_group_down() -> None:
    """The worker's last act when the manager is gone: no one will kill the children a handler
    forked, so they die with it (issue 11). Only when the worker leads its own process group,
    as the manager starts it (start_new_session): never the manager's group."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)


class Worker:
    """One slot's MQTT client and handler runner. Public for tests and benchmarks."""

    def __init__(self, spec: WorkerSpec, router: Router, link: ManagerLink) -> None:
        self.spec = spec
        self.settings = spec.settings
        self.link = link
        route: Route | None = None
        if spec.route_topic is not None:
            route = router.find_route(spec.route_topic)
            if route is None or not route.shared:
                raise Refusal(Failure.ROUTES, f"route {spec.route_topic!r} is not a shared route of the loaded routers")
            self.subscriptions = [(route.get_subscription_topic(spec.group_name), route.qos)]
        else:
            self.subscriptions = plan_subscriptions((r.mqtt_topic, r.qos) for r in router.unshared_routes)
        self.phases = Phases()
        self.detail = "connecting"
        self.failure: Fatal | None = None
        self.inflight = InFlight(router, route, self.settings.worker_concurrency)
        if spec.in_hand_fd is not None:
            self.inflight.in_hand = InHandTable(spec.in_hand_fd)
            os.close(spec.in_hand_fd)  # mapped: a program a handler starts must not inherit it
        self.inflight.dead_letters = DeadLetters(
            spec.quarantine, self.settings.dead_letter_topic, spec.group_name, spec.slot
        )
        self.io = ClientIO(self.settings, spec.client_id, self.inflight, self)
        self.io.keep_subscribed(self.subscriptions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribed = asyncio.Event()
        self._deadline: threading.Timer | None = None

    @property
    def phase(self) -> Phase:
        return self.phases.phase

    def _move(self, new: Phase) -> None:
        """Change phase, with what the new phase means for the connection and the messages."""
        self.phases.move(new)
        if new is Phase.RETIRING:
            self.io.unsubscribe([topic for topic, _ in self.subscriptions])
        elif new in LEAVING:
            self.io.let_go()
            self.inflight.keep_for_session()

    # --- the run coroutine ------------------------------------------------------------------------

    async def run(self) -> ExitCode:
        self._loop = asyncio.get_running_loop()
        # A plain signal handler, not the loop's: Python runs it between bytecodes even while a
        # handler blocks the loop, so the exit deadline is armed whatever the worker is doing.
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the manager's to handle
        self.link.send(Hello(os.getpid()))
        self.link.read_commands(self._on_command, self._on_manager_gone)
        self.io.start(self._loop)
        heartbeats = asyncio.create_task(self._heartbeats())
        try:
            if self.spec.drain:
                self._move(Phase.RETIRING)
            if await self.io.connect():
                await self.phases.leaving(Phase.CONNECTING, Phase.SERVING)
                if self.phase is Phase.RETIRING:
                    await self._retire()
            if self.phase is not Phase.DONE:
                await self._stop_keeping_session()
        finally:
            heartbeats.cancel()
            self.io.stop()
            self.send_heartbeat()
        return self.failure.failure.exit_code if self.failure is not None else ExitCode.OK

    async def _retire(self) -> None:
        """Unsubscribe, handle what the broker still sends for this session, end the session.
        Returns early when a stop or a failure interrupts it."""
        # (unsubscribed already if connected; when not, as soon as the connection is up)
        if not await self._while_retiring(self._unsubscribed.wait()):
            return
        while True:
            if not await self._while_retiring(self.inflight.finish_in_hand()):
                return
            before = self.inflight.received
            if not await self._while_retiring(asyncio.sleep(DRAIN_QUIET)):
                return
            if self.inflight.received == before and self.inflight.pending == 0:
                break
        self._move(Phase.DONE)
        await self.io.disconnect(end_session_too=True)

    async def _while_retiring(self, awaitable: Awaitable[object]) -> bool:
        """Await ``awaitable`` unless the phase leaves RETIRING first; True when still retiring."""
        work = asyncio.ensure_future(awaitable)
        interrupted = asyncio.ensure_future(self.phases.leaving(Phase.RETIRING))
        try:
            await asyncio.wait({work, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            interrupted.cancel()
        return self.phase is Phase.RETIRING

    async def _stop_keeping_session(self) -> None:
        if self.phases.can(Phase.STOPPING):
            self._move(Phase.STOPPING)
        await self.inflight.finish_in_hand()
        self._move(Phase.DONE)
        await self.io.disconnect(end_session_too=False)

    # --- requests (on the loop's thread) --------------------------------------------------------

    def request_stop(self) -> None:
        """SIGTERM, or the manager gone: stop serving, finish what is in hand, keep the session."""
        if self.phases.can(Phase.STOPPING):
            self._move(Phase.STOPPING)

    def request_retire(self) -> None:
        if self.phases.can(Phase.RETIRING):
            self._move(Phase.RETIRING)

    def fail(self, failure: Failure, reason: str) -> None:
        """A refusal that retrying cannot cure: report it and stop."""
        if self.failure is None:
            self.failure = Fatal(failure, printable(reason))
            self.detail = reason
            log.error("%s", reason)
            self.link.send(self.failure)
        if self.phases.can(Phase.FAILED):
            self._move(Phase.FAILED)

    # --- what the connection says (ConnectionEvents, on the loop's thread) ------------------------

    def connected(self) -> None:
        self.detail = ""
        if self.phase is Phase.CONNECTING:
            self._move(Phase.SERVING)
        self.send_heartbeat()

    def connect_failed(self, reason: str, failure: Failure | None) -> None:
        if failure is not None:
            self.fail(failure, reason)
        elif reason != self.detail and self.phase not in LEAVING:
            log.warning("%s; retrying", reason)
            self.detail = reason
            self.send_heartbeat()

    def connection_lost(self, reason: str) -> None:
        if self.phase in (Phase.CONNECTING, Phase.SERVING):
            self.detail = f"connection lost ({reason}); reconnecting"
            self.send_heartbeat()

    def subscribed(self, refused: list[str]) -> None:
        if refused:
            self.fail(Failure.CONFIG, f"broker refused the subscription to {', '.join(refused)}")
        else:
            self.send_heartbeat()

    def unsubscribed(self) -> None:
        self._unsubscribed.set()

    # --- heartbeats -----------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            self.send_heartbeat()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def send_heartbeat(self) -> None:
        inflight = self.inflight
        lines, dropped = self.link.take_logs()
        clock, busy = inflight.busy.reading()
        self.link.send(
            Heartbeat(
                connected=self.io.connected,
                subscribed=self.io.subscribed,
                detail=printable(self.detail[:MAX_DETAIL]),
                received=inflight.received,
                handled=inflight.handled,
                failed=inflight.failed,
                by_route=inflight.counts_by_route(),
                in_flight=inflight.pending,
                last_message_at=inflight.last_message_at,
                oldest_handler_age=inflight.oldest_handler_age(),
                clock=clock,
                busy_seconds=busy,
                logs=lines,
                logs_dropped=dropped,
                dead_lettered=self.inflight.dead_letters.take_reports() if self.inflight.dead_letters else (),
                timings=inflight.take_timings(),
                failures=inflight.failures.take(),
            )
        )

    # --- signals, commands, deadlines (other threads) --------------------------------------------

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._exit_by(self.settings.graceful_timeout + 1.0)  # the manager SIGKILLs at the timeout anyway
        self._soon(self.request_stop)

    def _on_command(self, command: Command) -> None:
        if command is Command.RETIRE:
            self._soon(self.request_retire)

    def _on_manager_gone(self) -> None:
        # Nobody will SIGKILL us if we hang now: give in-flight messages a short while
        # (unacknowledged ones go back to the session), then leave.
        self._exit_by(min(self.settings.graceful_timeout, MANAGER_GONE_GRACE))
        self._soon(self.request_stop)

    def _soon(self, func: Callable[[], None]) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed while stopping
                self._loop.call_soon_threadsafe(func)

    def _exit_by(self, seconds: float) -> None:
        """Leave at the latest ``seconds`` from now, even if a handler never returns."""
        if self._deadline is None or self._deadline.interval > seconds:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = threading.Timer(seconds, self._deadline_passed)
            self._deadline.daemon = True
            self._deadline.start()

    def _deadline_passed(self) -> NoReturn:
        if self.link.manager_gone:
            take_group_down()
        os._exit(ExitCode.CRASH)
