"""Arbiter: the supervisor loop, on one thread that owns every worker process.

gunicorn's ``Arbiter.run`` is the shape. Each pass: wait on the workers' sockets, their exit
descriptors and the wake-up pipe; read what workers said; run the operator's queued commands;
reap the dead; act on deadlines (backoff over, hung, stop deadline) and advance a rollout;
sample CPU and memory; publish a new snapshot. The Arbiter is also its slots' ``SlotHost``:
every side effect a slot needs (launch, events, the session ledger) goes through it.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import Future

from ..autoscale import AutoscaleConfig, AutoscaleRange
from ..details import RouteDetail, WorkerDetail
from ..in_hand import InHand
from ..mqtt_client import end_session, leave_share_group
from ..protocol import (
    EXIT_UNKNOWN,
    DeadLettered,
    Heartbeat,
    LogLine,
    ProtocolViolation,
    Quarantined,
    RoutesSource,
    WorkerSpec,
)
from ..router import Router
from ..sessions import SessionLedger
from ..settings import Settings
from ..snapshot import ManagerSnapshot
from . import autoscaling, detail_builder
from .child_process import ChildProcess, Process
from .commands import CommandQueue
from .event_log import EventLog
from .forked_process import ForkedProcess
from .launcher import Launcher
from .pool import MAIN, ClientIds, Pool
from .reports import Reports
from .rollout import Rollout, plan_reload
from .slot import Slot
from .snapshot_builder import Identity, build_snapshot
from .watch import Watch
from .zygote import Zygote

log = logging.getLogger("routemq.manager")

TICK = 0.25  # longest the supervisor sleeps without looking around
LAST_LOGGED = 50  # log lines of a dead worker kept with its last words (its failures' examples)
CHECK_EVERY = 0.1  # deadlines and restarts due, at most this often
SNAPSHOT_EVERY = 0.5  # snapshot rebuilds for new counters; a state change rebuilds at once
SAMPLE_EVERY = 1.0  # psutil sampling and message rates


class Arbiter:
    def __init__(
        self,
        settings: Settings,
        router: Router,
        ids: ClientIds,
        identity: Identity,
        commands: CommandQueue,
        events: EventLog,
        ledger: SessionLedger,
    ) -> None:
        self.settings = settings
        self.router = router
        self.routes: RoutesSource | None = None  # set before the first launch
        self.ids = ids
        self.identity = identity
        self.commands = commands
        self.events = events
        self.ledger = ledger
        self.closing = False
        self.pools: dict[str, Pool] = {}
        self.reports = Reports(events, router, settings.poison_deaths)
        self.totals, self.histories, self.poison = self.reports.totals, self.reports.histories, self.reports.poison
        self._launched_at_seq: dict[str, int] = {}  # slot -> the last event before its process started
        self.exitcodes: dict[str, int] = {}  # slot -> its last exit code, even once the slot is gone
        self.started_at: float | None = None
        self.rollout: Rollout | None = None
        self.stop_waiters: list[Future[None]] = []
        self.stopping_any = False
        self.leftovers_checked = False
        # Autoscale ranges set at run time (None: turned off), which outlive a reload.
        self.autoscale_set: dict[str, AutoscaleRange | None] = {}
        self.autoscale_config = AutoscaleConfig.from_settings(settings)
        self.watch = Watch(commands.wake_fd)
        self.launcher = Launcher(settings.worker_start_method, self.watch,
                                 lambda kind, message, level: self.event(kind, message, None, level), self.now)
        self._last_checks = self._last_build = self._last_sample = 0.0
        self._changed = False
        self.build_pools()
        self.snapshot = self._build_snapshot()

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            readable, output, exited = self._wait()
            for slot in readable:
                self._read(slot)
            for slot in output:
                self._read_output(slot)
            self.commands.run_pending(on_each=self.publish)
            for slot in [*exited, *self._polled()]:
                self._reap(slot)
            now = self.now()
            # Heartbeats wake us over a hundred times a second with 64 workers; the checks and
            # the snapshot need not run that often, unless a slot changed state.
            if self._changed or now - self._last_checks >= CHECK_EVERY:
                self._last_checks = now
                self._manage(now)
            if now - self._last_sample >= SAMPLE_EVERY:
                self._last_sample = now
                self._sample(now)
            if self._changed or now - self._last_build >= SNAPSHOT_EVERY:
                self.publish()
            self.resolve_stop_waiters()
            if self.closing and not self._any_alive():
                self.launcher.close()
                self.commands.run_pending()
                return

    def _sample(self, now: float) -> None:
        """CPU and memory of every worker, then what the autoscaled pools make of their load."""
        for slot in self._slots():
            slot.sample(now)
        for route in self.snapshot.routes:
            self.histories.of(route.topic).throughput.append(route.messages_per_second)
        if self.rollout is None and not self.closing:
            autoscaling.step(self.pools.values(), self, now)

    def _wait(self) -> tuple[list[Slot], list[Slot], list[Slot]]:
        ready = self.watch.wait(self._sleep_time())
        if ready.woken:
            self.commands.drain_wake()
        for zygote, kind in ready.zygotes:
            self._zygote_event(zygote, kind)
        for zygote in list(self.launcher.zygotes):  # what it said while we waited for a fork
            if zygote.changed:
                self._zygote_event(zygote, "zygote")
        return ready.sockets, ready.outputs, ready.exits

    def _zygote_event(self, zygote: Zygote, kind: str) -> None:
        if kind == "zygote-output":
            self.launcher.on_output(zygote)
            return
        if kind == "zygote":
            changed = self.launcher.on_control(zygote)
        else:
            changed = self.launcher.on_exit(zygote)
            for process in changed:  # its workers: not a death of their own, restarted at once
                slot = self._slot_of(process)
                if slot is not None and process.code in (None, EXIT_UNKNOWN):
                    slot.with_zygote = True
        for process in dict.fromkeys(changed):
            slot = self._slot_of(process)
            if slot is None:
                continue
            self.watch.add(process.exit_fd, (slot, "exit"))
            self._reap(slot)
        self._changed = True

    def _slot_of(self, process: Process) -> Slot | None:
        return next((slot for slot in self._slots() if slot.process is process), None)

    def _sleep_time(self) -> float:
        if any(zygote.changed for zygote in self.launcher.zygotes):
            return 0.0
        due = [s.restart_at for p in self.pools.values() for s in p.slots if s.restart_at is not None]
        return TICK if not due else max(0.0, min(TICK, min(due) - self.now()))

    def _read(self, slot: Slot) -> None:
        process = slot.process
        if not isinstance(process, ChildProcess):
            return
        state = slot.state
        try:
            for message in process.read():
                slot.on_message(message)
        except ProtocolViolation as violation:
            slot.kill(f"protocol violation: {violation}")
        if process.eof:
            self.watch.forget(process.sock.fileno())
        # A heartbeat's new counters wait for the next timed rebuild (SNAPSHOT_EVERY); only a
        # change of state is published at once: with 64 workers, heartbeats come 64 times a second.
        if slot.state is not state:
            self._changed = True

    def _read_output(self, slot: Slot) -> None:
        process = slot.process
        if not isinstance(process, ChildProcess) or process.output_fd is None:
            return
        fd = process.output_fd
        self.reports.output_lines(slot, process.read_output(), self.now())
        if process.output_fd is None:  # end of file
            self.watch.forget(fd)

    def _polled(self) -> list[Slot]:
        """Workers without a pidfd (no pidfd_open on this system) are polled instead."""
        return [s for s in self._slots() if isinstance(s.process, ChildProcess) and s.process.exit_fd is None]

    def _reap(self, slot: Slot) -> None:
        process = slot.process
        if process is None:
            return
        exitcode = process.poll()
        if exitcode is None:
            # Still running (polled), or the pidfd fired a moment before waitpid sees it. A
            # forked worker's code comes from its zygote: until then its pidfd has said enough.
            if isinstance(process, ForkedProcess) and process.awaiting_code():
                self.watch.forget(process.exit_fd)
            return
        if isinstance(process, ChildProcess):
            self.watch.forget_process(process)
        messages, output, last_output, in_hand = process.finish()  # its last counts, log lines, fatal reason
        for message in messages:
            slot.on_message(message)
        self.reports.output_lines(slot, output, self.now(), last_words=True)
        self.exitcodes[slot.key] = exitcode
        slot.reaped(exitcode, last_output, in_hand, self._last_logged(slot))
        self._changed = True

    def _last_logged(self, slot: Slot) -> str:
        """The last lines the slot's process logged or wrote to its descriptors, in order: the
        words of a handler that logs, then calls os._exit(), are in its log, not its output."""
        since = self._launched_at_seq.get(slot.key, 0)
        logs, _ = self.events.journal(slot.key)
        lines = [e.message for e in logs[-LAST_LOGGED:] if e.seq > since and e.kind == "log"]
        return "\n".join(lines)

    def _manage(self, now: float) -> None:
        for zygote in self.launcher.tidy(self.settings.hang_timeout):
            self._zygote_event(zygote, "zygote-exit")
        for slot in self._slots():
            slot.tick(now)
        if self.rollout is not None and self.rollout.advance(now):
            self.rollout = None
        for key, pool in list(self.pools.items()):
            pool.prune()
            if pool.gone:
                del self.pools[key]  # its route was removed by a reload

    def _slots(self) -> list[Slot]:
        """Every slot, as a list: acting on one may add or remove others."""
        return [slot for pool in self.pools.values() for slot in pool.slots]

    def _any_alive(self) -> bool:
        return any(pool.alive for pool in self.pools.values())

    def publish(self) -> None:
        self._changed = False
        self._last_build = self.now()
        self.snapshot = self._build_snapshot()

    def _build_snapshot(self) -> ManagerSnapshot:
        return build_snapshot(self.pools.values(), self.router, self.totals, self.histories, self.identity,
                              self.started_at, self.now(), self.launcher.info)

    # --- SlotHost --------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic()

    def launch(self, slot: Slot) -> Process:
        assert self.routes is not None
        pool = self.pools[slot.pool_key]
        spec = WorkerSpec(
            slot=slot.key,
            client_id=slot.client_id,
            group_name=self.identity.group,
            route_topic=pool.route.topic if pool.route is not None else None,
            routes=self.routes,
            settings=self.settings.replace(fleet_control_key=None),  # a worker has no use for it
            drain=slot.retiring,
            sys_path=tuple(sys.path),
            quarantine=tuple(Quarantined(key, s.deaths, s.last_exit) for key, s in self.poison.quarantined(slot.key)),
        )
        tracked = self.settings.worker_concurrency if self.settings.poison_deaths else 0
        process = self.launcher.launch(spec, tracked)
        self._launched_at_seq[slot.key] = self.events.last_seq  # its log lines come after this
        self.watch.process(slot, process)
        self._changed = True
        return process

    def event(self, kind: str, message: str, slot: str | None = None, level: int = logging.INFO) -> None:
        self._changed = True
        self.events.emit(kind, message, slot, level)

    def log_lines(self, slot: Slot, lines: tuple[LogLine, ...], dropped: int) -> None:
        self.reports.log_lines(slot, lines, dropped)

    def session_kept(self, slot: Slot) -> None:
        self.ledger.keep(slot.client_id, slot.pool_key, slot.index)

    def session_ended(self, slot: Slot) -> None:
        self.ledger.forget(slot.client_id)

    def counted(self, slot: Slot, before: Heartbeat | None, after: Heartbeat) -> None:
        self.reports.counted(self.pools[slot.pool_key], slot, before, after, self.now())

    def died_holding(self, slot: Slot, in_hand: list[InHand]) -> bool:
        return self.reports.died_holding(self.pools[slot.pool_key], slot, in_hand)

    def dead_lettered(self, slot: Slot, letters: tuple[DeadLettered, ...]) -> None:
        self.reports.dead_lettered(slot, letters)

    def left_for_good(self, slot: Slot) -> None:
        """A crash-looping slot's session leaves its share group, so live workers take its share.

        A dead slot's session stays in the group and the broker keeps assigning it messages. Not
        for QoS 2: paho would take those messages (PUBREC) while leaving.
        """
        route = self.pools[slot.pool_key].route
        if route is None or route.qos == 2 or self.closing:
            return
        subscription = route.get_subscription_topic(self.identity.group)
        self.commands.off_thread(
            f"leave-share-group {slot.key}",
            lambda: leave_share_group(self.settings, slot.client_id, [subscription]),
            lambda: self.event("crash-loop", f"{slot.key} left the share group until it runs again", slot.key),
            f"could not take {slot.key} out of its share group",
        )

    # --- pools -----------------------------------------------------------------------------------

    def build_pools(self) -> None:
        self.pools = {}
        for route in self.router.routes:
            if route.shared:
                self.pools[route.topic] = self.new_pool(route.topic, route.worker_count)
        if self.router.unshared_routes:
            self.pools[MAIN] = self.new_pool(MAIN, 1)

    def new_pool(self, key: str, desired: int) -> Pool:
        route = None if key == MAIN else self.router.find_route(key)
        pool = Pool(self, self.ids, key, route, desired)
        if route is not None:
            pool.set_autoscale(self.autoscale_set.get(key, route.autoscale), self.autoscale_config)
        return pool

    def worker_detail(self, key: str) -> WorkerDetail | None:
        for pool in self.pools.values():
            for slot in pool.slots:
                if slot.key == key:
                    return detail_builder.worker_detail(pool, slot, self.events, self.now())
        return None

    def route_detail(self, topic: str) -> RouteDetail | None:
        info = next((r for r in self.snapshot.routes if r.topic == topic), None)
        if info is None:
            return None
        return detail_builder.route_detail(info, self.histories.get(topic), self.totals.causes(topic),
                                           list(self.pools.values()), self.now())

    def route_details(self) -> list[RouteDetail]:
        return [detail for route in self.snapshot.routes if (detail := self.route_detail(route.topic)) is not None]

    def find_slot(self, key: str) -> Slot:
        for pool in self.pools.values():
            for slot in pool.slots:
                if slot.key == key:
                    return slot
        raise ValueError(f"no worker slot {key!r}")

    def begin_reload(self, router: Router, routes: RoutesSource) -> Future[None]:
        done: Future[None] = Future()
        old_router, self.router, self.routes = self.router, router, routes
        self.launcher.new_code()
        self.reports.router = router
        self._autoscale_from_code(old_router, router)
        if not self._any_alive():
            # Nothing runs: the next start simply uses the new routes (and drains what is left).
            self.build_pools()
            self.leftovers_checked = False
            done.set_result(None)
            return done
        self.event("reload", f"reloading routes: {len(old_router.routes)} before, {len(router.routes)} now")
        self.rollout = plan_reload(self.pools, router, self.new_pool, self, done)
        if self.rollout.advance(self.now()):
            self.rollout = None
        return done

    def _autoscale_from_code(self, old: Router, new: Router) -> None:
        """A route whose autoscale range changed in its code takes the new one (as worker_count does)."""
        for route in new.routes:
            before = old.find_route(route.topic)
            if before is None or before.autoscale == route.autoscale:
                continue
            self.autoscale_set.pop(route.topic, None)
            pool = self.pools.get(route.topic)
            if pool is not None:
                pool.set_autoscale(route.autoscale, self.autoscale_config)

    def end_orphan_session(self, client_id: str) -> None:
        """End (on a thread) a kept session whose route no longer exists."""
        self.commands.off_thread(f"end-session {client_id}", lambda: end_session(self.settings, client_id),
                                 lambda: self.ledger.forget(client_id), f"could not end the broker session {client_id}")

    def resolve_stop_waiters(self) -> None:
        if not self.stop_waiters or self._any_alive():
            return
        waiters, self.stop_waiters = self.stop_waiters, []
        if self.stopping_any:
            self.stopping_any = False
            self.event("stopped", "all workers stopped")
        self.publish()
        for waiter in waiters:
            waiter.set_result(None)
