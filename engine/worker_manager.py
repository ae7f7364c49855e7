"""WorkerManager: one pool of worker processes per shared route, supervised.

The public methods are RouteMQ's (``start_workers``, ``stop_workers``, ``get_worker_count``,
``get_shared_routes_info``, ``workers``) plus the operator's verbs (``scale_route``,
``restart_dead_workers``, ``restart_worker``, ``reload_routes``) and the views (``snapshot``,
``events_since``).

This class is a façade. One supervisor thread (:class:`~engine.supervisor.arbiter.Arbiter`)
owns every process; the methods here check their arguments, queue the work for that thread and
wait for its answer (see ARCHITECTURE.md for the map).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import pickle
import re
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .autoscale import AutoscaleRange
from .details import RouteDetail, WorkerDetail
from .fleet.control import RemoteCommand
from .fleet.remote import RemoteControl
from .fleet.status import StatusPublisher, package_version
from .protocol import RoutesSource
from .router import Router
from .router_registry import RouterRegistry
from .sessions import SessionLedger
from .settings import Settings, load_settings
from .snapshot import EngineEvent, ManagerSnapshot, WorkerInfo
from .supervisor import verbs
from .supervisor.arbiter import Arbiter
from .supervisor.commands import CommandQueue
from .supervisor.event_log import EventLog
from .supervisor.host_lock import HostLock, ManagerConflict
from .supervisor.pool import ClientIds
from .supervisor.snapshot_builder import Identity

__all__ = ["ManagerConflict", "WorkerHandle", "WorkerManager"]

T = TypeVar("T")
DETAIL_TIMEOUT = 5.0  # seconds a detail view may wait for the supervisor thread
_GROUP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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
        return self._manager.last_exitcode(self.slot)

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
        s = self.settings
        # The manager's name (MANAGER_ID, else the host's) makes its workers' client ids its
        # own: two managers of one group on one host need two names.
        host = s.manager_name
        self._identity = f"{s.broker_address}/{s.client_id}/{host}/{self.group_name}"
        self._commands = CommandQueue()
        self._events = EventLog()
        self._arbiter = Arbiter(
            s,
            router,
            ClientIds(s.client_id, host, self.group_name),
            Identity(self.group_name, s.broker_address, broker_kind),
            self._commands,
            self._events,
            SessionLedger.for_identity(self._identity),
        )
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._host_lock: HostLock | None = None
        self._status: StatusPublisher | None = None
        self._closing = False  # close() has begun: no remote command, no new status publisher
        _live_managers.add(self)

    # --- the reference API -----------------------------------------------------------------------

    def start_workers(self, num_workers: int | None = None) -> None:
        """Start every pool at its route's ``worker_count`` (and the main worker when there are
        non-shared routes). With ``num_workers``, add that many workers to the shared pools,
        split in proportion to their ``worker_count`` (largest remainder; an empty pool gets one
        first so that no shared route is left unserved)."""
        if num_workers is not None and (isinstance(num_workers, bool) or num_workers < 0):
            raise ValueError(f"num_workers must be a whole number >= 0, not {num_workers!r}")
        self._prepare()
        self._call(lambda: verbs.start(self._arbiter, num_workers))
        self._publish_status()

    def stop_workers(self) -> None:
        """Stop every worker gracefully, in parallel; SIGKILL what outlives the graceful timeout.

        Returns when every process has exited and been reaped. Workers keep their broker
        sessions, so QoS 1/2 messages published while stopped wait for the next start.
        """
        if self._thread is None:
            return
        status = self._status
        if status is not None:
            status.set_state("stopping")
        try:
            done: Future[None] = self._call(lambda: verbs.begin_stop(self._arbiter))
            done.result(timeout=self.settings.graceful_timeout + 30)
        finally:
            if status is not None and self._status is status:  # not closing: idle, and still there
                status.set_state("online")
        self._release_host_lock()

    def get_worker_count(self) -> int:
        """Workers of shared routes that are running or starting."""
        return self.snapshot().live_workers

    def get_shared_routes_info(self) -> list[dict[str, Any]]:
        """One dict per shared route: topic, mqtt_topic, qos, worker_count (desired), live_workers."""
        return [
            {
                "topic": route.topic,
                "mqtt_topic": route.mqtt_topic,
                "qos": route.qos,
                "worker_count": info.desired_workers,
                "subscription": route.get_subscription_topic(self.group_name),
                "live_workers": info.live_workers,
            }
            for info in self.snapshot().routes
            if info.shared and (route := self.router.find_route(info.topic)) is not None
        ]

    @property
    def workers(self) -> list[WorkerHandle]:
        """The shared workers, one handle per slot (the main worker is not included)."""
        return [WorkerHandle(self, w.slot) for w in self.snapshot().workers if not w.is_main]

    # --- operator verbs and views ----------------------------------------------------------------

    def scale_route(self, topic: str, count: int) -> None:
        """Resize the pool of the shared route ``topic`` (its pattern) to ``count`` workers.

        Growing starts workers at once; shrinking retires the idlest workers, which unsubscribe,
        finish what the broker still sends them and end their sessions, in the background.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"a pool needs at least one worker, not {count!r}; use stop_workers() to stop")
        self._check_shared(topic)
        self._prepare()
        self._call(lambda: verbs.resize(self._arbiter, topic, count))

    def set_autoscale(self, topic: str, min_workers: int | None, max_workers: int | None = None) -> None:
        """Size the pool of the shared route ``topic`` on measured load, between ``min_workers``
        and ``max_workers`` (the current size is clamped into that range); ``set_autoscale(topic,
        None)`` turns it off and leaves the pool at its current size. See engine/autoscale.py."""
        self._check_shared(topic)
        limits = None
        if min_workers is not None or max_workers is not None:
            limits = AutoscaleRange.checked(min_workers, max_workers, f"set_autoscale({topic!r})")
        self._call(lambda: verbs.set_autoscale(self._arbiter, topic, limits))

    def _check_shared(self, topic: str) -> None:
        shared = [r.topic for r in self.snapshot().routes if r.shared]
        if topic not in shared:
            names = ", ".join(repr(k) for k in shared) or "none"
            raise ValueError(f"no shared route {topic!r} (shared routes: {names})")

    def restart_dead_workers(self) -> int:
        """Restart now every slot in backoff or crash-loop; the number restarted."""
        return self._call(lambda: verbs.restart_dead(self._arbiter))

    def restart_worker(self, slot: str) -> None:
        """Restart one worker gracefully (it finishes what it has in hand first)."""
        self._call(lambda: verbs.restart_one(self._arbiter, slot))

    def kill_worker(self, slot: str) -> None:
        """SIGKILL one worker now (what it holds comes back from its session); it restarts as
        after any death."""
        self._call(lambda: verbs.kill_one(self._arbiter, slot))

    def worker_detail(self, slot: str) -> WorkerDetail | None:
        """Everything known about one slot (its log, lifecycle, history, messages in hand), or
        None when there is no such slot."""
        return self._call(lambda: self._arbiter.worker_detail(slot), timeout=DETAIL_TIMEOUT, read_only=True)

    def route_detail(self, topic: str) -> RouteDetail | None:
        """Everything known about one route (handler times, throughput, failures, its pool), or
        None when there is no such route."""
        return self._call(lambda: self._arbiter.route_detail(topic), timeout=DETAIL_TIMEOUT, read_only=True)

    def route_details(self) -> list[RouteDetail]:
        """Every route's detail, in one call (what /metrics reads at each scrape)."""
        return self._call(self._arbiter.route_details, timeout=DETAIL_TIMEOUT, read_only=True)

    def reload_routes(self, router: Router, timeout: float = 60.0) -> None:
        """Replace the routes, one pool at a time, without dropping messages.

        For each shared route that stays, new workers (new slots, running the new code) start
        and subscribe before the old ones drain and retire. New routes get new pools; pools of
        routes that are gone drain and retire; the main worker restarts in place (its session
        keeps what arrives meanwhile). If a pool's new workers do not come up, that pool keeps
        its old workers and the reload stops there. Returns when every pool has been handled.
        """
        source = self._routes_source(router)
        done: Future[None] = self._call(lambda: self._arbiter.begin_reload(router, source))
        self.router = router
        done.result(timeout=timeout)

    def reload(self, timeout: float = 60.0) -> None:
        """Import the router modules of ``router_directory`` afresh and :meth:`reload_routes` with
        them (what SIGHUP does headless, and the remote ``reload``). RouterLoadError, with the
        running workers untouched, when a module does not load; ValueError when the routes were
        not loaded from that package."""
        if self.router.source_package != self.router_directory:
            package = self.router_directory
            raise ValueError(f"nothing to reload: the routes were not loaded from the package {package!r}")
        self.reload_routes(RouterRegistry(self.router_directory).discover_and_load_routers(fresh=True), timeout)

    def snapshot(self) -> ManagerSnapshot:
        """The latest immutable picture of every slot and route.

        Rebuilt at once when a worker changes state, and twice a second for the counters.
        """
        return self._arbiter.snapshot

    def events_since(self, seq: int) -> list[EngineEvent]:
        """Events with a sequence number above ``seq``, oldest first (the last few thousand)."""
        return self._events.since(seq)

    def announce(self, message: str, level: int = logging.INFO) -> None:
        """Add a note to the event stream (the dashboard's log, the headless output)."""
        self._events.emit("note", message, level=level)

    def last_exitcode(self, slot: str) -> int | None:
        """The exit code of the slot's last process (negative: the signal), None if none exited."""
        return self._arbiter.exitcodes.get(slot)

    def close(self) -> None:
        """Stop every worker and the supervisor. Safe to call more than once."""
        self._closing = True
        status, self._status = self._status, None
        if status is not None:
            status.set_state("stopping")
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.stop_workers()
            self._arbiter.closing = True
            self._commands.wake()
            self._thread.join(timeout=5)
        if status is not None:
            status.stop()
        self._release_host_lock()
        _live_managers.discard(self)

    def _publish_status(self) -> None:
        """From the first start on, the manager's status for the fleet (FLEET_STATUS)."""
        if self._status is None and self.settings.fleet_status and not self._closing:
            self._status = StatusPublisher(self.settings, self.group_name, self.snapshot, package_version())
            key = self.settings.fleet_control_key
            to = f"{self.group_name}/{self.settings.manager_name}"
            control = RemoteControl(self._status.topic_root, key.reveal() if key else None, to, self._remote,
                                    self.announce)
            self._status.listen(control)
            self._status.start()

    def _remote(self, command: RemoteCommand) -> None:
        """Carry out a signed remote command (engine/fleet/remote.py): the operator's verbs."""
        if self._closing:  # a `start` now would outlive close()
            raise ValueError("the manager is stopping")
        args = command.args
        if command.verb == "scale":
            self.scale_route(args["route"], args["count"])
        elif command.verb == "restart-dead":
            self.restart_dead_workers()
        elif command.verb == "restart-worker":
            self.restart_worker(args["slot"])
        elif command.verb == "stop":
            self.stop_workers()
        elif command.verb == "start":
            self.start_workers()
        elif command.verb == "autoscale":
            self.set_autoscale(args["route"], args["min"], args["max"])
        elif command.verb == "reload":
            self.reload()
        else:  # the Verifier knows the verbs; one added there and not here is a bug of ours
            raise ValueError(f"{command.verb} is not carried out by this manager")

    def __enter__(self) -> WorkerManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------------

    def _call(self, func: Callable[[], T], timeout: float | None = None, read_only: bool = False) -> T:
        """Run ``func`` on the supervisor thread and return its result (or raise its error;
        TimeoutError after ``timeout`` seconds). A ``read_only`` call is not followed by a new
        snapshot."""
        self._ensure_supervisor()
        if threading.current_thread() is self._thread:
            return func()
        return self._commands.submit(func, read_only).result(timeout)

    def _ensure_supervisor(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._arbiter.closing = False
                self._thread = threading.Thread(target=self._arbiter.run, name="routemq-supervisor", daemon=True)
                self._thread.start()

    def _prepare(self) -> None:
        """Before starting workers: the host lock, and how workers will get their routes."""
        if self._host_lock is None:
            s = self.settings
            self._host_lock = HostLock.acquire(self._identity, self.group_name, s.broker_address)
        if self._arbiter.routes is None:
            self._arbiter.routes = self._routes_source(self.router)

    def _release_host_lock(self) -> None:
        if self._host_lock is not None:
            self._host_lock.release()
            self._host_lock = None

    def _routes_source(self, router: Router) -> RoutesSource:
        """How workers get their routes: import the package themselves, or receive the Router."""
        if router.source_package is not None and router.source_package == self.router_directory:
            return RoutesSource(package=self.router_directory)
        for route in router.routes:
            try:
                pickle.dumps(route)
            except Exception as exc:  # any pickling failure means the same thing
                name = getattr(route.handler, "__qualname__", repr(route.handler))
                raise ValueError(
                    f"route {route.topic!r}: its handler {name} (or middleware) cannot be sent to a worker "
                    f"process ({exc}); define it at module level in an importable module"
                ) from None
        return RoutesSource(pickled=pickle.dumps(router))


# Managers still running when the interpreter exits stop their workers first.
_live_managers: weakref.WeakSet[WorkerManager] = weakref.WeakSet()


@atexit.register
def _close_live_managers() -> None:
    for manager in list(_live_managers):
        with contextlib.suppress(Exception):
            manager.close()
