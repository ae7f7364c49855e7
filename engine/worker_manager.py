"""WorkerManager: one pool of worker processes per shared route, supervised.

The public methods are RouteMQ's (``start_workers``, ``stop_workers``, ``get_worker_count``,
``get_shared_routes_info``, ``workers``) plus the operator's verbs (``scale_route``,
``restart_dead_workers``, ``restart_worker``) and the views (``snapshot``, ``events_since``).

One supervisor thread owns every process (gunicorn's arbiter shape): it waits on the workers'
pipes and exit sentinels, then reaps the dead, kills the hung, restarts what is due, samples
CPU and memory, and publishes an immutable snapshot. Public methods never touch processes
themselves: they queue a command for the supervisor and wait for its answer.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import queue
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import psutil

from . import worker_process
from .policy import RestartPolicy, RetireCandidate, apportion, choose_retirees
from .router import Route, Router
from .sessions import SessionLedger
from .settings import Settings, load_settings
from .snapshot import (
    BrokerInfo,
    EngineEvent,
    ManagerSnapshot,
    RouteInfo,
    SlotState,
    WorkerInfo,
    check_transition,
    describe_exit,
)

log = logging.getLogger("routemq.manager")
T = TypeVar("T")

MAIN_SLOT = "main"
MAIN_ROUTE_LABEL = "(non-shared routes)"
TICK = 0.25  # longest the supervisor sleeps without looking around
STARTUP_GRACE = 30.0  # seconds a new worker may take to send its first heartbeat
SILENCE_MIN = 3 * worker_process.HEARTBEAT_INTERVAL  # shortest silence that counts as a hang
RATE_WINDOW_MIN = 0.8 * worker_process.HEARTBEAT_INTERVAL  # shortest window a message rate is measured over
CHECK_EVERY = 0.1  # hang checks and restarts due, at most this often
SNAPSHOT_EVERY = 0.5  # snapshot rebuilds for new counters; a state change rebuilds at once
SAMPLE_EVERY = 1.0  # psutil sampling and message rates
EVENTS_KEPT = 2000
_GROUP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ManagerConflict(RuntimeError):
    """Another manager on this host serves the same group on the same broker."""


@dataclass(eq=False)
class _Pool:
    key: str  # the route pattern, or "main"
    route: Route | None  # None for the main worker (all non-shared routes)
    desired: int
    slots: list[_Slot] = field(default_factory=list)


@dataclass(eq=False)
class _Slot:
    key: str
    pool: _Pool
    index: int
    client_id: str
    policy: RestartPolicy
    state: SlotState = SlotState.STOPPED
    process: subprocess.Popen[bytes] | None = None
    conn: Connection | None = None
    pidfd: int | None = None  # readable when the process exits (Linux); else it is polled
    pid: int | None = None
    spawned_at: float | None = None
    last_heartbeat: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    restart_at: float | None = None
    stop_deadline: float | None = None
    last_exitcode: int | None = None
    last_exit: str | None = None
    detail: str = ""
    retiring: bool = False  # being removed: drain, end the session, then drop the slot
    restart_after_stop: bool = False  # a graceful restart (by hand, or recycling)
    kill_reason: str | None = None
    fatal_reason: str | None = None
    ps: psutil.Process | None = None
    cpu: float | None = None
    cpu_mark: tuple[float, float] | None = None  # (monotonic time, CPU seconds) at the last sample
    rss: int | None = None
    rate: float = 0.0
    route_rates: dict[str, float] = field(default_factory=dict)  # topic -> this worker's msg/s
    rate_mark: tuple[float, int, dict[str, tuple[int, int]]] | None = None  # see _measure_rates
    message_limit: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None


class WorkerHandle:
    """A view of one worker slot with the ``multiprocessing.Process`` attributes the reference
    exposes (``pid``, ``is_alive()``, ``exitcode``), always describing the slot's current process."""

    def __init__(self, manager: WorkerManager, slot: str) -> None:
        self._manager = manager
        self.slot = slot

    def _info(self) -> WorkerInfo | None:
        return next((w for w in self._manager.snapshot().workers if w.slot == self.slot), None)

    @property
    def pid(self) -> int | None:
        info = self._info()
        return info.pid if info else None

    def is_alive(self) -> bool:
        info = self._info()
        return bool(info and info.alive)

    @property
    def exitcode(self) -> int | None:
        """None while the slot's process runs; else the last exit code (negative: signal)."""
        if self.is_alive():
            return None
        return self._manager._exitcodes.get(self.slot)

    @property
    def name(self) -> str:
        return f"routemq-worker[{self.slot}]"

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.slot} pid={self.pid} alive={self.is_alive()}>"


class WorkerManager:
    """Runs and supervises the worker processes of a router's routes."""

    def __init__(
        self,
        router: Router,
        group_name: str | None = None,
        router_directory: str = "routers",
        *,
        settings: Settings | None = None,
        broker_kind: str = "external",
    ) -> None:
        self.router = router
        self.settings = settings if settings is not None else load_settings()
        self.group_name = group_name or self.settings.group_name
        if not _GROUP_RE.match(self.group_name):
            raise ValueError(
                f"group name {self.group_name!r} is not valid: expected 1 to 64 characters from A-Z a-z 0-9 _ . -"
            )
        self.router_directory = router_directory
        self.broker_kind = broker_kind
        self._host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:32] or "host"
        self._pools: dict[str, _Pool] = {}
        self._routes_payload: tuple[str, Any] | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        # One selector for the life of the manager: worker sockets and pidfds are registered when
        # a worker starts and unregistered when it is reaped, not re-registered on every wake-up.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._last_build = 0.0
        self._last_checks = 0.0
        self._changed = False  # a slot changed state: publish a new snapshot without waiting
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._closing = False
        self._stop_waiters: list[Future[None]] = []
        self._stopping_any = False
        self._rollout: tuple[list[Callable[[], bool]], Future[None]] | None = None
        self._route_totals: dict[str, list[int]] = {}  # route pattern -> [handled, failed], cumulative
        self._events: deque[EngineEvent] = deque(maxlen=EVENTS_KEPT)
        self._events_lock = threading.Lock()
        self._event_seq = 0
        self._exitcodes: dict[str, int | None] = {}
        self._started_at: float | None = None
        self._last_sample = 0.0
        self._host_lock: _HostLock | None = None
        self._identity = f"{self.settings.broker_address}/{self.settings.client_id}/{self._host}/{self.group_name}"
        self._ledger = SessionLedger.for_identity(self._identity)
        self._leftovers_checked = False
        self._build_pools()
        self._snapshot = self._build_snapshot()
        _live_managers.add(self)

    # ==========================================================================================
    # The reference API
    # ==========================================================================================

    def start_workers(self, num_workers: int | None = None) -> None:
        """Start every pool at its route's ``worker_count`` (and the main worker when there are
        non-shared routes). With ``num_workers``, add that many workers to the shared pools,
        split in proportion to their ``worker_count`` (largest remainder; an empty pool gets one
        first so that no shared route is left unserved)."""
        if num_workers is not None and (isinstance(num_workers, bool) or num_workers < 0):
            raise ValueError(f"num_workers must be a whole number >= 0, not {num_workers!r}")
        self._prepare_routes()
        self._call(lambda: self._start(num_workers))

    def stop_workers(self) -> None:
        """Stop every worker gracefully, in parallel; SIGKILL what outlives the graceful timeout.

        Returns when every process has exited and been reaped. Workers keep their broker
        sessions, so QoS 1/2 messages published while stopped wait for the next start.
        """
        if self._thread is None:
            return
        done: Future[None] = self._call(self._begin_stop)
        done.result(timeout=self.settings.graceful_timeout + 30)

    def get_worker_count(self) -> int:
        """Workers of shared routes that are running or starting."""
        return self._snapshot.live_workers

    def get_shared_routes_info(self) -> list[dict[str, Any]]:
        """One dict per shared route: topic, mqtt_topic, qos, worker_count (desired), live_workers."""
        live = {r.topic: r.live_workers for r in self._snapshot.routes}
        return [
            {
                "topic": pool.route.topic,
                "mqtt_topic": pool.route.mqtt_topic,
                "qos": pool.route.qos,
                "worker_count": pool.desired,
                "subscription": pool.route.get_subscription_topic(self.group_name),
                "live_workers": live.get(pool.key, 0),
            }
            for pool in self._pools.values()
            if pool.route is not None
        ]

    @property
    def workers(self) -> list[WorkerHandle]:
        """The shared workers, one handle per slot (the main worker is not included)."""
        return [WorkerHandle(self, w.slot) for w in self._snapshot.workers if not w.is_main]

    # ==========================================================================================
    # Operator verbs and views
    # ==========================================================================================

    def scale_route(self, topic: str, count: int) -> None:
        """Resize the pool of the shared route ``topic`` (its pattern) to ``count`` workers.

        Growing starts workers at once; shrinking retires the idlest workers, which unsubscribe,
        finish what the broker still sends them and end their sessions, in the background.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"a pool needs at least one worker, not {count!r}; use stop_workers() to stop")
        pool = self._pools.get(topic)
        if pool is None or pool.route is None:
            shared = ", ".join(repr(k) for k, p in self._pools.items() if p.route is not None) or "none"
            raise ValueError(f"no shared route {topic!r} (shared routes: {shared})")
        self._prepare_routes()
        self._call(lambda: self._resize(pool, count))

    def restart_dead_workers(self) -> int:
        """Restart now every slot in backoff or crash-loop; the number restarted."""
        return self._call(self._restart_dead)

    def restart_worker(self, slot: str) -> None:
        """Restart one worker gracefully (it finishes what it has in hand first)."""
        self._call(lambda: self._restart_one(slot))

    def reload_routes(self, router: Router, timeout: float = 60.0) -> None:
        """Replace the routes, one pool at a time, without dropping messages.

        For each shared route that stays, new workers (new slots, running the new code) start
        and subscribe before the old ones drain and retire. New routes get new pools; pools of
        routes that are gone drain and retire; the main worker restarts in place (its session
        keeps what arrives meanwhile). If a pool's new workers do not come up, that pool keeps
        its old workers and the reload stops there. Returns when every pool has been handled.
        """
        payload = self._routes_payload_for(router)
        done: Future[None] = self._call(lambda: self._begin_reload(router, payload))
        done.result(timeout=timeout)

    def snapshot(self) -> ManagerSnapshot:
        """The latest immutable picture of every slot and route.

        Rebuilt at once when a worker changes state, and twice a second for the counters.
        """
        return self._snapshot

    def events_since(self, seq: int) -> list[EngineEvent]:
        """Events with a sequence number above ``seq``, oldest first (the last few thousand)."""
        with self._events_lock:
            if not self._events or self._events[-1].seq <= seq:
                return []
            return [e for e in self._events if e.seq > seq]

    def announce(self, message: str, level: int = logging.INFO) -> None:
        """Add a note to the event stream (the dashboard's log, the headless output)."""
        self._event("note", message, level=level)

    def close(self) -> None:
        """Stop every worker and the supervisor. Safe to call more than once."""
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.stop_workers()
            self._closing = True
            self._wake()
            self._thread.join(timeout=5)
        self._release_host_lock()
        _live_managers.discard(self)

    def __enter__(self) -> WorkerManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ==========================================================================================
    # Commands: run on the supervisor thread
    # ==========================================================================================

    def _call(self, func: Callable[[], T]) -> T:
        """Run ``func`` on the supervisor thread and return its result (or raise its error)."""
        self._ensure_supervisor()
        if threading.current_thread() is self._thread:
            return func()
        future: Future[T] = Future()
        self._commands.put((func, future))
        self._wake()
        return future.result()

    def _ensure_supervisor(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._supervise, name="routemq-supervisor", daemon=True)
                self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def _start(self, num_workers: int | None) -> None:
        self._acquire_host_lock()
        if self._started_at is None:
            self._started_at = time.monotonic()
        shared = [p for p in self._pools.values() if p.route is not None]
        if num_workers is not None:
            empty = [p for p in shared if not self._active_slots(p)]
            if len(empty) > num_workers:
                names = ", ".join(repr(p.key) for p in empty[num_workers:])
                raise ValueError(
                    f"start_workers({num_workers}): {len(empty)} shared routes have no worker yet and each "
                    f"needs one; these would be left unserved: {names}"
                )
            for pool in empty:
                pool.desired = 0
            extra = [1 if p in empty else 0 for p in shared]
            rest = apportion(num_workers - len(empty), [p.route.worker_count for p in shared])  # type: ignore[union-attr]
            for pool, first, more in zip(shared, extra, rest, strict=True):
                pool.desired = len(self._active_slots(pool)) + first + more
        for pool in self._pools.values():
            self._converge(pool)
        self._drain_leftover_sessions()
        self._event(
            "started",
            f"workers starting: {self._desired_total()} shared" + (" + main" if MAIN_SLOT in self._pools else ""),
        )

    def _drain_leftover_sessions(self) -> None:
        """Drain the sessions earlier runs kept for slots this run does not have (see sessions.py)."""
        if self._leftovers_checked:
            return
        self._leftovers_checked = True
        in_use = {slot.client_id for pool in self._pools.values() for slot in pool.slots}
        for kept in self._ledger.sessions():
            if kept.client_id in in_use:
                continue
            pool = self._pools.get(kept.pool)
            if pool is None:
                self._event(
                    "retired",
                    f"ending the session {kept.client_id} of route {kept.pool!r}, which no longer exists; "
                    "messages queued for it are dropped",
                    level=logging.WARNING,
                )
                settings = self.settings
                threading.Thread(target=self._end_orphan_session, args=(settings, kept.client_id), daemon=True).start()
                continue
            slot = self._new_slot(pool, kept.index)
            if slot.client_id != kept.client_id:  # the naming scheme changed since; nothing to drain
                pool.slots.remove(slot)
                self._ledger.forget(kept.client_id)
                continue
            slot.retiring = True
            self._event("scaled", f"draining the session of {slot.key}, left from an earlier run", slot.key)
            self._spawn(slot)

    def _end_orphan_session(self, settings: Settings, client_id: str) -> None:
        try:
            worker_process.end_session(settings, client_id)
        except OSError as exc:
            log.warning("could not end the broker session %s: %s", client_id, exc)
            return
        self._call_later(lambda: self._ledger.forget(client_id))

    def _call_later(self, func: Callable[[], object]) -> None:
        """Queue ``func`` for the supervisor thread without waiting for it."""
        self._commands.put((func, Future()))
        self._wake()

    def _resize(self, pool: _Pool, count: int) -> None:
        before = pool.desired
        pool.desired = count
        if self._started_at is None:
            self._started_at = time.monotonic()
        self._acquire_host_lock()
        self._converge(pool)
        if before != count:
            self._event("scaled", f"pool {pool.key} scaled from {before} to {count} workers")

    def _converge(self, pool: _Pool) -> None:
        """Start or retire slots until the pool has ``desired`` active slots."""
        active = self._active_slots(pool)
        for slot in active:
            if slot.state in (SlotState.STOPPED, SlotState.EXITED):
                self._spawn(slot)
        missing = pool.desired - len(active)
        if missing > 0:
            used = {s.index for s in pool.slots}
            index = 0
            for _ in range(missing):
                while index in used:
                    index += 1
                used.add(index)
                slot = self._new_slot(pool, index)
                self._spawn(slot)
        elif missing < 0:
            candidates = [
                RetireCandidate(s.key, s.index, s.state, int(s.stats.get("in_flight", 0)), self._last_message_age(s))
                for s in active
            ]
            chosen = set(choose_retirees(candidates, -missing))
            for slot in active:
                if slot.key in chosen:
                    self._retire(slot)

    def _begin_stop(self) -> Future[None]:
        done: Future[None] = Future()
        for pool in self._pools.values():
            for slot in list(pool.slots):
                slot.restart_after_stop = False
                if slot.alive:
                    self._stopping_any = True
                    self._terminate(slot)
                elif slot.state.is_dead:
                    self._set_state(slot, SlotState.EXITED)
                    if slot.retiring:
                        pool.slots.remove(slot)
        self._stop_waiters.append(done)
        self._resolve_stop_waiters()
        return done

    def _restart_dead(self) -> int:
        count = 0
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.state.is_dead:
                    slot.policy.reset()
                    self._spawn(slot, restarted=True)
                    count += 1
        if count:
            self._event("restarted", f"restarted {count} dead worker{'s' if count != 1 else ''} by request")
        return count

    def _restart_one(self, key: str) -> None:
        slot = self._find_slot(key)
        if slot.alive:
            slot.restart_after_stop = True
            self._terminate(slot)
        else:
            slot.policy.reset()
            self._spawn(slot, restarted=True)

    def _begin_reload(self, router: Router, payload: tuple[str, Any]) -> Future[None]:
        done: Future[None] = Future()
        old_router, self.router = self.router, router
        self._routes_payload = payload
        if not any(slot.alive for pool in self._pools.values() for slot in pool.slots):
            # Nothing runs: the next start simply uses the new routes (and drains what is left).
            self._pools = {}
            self._build_pools()
            self._leftovers_checked = False
            done.set_result(None)
            return done
        self._event("reload", f"reloading routes: {len(old_router.routes)} before, {len(router.routes)} now")
        steps: list[Callable[[], bool]] = []
        new_shared = {route.topic: route for route in router.routes if route.shared}
        for key, pool in list(self._pools.items()):
            if pool.route is not None and key not in new_shared:
                pool.desired = 0
                for slot in self._active_slots(pool):
                    self._retire(slot)
                self._event("scaled", f"route {key} is gone: its pool drains and retires")
        for topic, route in new_shared.items():
            pool = self._pools.get(topic)
            if pool is None:
                self._pools[topic] = _Pool(topic, route, route.worker_count)
                steps.append(lambda pool=self._pools[topic]: self._converge(pool) or True)
            else:
                if pool.route is not None and route.worker_count != pool.route.worker_count:
                    pool.desired = route.worker_count
                pool.route = route
                steps.append(self._rolling_replacement(pool))
        main = self._pools.get(MAIN_SLOT)
        if router.unshared_routes and main is None:
            self._pools[MAIN_SLOT] = main = _Pool(MAIN_SLOT, None, 1)
            steps.append(lambda: self._converge(main) or True)
        elif main is not None and not router.unshared_routes:
            main.desired = 0
            for slot in self._active_slots(main):
                self._retire(slot)
        elif main is not None:

            def restart_main() -> bool:
                for slot in self._active_slots(main):  # same client id: its session bridges the gap
                    self._restart_one(slot.key)
                return True

            steps.append(restart_main)
        self._rollout = (steps, done)
        self._advance_rollout()
        return done

    def _rolling_replacement(self, pool: _Pool) -> Callable[[], bool]:
        """A rollout step: start new slots for ``pool``, then retire the old ones once all run.

        Returns a function the supervisor calls each tick until it returns True (step done).
        """
        state: dict[str, Any] = {}

        def step() -> bool:
            if "new" not in state:
                state["old"] = self._active_slots(pool)
                used = {slot.index for slot in pool.slots}
                fresh = [i for i in range(len(used) + pool.desired + 1) if i not in used][: pool.desired]
                state["new"] = [self._new_slot(pool, index) for index in fresh]
                state["deadline"] = time.monotonic() + max(30.0, self.settings.hang_timeout)
                for slot in state["new"]:
                    self._spawn(slot)
                return False
            new = state["new"]
            if all(slot.state is SlotState.RUNNING for slot in new):
                for slot in state["old"]:
                    self._retire(slot)
                self._event("reload", f"pool {pool.key}: {len(new)} new workers running, old ones draining")
                return True
            failed = any(slot.state.is_dead for slot in new) or time.monotonic() > state["deadline"]
            if failed:
                for slot in new:
                    self._retire(slot)
                self._event(
                    "reload",
                    f"pool {pool.key}: new workers did not start ({_first_detail(new)}); "
                    "keeping the old workers and stopping the reload",
                    level=logging.ERROR,
                )
                raise _RolloutFailed(pool.key)
            return False

        return step

    def _advance_rollout(self) -> None:
        if self._rollout is None:
            return
        steps, done = self._rollout
        try:
            while steps and steps[0]():
                steps.pop(0)
        except _RolloutFailed as failure:
            self._rollout = None
            done.set_exception(
                RuntimeError(
                    f"reload stopped at pool {failure.args[0]!r}: its new workers "
                    "did not start; the old ones keep serving"
                )
            )
            return
        if not steps:
            self._rollout = None
            self._event("reload", "reload finished")
            done.set_result(None)

    # ==========================================================================================
    # Pools and slots
    # ==========================================================================================

    def _build_pools(self) -> None:
        for route in self.router.routes:
            if route.shared:
                self._pools[route.topic] = _Pool(route.topic, route, route.worker_count)
        if self.router.unshared_routes:
            self._pools[MAIN_SLOT] = _Pool(MAIN_SLOT, None, 1)

    def _new_slot(self, pool: _Pool, index: int) -> _Slot:
        s = self.settings
        policy = RestartPolicy(
            first_delay=s.restart_backoff,
            max_delay=s.restart_backoff_max,
            reset_after=s.restart_backoff_max,
            crash_loop_restarts=s.crash_loop_restarts,
            window=s.crash_loop_window,
        )
        if pool.route is None:
            key, client_id = MAIN_SLOT, f"{s.client_id}-{self._host}-{self.group_name}-main"
        else:
            key = f"{pool.key}#{index}"
            client_id = f"{s.client_id}-{self._host}-{self.group_name}-{_route_slug(pool.key)}-{index}"
        slot = _Slot(key, pool, index, client_id, policy)
        pool.slots.append(slot)
        pool.slots.sort(key=lambda x: x.index)
        return slot

    @staticmethod
    def _active_slots(pool: _Pool) -> list[_Slot]:
        return [s for s in pool.slots if not s.retiring]

    def _desired_total(self) -> int:
        return sum(p.desired for p in self._pools.values() if p.route is not None)

    def _find_slot(self, key: str) -> _Slot:
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.key == key:
                    return slot
        raise ValueError(f"no worker slot {key!r}")

    def _prepare_routes(self) -> None:
        if self._routes_payload is None:
            self._routes_payload = self._routes_payload_for(self.router)

    def _routes_payload_for(self, router: Router) -> tuple[str, Any]:
        """How workers get their routes: import the package themselves, or receive the Router."""
        if router.source_package is not None and router.source_package == self.router_directory:
            return ("package", self.router_directory, False)
        for route in router.routes:
            try:
                pickle.dumps(route)
            except Exception as exc:  # any pickling failure means the same thing
                name = getattr(route.handler, "__qualname__", repr(route.handler))
                raise ValueError(
                    f"route {route.topic!r}: its handler {name} (or middleware) cannot be sent to a worker "
                    f"process ({exc}); define it at module level in an importable module"
                ) from None
        return ("pickle", pickle.dumps(router))

    def _set_state(self, slot: _Slot, state: SlotState) -> None:
        check_transition(slot.key, slot.state, state)
        slot.state = state
        self._changed = True

    # ==========================================================================================
    # Processes
    # ==========================================================================================

    def _spawn(self, slot: _Slot, restarted: bool = False) -> None:
        assert self._routes_payload is not None
        s = self.settings
        spec = worker_process.WorkerSpec(
            slot=slot.key,
            client_id=slot.client_id,
            group_name=self.group_name,
            route_topic=slot.pool.route.topic if slot.pool.route is not None else None,
            routes=self._routes_payload,
            settings=s,
            drain=slot.retiring,
        )
        process, conn = _launch(spec)
        now = time.monotonic()
        slot.process, slot.conn, slot.pid = process, conn, process.pid
        slot.pidfd = _open_pidfd(process.pid)
        self._selector.register(conn.fileno(), selectors.EVENT_READ, (slot, "conn"))
        if slot.pidfd is not None:
            self._selector.register(slot.pidfd, selectors.EVENT_READ, (slot, "exit"))
        slot.spawned_at = slot.last_heartbeat = now
        slot.stats = {}
        slot.restart_at = slot.stop_deadline = None
        slot.kill_reason = slot.fatal_reason = None
        slot.detail = "draining" if slot.retiring else "starting"
        slot.cpu = slot.rss = None
        slot.rate, slot.route_rates, slot.rate_mark = 0.0, {}, None
        slot.message_limit = s.max_messages + (random.randint(0, s.max_messages_jitter) if s.max_messages else 0)
        try:
            slot.ps = psutil.Process(process.pid)
        except psutil.Error:
            slot.ps = None
        slot.cpu_mark = (now, 0.0)  # a process just started has used no CPU to speak of
        self._set_state(slot, SlotState.DRAINING if slot.retiring else SlotState.STARTING)
        if not slot.retiring:
            self._ledger.keep(slot.client_id, slot.pool.key, slot.index)
        if restarted:
            slot.restarts += 1
            self._event("restarted", f"worker {slot.key} restarted (pid {process.pid})", slot.key)
        else:
            self._event("spawned", f"worker {slot.key} started (pid {process.pid})", slot.key, logging.DEBUG)

    def _terminate(self, slot: _Slot) -> None:
        """SIGTERM: finish what is in hand, keep the session, exit."""
        if slot.process is None:
            return
        if slot.state is not SlotState.STOPPING:
            self._set_state(slot, SlotState.STOPPING)
        slot.stop_deadline = time.monotonic() + self.settings.graceful_timeout
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, signal.SIGTERM)

    def _retire(self, slot: _Slot) -> None:
        """Remove a slot without losing what its session holds."""
        if slot.retiring:
            return
        slot.retiring = True
        if slot.alive:
            if slot.state is SlotState.STOPPING:
                return  # already going; it keeps its session, which is drained when it exits
            self._set_state(slot, SlotState.DRAINING)
            self._send(slot, "retire")
        else:
            self._spawn(slot)  # connects to the slot's session only to drain and end it

    def _send(self, slot: _Slot, command: str) -> None:
        if slot.conn is not None:
            with contextlib.suppress(OSError, ValueError):
                slot.conn.send(command)

    def _kill(self, slot: _Slot, reason: str) -> None:
        if slot.process is None or slot.kill_reason is not None:
            return
        slot.kill_reason = reason
        self._event(
            "hung" if reason.startswith("hung") else "killed",
            f"worker {slot.key}: {reason}; killing it",
            slot.key,
            logging.WARNING,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, signal.SIGKILL)

    # ==========================================================================================
    # The supervisor loop
    # ==========================================================================================

    def _supervise(self) -> None:
        while True:
            readable: list[_Slot] = []
            exited: list[_Slot] = []
            for key, _ in self._selector.select(timeout=self._sleep_time()):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                elif key.data[1] == "conn":
                    readable.append(key.data[0])
                else:
                    exited.append(key.data[0])
            for slot in readable:
                self._read_messages(slot)
            self._run_commands()
            # A worker without a pidfd (no pidfd_open on this system) is polled instead.
            polled = [s for p in self._pools.values() for s in p.slots if s.process is not None and s.pidfd is None]
            for slot in [*exited, *polled]:
                if slot.process is not None:
                    self._reap(slot)
            now = time.monotonic()
            # Heartbeats wake us over a hundred times a second with 64 workers; the checks and
            # the snapshot need not run that often, unless a slot changed state.
            if self._changed or now - self._last_checks >= CHECK_EVERY:
                self._last_checks = now
                self._check_hung(now)
                self._check_stop_deadlines(now)
                self._restart_due(now)
                self._advance_rollout()
            if now - self._last_sample >= SAMPLE_EVERY:
                self._sample(now)
            if self._changed or now - self._last_build >= SNAPSHOT_EVERY:
                self._publish_snapshot()
            self._resolve_stop_waiters()
            if self._closing and not any(s.alive for p in self._pools.values() for s in p.slots):
                self._run_commands()
                return

    def _publish_snapshot(self) -> None:
        self._changed = False
        self._last_build = time.monotonic()
        self._snapshot = self._build_snapshot()

    def _sleep_time(self) -> float:
        due = [s.restart_at for p in self._pools.values() for s in p.slots if s.restart_at is not None]
        if not due:
            return TICK
        return max(0.0, min(TICK, min(due) - time.monotonic()))

    def _run_commands(self) -> None:
        while True:
            try:
                func, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = func()
            except BaseException as exc:  # handed back to the caller
                future.set_exception(exc)
            else:
                future.set_result(result)
            self._publish_snapshot()

    def _read_messages(self, slot: _Slot, *, to_the_end: bool = False) -> None:
        """Read one message from a live worker, or with ``to_the_end`` all a dead one left.

        One per wake-up: the selector is level-triggered, so it wakes us again at once for the
        next. (Connection.poll() builds a selector on each call: costly with 64 workers.)
        """
        conn = slot.conn
        if conn is None:
            return
        try:
            if not to_the_end:
                self._on_worker_message(slot, *conn.recv())
                return
            while conn.poll():  # poll first: a child of the dead worker may hold its end open
                self._on_worker_message(slot, *conn.recv())
        except (EOFError, OSError):
            pass  # the process is exiting; its sentinel tells us when it is gone

    def _on_worker_message(self, slot: _Slot, kind: str, body: dict[str, Any]) -> None:
        slot.last_heartbeat = time.monotonic()
        for level, name, message in body.get("logs", ()):
            self._event("log", message, slot.key, level, logger=name)
        if body.get("logs_dropped"):
            self._event(
                "log",
                f"{body['logs_dropped']} log lines dropped (worker logging too fast)",
                slot.key,
                logging.WARNING,
            )
        if kind == "stats":
            self._count_route_totals(slot.stats.get("by_route", {}), body.get("by_route", {}))
            self._measure_rates(slot, body, slot.last_heartbeat)
            slot.stats = body
            slot.detail = body.get("detail", "")
            if body.get("subscribed") and slot.state is SlotState.STARTING:
                self._set_state(slot, SlotState.RUNNING)
                self._event("running", f"worker {slot.key} subscribed", slot.key, logging.DEBUG)
        elif kind == "fatal":
            slot.fatal_reason = body["reason"]
            slot.detail = body["reason"]

    @staticmethod
    def _measure_rates(slot: _Slot, stats: dict[str, Any], now: float) -> None:
        """The worker's message rates, overall and per route, from one heartbeat to the next.

        Measured between heartbeats rather than between samples: with both once a second, a
        sample's window would hold none or two heartbeats' worth of counts and the rates would
        flicker between 0 and double. A heartbeat sent early (on subscribing, say) does not
        close a window.
        """
        done = int(stats.get("handled", 0)) + int(stats.get("failed", 0))
        by_route = stats.get("by_route", {})
        mark = slot.rate_mark
        if mark is not None:
            elapsed = now - mark[0]
            if elapsed < RATE_WINDOW_MIN:
                return
            slot.rate = max(0.0, (done - mark[1]) / elapsed)
            slot.route_rates = {
                topic: max(0.0, (handled + failed - sum(mark[2].get(topic, (0, 0)))) / elapsed)
                for topic, (handled, failed) in by_route.items()
            }
        slot.rate_mark = (now, done, by_route)

    def _count_route_totals(self, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> None:
        """Add a worker's new counts to the per-route totals, which outlive worker restarts."""
        for topic, (handled, failed) in after.items():
            old_handled, old_failed = before.get(topic, (0, 0))
            totals = self._route_totals.setdefault(topic, [0, 0])
            totals[0] += handled - old_handled
            totals[1] += failed - old_failed

    def _reap(self, slot: _Slot) -> None:
        process = slot.process
        assert process is not None
        exitcode = process.poll()
        if exitcode is None:
            return  # still running (polled), or the pidfd fired a moment before waitpid sees it
        self._read_messages(slot, to_the_end=True)  # its last counts, log lines, fatal reason
        early_errors = _read_stderr(process)
        if early_errors and exitcode != 0 and slot.fatal_reason is None:
            slot.fatal_reason = early_errors.splitlines()[-1][:300]
            self._event("log", early_errors, slot.key, logging.ERROR)
        if slot.conn is not None:
            self._selector.unregister(slot.conn.fileno())
            slot.conn.close()
        if slot.pidfd is not None:
            self._selector.unregister(slot.pidfd)
            os.close(slot.pidfd)
            slot.pidfd = None
        now = time.monotonic()
        uptime = now - slot.spawned_at if slot.spawned_at is not None else None
        slot.process = slot.conn = None
        slot.ps = None
        slot.cpu = slot.rss = None
        slot.rate, slot.route_rates, slot.rate_mark = 0.0, {}, None
        slot.last_exitcode = exitcode
        self._exitcodes[slot.key] = exitcode
        described = describe_exit(exitcode) or "?"
        cause = slot.kill_reason or slot.fatal_reason
        slot.last_exit = f"{described}: {cause}" if cause and exitcode != 0 else described
        pool = slot.pool
        planned = slot.state is SlotState.STOPPING or (slot.state is SlotState.DRAINING and exitcode == 0)
        if slot.retiring and planned:
            pool.slots.remove(slot)
            if not pool.slots and pool.desired == 0:
                self._pools.pop(pool.key, None)  # its route is gone
            if exitcode == 0:
                self._ledger.forget(slot.client_id)
            note = "drained and retired" if exitcode == 0 else f"retired ({slot.last_exit}), session kept"
            self._event("retired", f"worker {slot.key} {note}", slot.key)
            return
        if planned:
            self._set_state(slot, SlotState.EXITED)
            if slot.restart_after_stop and not self._closing:
                slot.restart_after_stop = False
                self._spawn(slot, restarted=True)
            else:
                self._event("stopped", f"worker {slot.key} stopped ({slot.last_exit})", slot.key)
            return
        delay = slot.policy.on_death(now, uptime)
        if delay is None:
            self._set_state(slot, SlotState.CRASH_LOOP)
            slot.detail = (
                f"{len(slot.policy.deaths)} deaths within {slot.policy.window:g} s; last exit {slot.last_exit}; "
                "waiting for restart_dead_workers()"
            )
            self._event(
                "crash-loop",
                f"worker {slot.key} is crash-looping ({slot.last_exit}); not restarting it",
                slot.key,
                logging.ERROR,
            )
            self._hand_share_to_live_workers(slot)
            return
        self._set_state(slot, SlotState.BACKOFF)
        slot.restart_at = now + delay
        slot.detail = f"restarting in {delay:g} s"
        self._event(
            "exited",
            f"worker {slot.key} exited with {slot.last_exit}; restarting in {delay:g} s",
            slot.key,
            logging.WARNING,
        )

    def _hand_share_to_live_workers(self, slot: _Slot) -> None:
        """Take a crash-looping slot's session out of its share group (see leave_share_group)."""
        route = slot.pool.route
        if route is None or route.qos == 2 or self._closing:
            return
        subscription = route.get_subscription_topic(self.group_name)

        def leave() -> None:
            try:
                worker_process.leave_share_group(self.settings, slot.client_id, [subscription])
            except OSError as exc:
                log.warning("could not take %s out of its share group: %s", slot.key, exc)
                return
            self._call_later(
                lambda: self._event("crash-loop", f"{slot.key} left the share group until it runs again", slot.key)
            )

        threading.Thread(target=leave, name=f"leave-share-group {slot.key}", daemon=True).start()

    def _check_hung(self, now: float) -> None:
        limit = self.settings.hang_timeout
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.process is None or slot.state is SlotState.STOPPING:
                    continue
                silent = now - slot.last_heartbeat
                # Until its first heartbeat a worker is still importing its routes, which on a
                # loaded machine may take longer than a short hang timeout allows. After that,
                # silence counts as a hang only once a few heartbeats in a row are missing.
                allowed = max(limit, SILENCE_MIN) if slot.stats else max(limit, STARTUP_GRACE)
                if silent > allowed:
                    self._kill(slot, f"hung: no heartbeat for {silent:.0f} s")
                    continue
                oldest = slot.stats.get("oldest_handler_age")
                if oldest is not None and oldest > limit:
                    self._kill(slot, f"hung: a handler has run for {oldest:.0f} s")

    def _check_stop_deadlines(self, now: float) -> None:
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.process is not None and slot.stop_deadline is not None and now >= slot.stop_deadline:
                    slot.stop_deadline = None
                    grace = self.settings.graceful_timeout
                    self._kill(slot, f"still busy after the {grace:g} s graceful timeout")

    def _restart_due(self, now: float) -> None:
        if self._closing:
            return
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.state is SlotState.BACKOFF and slot.restart_at is not None and slot.restart_at <= now:
                    self._spawn(slot, restarted=True)

    def _sample(self, now: float) -> None:
        self._last_sample = now
        s = self.settings
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.rate_mark is not None and now - slot.rate_mark[0] > SILENCE_MIN:
                    slot.rate, slot.route_rates = 0.0, {}  # no news (hung, or stopped): not busy
                if slot.ps is None:
                    continue
                try:
                    with slot.ps.oneshot():
                        times = slot.ps.cpu_times()
                        slot.rss = slot.ps.memory_info().rss
                except psutil.Error:
                    continue
                measured_at = time.monotonic()  # not `now`: a spawn since then may have taken a while
                # % of one core since the last sample. (Process.cpu_percent() would do, but it
                # asks for the number of CPUs on every call: a good part of a sample's cost.)
                busy = times.user + times.system
                if slot.cpu_mark is not None and measured_at > slot.cpu_mark[0]:
                    slot.cpu = max(0.0, 100.0 * (busy - slot.cpu_mark[1]) / (measured_at - slot.cpu_mark[0]))
                slot.cpu_mark = (measured_at, busy)
                done = int(slot.stats.get("handled", 0)) + int(slot.stats.get("failed", 0))
                if slot.state is not SlotState.RUNNING or slot.restart_after_stop:
                    continue
                if s.max_memory_mb and slot.rss > s.max_memory_mb * 1024 * 1024:
                    self._recycle(slot, f"RSS {slot.rss / 1048576:.0f} MB above WORKER_MAX_MEMORY_MB={s.max_memory_mb}")
                elif slot.message_limit and done >= slot.message_limit:
                    self._recycle(slot, f"{done} messages handled (WORKER_MAX_MESSAGES={s.max_messages})")

    def _recycle(self, slot: _Slot, why: str) -> None:
        self._event("recycled", f"worker {slot.key} recycled: {why}", slot.key)
        slot.restart_after_stop = True
        self._terminate(slot)

    def _resolve_stop_waiters(self) -> None:
        if not self._stop_waiters:
            return
        if any(s.alive for p in self._pools.values() for s in p.slots):
            return
        waiters, self._stop_waiters = self._stop_waiters, []
        self._release_host_lock()
        if self._stopping_any:
            self._stopping_any = False
            self._event("stopped", "all workers stopped")
        self._publish_snapshot()
        for waiter in waiters:
            waiter.set_result(None)

    # ==========================================================================================
    # Views
    # ==========================================================================================

    def _last_message_age(self, slot: _Slot) -> float | None:
        at = slot.stats.get("last_message_at")
        return None if at is None else max(0.0, time.time() - at)

    def _build_snapshot(self) -> ManagerSnapshot:
        now = time.monotonic()
        pools = getattr(self, "_pools", {})
        workers: list[WorkerInfo] = []
        routes: list[RouteInfo] = []
        route_rates: dict[str, float] = {}
        for pool in pools.values():
            for slot in pool.slots:
                for topic, rate in slot.route_rates.items():
                    route_rates[topic] = route_rates.get(topic, 0.0) + rate
        for pool in pools.values():
            live = 0
            for slot in pool.slots:
                stats = slot.stats
                connected = bool(stats.get("connected")) and slot.process is not None
                info = WorkerInfo(
                    slot=slot.key,
                    route=pool.key if pool.route is not None else MAIN_ROUTE_LABEL,
                    index=slot.index,
                    client_id=slot.client_id,
                    state=slot.state,
                    pid=slot.pid,
                    connected=connected,
                    detail=slot.detail,
                    cpu_percent=slot.cpu,
                    rss_bytes=slot.rss,
                    received=int(stats.get("received", 0)),
                    handled=int(stats.get("handled", 0)),
                    failed=int(stats.get("failed", 0)),
                    in_flight=int(stats.get("in_flight", 0)),
                    messages_per_second=slot.rate,
                    last_message_age=self._last_message_age(slot),
                    restarts=slot.restarts,
                    last_exit=slot.last_exit,
                    uptime=(now - slot.spawned_at) if slot.process is not None and slot.spawned_at else None,
                    is_main=pool.route is None,
                )
                workers.append(info)
                if slot.state in (SlotState.STARTING, SlotState.RUNNING) and slot.process is not None:
                    live += 1
            served = [pool.route] if pool.route is not None else self.router.unshared_routes
            for route in served:
                handled, failed = self._route_totals.get(route.topic, (0, 0))
                routes.append(
                    RouteInfo(
                        route.topic,
                        route.mqtt_topic,
                        route.qos,
                        route.shared,
                        pool.desired,
                        live,
                        route_rates.get(route.topic, 0.0),
                        handled,
                        failed,
                    )
                )
        started = self._started_at is not None
        return ManagerSnapshot(
            group=getattr(self, "group_name", ""),
            broker=self._broker_info(workers),
            workers=tuple(workers),
            routes=tuple(routes),
            uptime=(now - self._started_at) if self._started_at is not None else 0.0,
            started=started,
            messages_per_second=sum(r.messages_per_second for r in routes),
            handled=sum(r.handled for r in routes),
            failed=sum(r.failed for r in routes),
            taken_at=now,
        )

    def _broker_info(self, workers: list[WorkerInfo]) -> BrokerInfo:
        address = self.settings.broker_address
        live = [w for w in workers if w.alive]
        if any(w.connected for w in live):
            state, detail = "connected", ""
        elif any("credentials" in (w.detail or "") or "credentials" in (w.last_exit or "") for w in workers):
            state, detail = "auth failed", "the broker refused the credentials"
        elif any((w.detail or "").startswith("TLS") or "TLS" in (w.last_exit or "") for w in workers):
            state, detail = "tls error", next((w.detail for w in workers if "TLS" in (w.detail or "")), "")
        elif live:
            failing = [w.detail for w in live if w.detail and w.detail not in ("starting", "connecting")]
            state, detail = ("unreachable", failing[0]) if failing else ("connecting", "")
        else:
            state, detail = "idle", ""
        return BrokerInfo(address, state, detail, self.broker_kind)

    def _event(
        self,
        kind: str,
        message: str,
        slot: str | None = None,
        level: int = logging.INFO,
        logger: str | None = None,
    ) -> None:
        with self._events_lock:
            self._event_seq += 1
            self._events.append(EngineEvent(self._event_seq, time.time(), kind, message, slot, level))
        target = logging.getLogger(f"routemq.worker.{slot}") if kind == "log" else log
        if target.isEnabledFor(level):
            target.log(level, "%s", message, extra={"slot": slot, "event": kind, "origin": logger})

    # ==========================================================================================
    # One manager per group, broker and host
    # ==========================================================================================

    def _acquire_host_lock(self) -> None:
        if self._host_lock is None:
            s = self.settings
            self._host_lock = _HostLock.acquire(
                f"{s.broker_address}/{s.client_id}/{self._host}/{self.group_name}",
                self.group_name,
                s.broker_address,
            )

    def _release_host_lock(self) -> None:
        if self._host_lock is not None:
            self._host_lock.release()
            self._host_lock = None


class _RolloutFailed(Exception):
    pass


def _first_detail(slots: list[_Slot]) -> str:
    return next((s.last_exit or s.detail for s in slots if s.last_exit or s.detail), "no detail")


class _HostLock:
    """An exclusive lock per (broker, client-id prefix, host, group): two managers with the same
    settings on one host would share client ids and kick each other off the broker."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, identity: str, group: str, broker: str) -> _HostLock:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        directory = os.path.join(base, f"routemq-dash-{os.getuid()}")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, hashlib.sha1(identity.encode()).hexdigest()[:16] + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ManagerConflict(
                f"another manager (pid {holder}) on this host already runs share group {group!r} on {broker}; "
                "set another MQTT_GROUP_NAME or MQTT_CLIENT_ID, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def _launch(spec: worker_process.WorkerSpec) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``python -m engine.worker_process`` and hand it its spec over a private socket."""
    parent_sock, child_sock = socket.socketpair()
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_VARIABLES}
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.worker_process",
                "--slot",
                spec.slot,
                "--fd",
                str(child_sock.fileno()),
            ],
            pass_fds=[child_sock.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,  # only what a worker prints before it routes output to its log
            env=env,
            start_new_session=True,  # Ctrl+C and terminal hang-ups are the manager's to handle
        )
    finally:
        child_sock.close()
    conn = Connection(parent_sock.detach())
    conn.send((spec, list(sys.path)))
    return process, conn


# The workers get their settings over their socket; these never go into their environment.
_SECRET_VARIABLES = frozenset({"MQTT_PASSWORD", "MQTT_TLS_KEYFILE_PASSWORD"})


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _read_stderr(process: subprocess.Popen[bytes]) -> str:
    stream = process.stderr
    if stream is None:
        return ""
    try:
        os.set_blocking(stream.fileno(), False)
        data = stream.read() or b""
    except (OSError, ValueError):
        data = b""
    finally:
        stream.close()
    return data.decode(errors="replace").strip()


def _route_slug(topic: str) -> str:
    """A readable, unique, client-id-safe name for a route pattern."""
    readable = re.sub(r"[^A-Za-z0-9]+", "_", topic).strip("_")[:24] or "root"
    return f"{readable}-{hashlib.sha1(topic.encode()).hexdigest()[:6]}"


# Managers still running when the interpreter exits stop their workers first.
_live_managers: weakref.WeakSet[WorkerManager] = weakref.WeakSet()


@atexit.register
def _close_live_managers() -> None:
    for manager in list(_live_managers):
        with contextlib.suppress(Exception):
            manager.close()
