"""Slot: one place in a route's pool, which owns its state and its process.

Every state change of a slot happens in a method here (supervisord's ``Subprocess`` is the
model): the operator's and the pool's verbs (:meth:`Slot.spawn`, :meth:`~Slot.stop`,
:meth:`~Slot.restart`, :meth:`~Slot.retire`, :meth:`~Slot.kill`), what the worker says
(:meth:`~Slot.on_message`), its exit (:meth:`~Slot.reaped`), and the timed changes
(:meth:`~Slot.tick`: backoff over, hung, stop deadline, recycling). A slot makes no OS call:
its :class:`SlotHost` launches processes, keeps time and records events, so tests drive a slot
with a fake clock and a dummy process.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections import deque
from typing import Protocol

from ..details import HISTORY_SECONDS
from ..in_hand import InHand
from ..policy import RestartPolicy
from ..protocol import Command, DeadLettered, Fatal, Heartbeat, Hello, LogLine, Logs, WorkerMessage, describe_exit
from ..settings import Settings
from ..states import Goal, SlotState, check_transition
from .child_process import Process
from .rates import SILENCE_MIN, BusyMeter, LineBudget, RateMeter

STARTUP_GRACE = 30.0  # seconds a new worker may take to send its first heartbeat (route imports)
BY_OPERATOR = "by the operator"  # kill(reason) for the operator's kill: a restart, not a death to count
WITH_ZYGOTE = "its zygote died"  # went down with the zygote it was forked from: not its own death either

State = SlotState


class SlotHost(Protocol):
    """What a slot needs from the supervisor around it: every side effect goes through here."""

    settings: Settings
    closing: bool

    def now(self) -> float: ...

    def launch(self, slot: Slot) -> Process: ...

    def event(self, kind: str, message: str, slot: str | None = None, level: int = logging.INFO) -> None: ...

    def log_lines(self, slot: Slot, lines: tuple[LogLine, ...], dropped: int) -> None: ...

    def session_kept(self, slot: Slot) -> None: ...

    def session_ended(self, slot: Slot) -> None: ...

    def left_for_good(self, slot: Slot) -> None: ...

    def counted(self, slot: Slot, before: Heartbeat | None, after: Heartbeat) -> None: ...

    def died_holding(self, slot: Slot, in_hand: list[InHand]) -> bool: ...

    def dead_lettered(self, slot: Slot, letters: tuple[DeadLettered, ...]) -> None: ...


class Slot:
    def __init__(self, host: SlotHost, pool_key: str, key: str, index: int, client_id: str) -> None:
        self.host = host
        self.pool_key = pool_key
        self.key = key
        self.index = index
        self.client_id = client_id
        s = host.settings
        self.policy = RestartPolicy(
            first_delay=s.restart_backoff,
            max_delay=s.restart_backoff_max,
            reset_after=s.restart_backoff_max,
            crash_loop_restarts=s.crash_loop_restarts,
            window=s.crash_loop_window,
        )
        self.state = State.STOPPED
        self.goal = Goal.SERVE
        self.process: Process | None = None
        self.restarts = 0
        self.exitcode: int | None = None
        self.last_exit: str | None = None
        self.detail = ""
        self.last_failure: Fatal | None = None  # the last refusal, until a worker connects again
        self.restart_at: float | None = None
        self.rates = RateMeter()
        self.busy = BusyMeter()
        self.last_words = ""  # what the last process logged and wrote to its descriptors just before it died
        self.counted_before: tuple[int, int, int] = (0, 0, 0)  # received, handled, failed by past processes
        self.output_budget = LineBudget()
        # CPU % and RSS once a sample while a process fills the slot, across its processes.
        self.cpu_history: deque[float] = deque(maxlen=HISTORY_SECONDS)
        self.memory_history: deque[int] = deque(maxlen=HISTORY_SECONDS)
        self._reset_process_facts(0.0)

    def _reset_process_facts(self, now: float) -> None:
        """What describes one process of the slot, forgotten when the next one starts."""
        self.beat: Heartbeat | None = None
        self.fatal: Fatal | None = None
        self.killed_for: str | None = None
        self.with_zygote = False  # its zygote died under it: its exit is not its own death
        self.stop_deadline: float | None = None
        self.spawned_at = self.last_heard = now
        self.cpu: float | None = None
        self.rss: int | None = None
        self.rates.reset()
        self.busy.reset()
        s = self.host.settings
        self.message_limit = s.max_messages + (random.randint(0, s.max_messages_jitter) if s.max_messages else 0)

    def __repr__(self) -> str:
        return f"<Slot {self.key} {self.state} goal={self.goal} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def last_message_age(self) -> float | None:
        """Seconds since the worker last took a message (its clock is the wall clock)."""
        at = self.beat.last_message_at if self.beat is not None else None
        return None if at is None else max(0.0, time.time() - at)

    @property
    def retiring(self) -> bool:
        return self.goal is Goal.RETIRE

    def _set(self, state: SlotState) -> None:
        check_transition(self.key, self.state, state)
        self.state = state

    # --- verbs -----------------------------------------------------------------------------------

    def spawn(self, restarted: bool = False) -> None:
        """Start a process in the slot: to serve, or (leaving the pool) to drain its session."""
        target = State.DRAINING if self.retiring else State.STARTING
        check_transition(self.key, self.state, target)
        now = self.host.now()
        self._reset_process_facts(now)
        self.restart_at = None
        self.process = self.host.launch(self)
        self.detail = "draining" if self.retiring else "starting"
        self._set(target)
        if not self.retiring:
            self.host.session_kept(self)
        if restarted:
            self.restarts += 1
            self.host.event("restarted", f"worker {self.key} restarted ({self._pid_text()})", self.key)
        else:
            self.host.event("spawned", f"worker {self.key} started ({self._pid_text()})", self.key, logging.DEBUG)

    def _pid_text(self) -> str:
        return "forking" if self.pid is None else f"pid {self.pid}"

    def stop(self) -> None:
        """Stop for good: a live process finishes what it holds and keeps its session."""
        if self.process is not None:
            if self.state is not State.STOPPING:
                self._set(State.STOPPING)
            self._terminate()
        elif self.state.is_dead:
            self._set(State.RETIRED if self.retiring else State.EXITED)

    def restart(self) -> None:
        """Restart gracefully (the process finishes what it holds first), or now if dead."""
        if self.process is None:
            self.policy.reset()
            self.spawn(restarted=True)
        elif self.state in (State.STARTING, State.RUNNING):
            self._set(State.RESTARTING)
            self._terminate()

    def retire(self) -> None:
        """Leave the pool without losing what the slot's session holds."""
        if self.retiring:
            return
        self.goal = Goal.RETIRE
        if self.process is None:
            self.spawn()  # connects to the slot's session only to drain and end it
        elif self.state is State.RESTARTING:
            self._set(State.STOPPING)  # already going, keeping its session: no new process
        elif self.state in (State.STARTING, State.RUNNING):
            self._set(State.DRAINING)
            self.process.send(Command.RETIRE)

    def kill(self, reason: str) -> None:
        """SIGKILL, remembering why for the exit's description."""
        if self.process is None or self.killed_for is not None:
            return
        self.killed_for = reason
        kind = "hung" if reason.startswith("hung") else "killed"
        said = f"worker {self.key}: {reason}; killing it"
        if reason == BY_OPERATOR:
            said = f"worker {self.key} killed {reason}"
        self.host.event(kind, said, self.key, logging.WARNING)
        self.process.kill()

    def _terminate(self) -> None:
        assert self.process is not None
        self.stop_deadline = self.host.now() + self.host.settings.graceful_timeout
        self.process.terminate()

    # --- what the worker says --------------------------------------------------------------------

    def on_message(self, message: WorkerMessage) -> None:
        now = self.host.now()
        self.last_heard = now
        if isinstance(message, Heartbeat):
            self.host.log_lines(self, message.logs, message.logs_dropped)
            self.host.counted(self, self.beat, message)
            if message.dead_lettered:
                self.host.dead_lettered(self, message.dead_lettered)
            self.rates.heartbeat(message, now)
            self.busy.heartbeat(message)
            self.beat = message
            self.detail = message.detail
            if message.connected:
                self.last_failure = None
            if message.subscribed and self.state is State.STARTING:
                self._set(State.RUNNING)
                self.host.event("running", f"worker {self.key} subscribed", self.key, logging.DEBUG)
        elif isinstance(message, Logs):
            self.host.log_lines(self, message.logs, message.logs_dropped)
        elif isinstance(message, Fatal):
            self.fatal = self.last_failure = message
            self.detail = message.reason
        elif isinstance(message, Hello):
            pass  # the pid is known from the launch; hearing from it is what counts

    # --- its exit --------------------------------------------------------------------------------

    def reaped(
        self, exitcode: int, last_output: str = "", in_hand: list[InHand] | None = None, last_logged: str = ""
    ) -> None:
        """The process has exited with ``exitcode`` and is reaped, holding ``in_hand`` (the
        messages its handlers had started on); its last words (already in the log) are
        ``last_logged``, its last lines of log and output in order, or failing that
        ``last_output``, the end of what it wrote to its descriptors: decide what comes next."""
        now = self.host.now()
        uptime = now - self.spawned_at
        pid = self.pid
        self.process = None
        self.cpu = self.rss = None
        self.rates.reset()
        self.busy.reset()
        self._carry_counts()
        self.exitcode = exitcode
        self.last_words = last_logged or last_output
        described = describe_exit(exitcode) or "?"
        cause = self.killed_for or (WITH_ZYGOTE if self.with_zygote else None) or (
            self.fatal.reason if self.fatal else None)
        if cause is None and self.last_words:
            cause = self.last_words.splitlines()[-1][:300]
        if self.killed_for is not None and exitcode == -signal.SIGKILL:
            # Our own SIGKILL: say so, rather than let "likely OOM" send the operator astray.
            self.last_exit = f"killed: {self.killed_for}"
        else:
            self.last_exit = f"{described}: {cause}" if cause and exitcode != 0 else described
        if self.state is State.DRAINING and exitcode == 0:
            self._set(State.RETIRED)
            self.host.session_ended(self)
            self.host.event("retired", f"worker {self.key} drained and retired", self.key)
        elif self.state is State.STOPPING:
            self._stopped()
        elif self.state is State.RESTARTING and not self.host.closing:
            self.host.event("exited", f"worker {self.key} (pid {pid}) exited {self.last_exit} to be restarted",
                            self.key)
            self.spawn(restarted=True)  # the new process takes over at once
        elif self.state is State.RESTARTING:
            self._set(State.EXITED)
            self.host.event("stopped", f"worker {self.key} stopped ({self.last_exit})", self.key)
        else:
            self._died(now, uptime, in_hand or [])

    def _carry_counts(self) -> None:
        """A process's counts stay the slot's: its rows add up across restarts."""
        beat = self.beat
        if beat is not None:
            received, handled, failed = self.counted_before
            self.counted_before = (received + beat.received, handled + beat.handled, failed + beat.failed)
            self.beat = None  # counted: never twice

    def counts(self) -> tuple[int, int, int]:
        """(received, handled, failed) by every process the slot has had."""
        received, handled, failed = self.counted_before
        beat = self.beat
        if beat is None:
            return received, handled, failed
        return received + beat.received, handled + beat.handled, failed + beat.failed

    def _stopped(self) -> None:
        if self.retiring:
            self._set(State.RETIRED)
            self.host.event("retired", f"worker {self.key} retired ({self.last_exit}), session kept", self.key)
        else:
            self._set(State.EXITED)
            self.host.event("stopped", f"worker {self.key} stopped ({self.last_exit})", self.key)

    def _died(self, now: float, uptime: float, in_hand: list[InHand]) -> None:
        if self.killed_for == BY_OPERATOR or self.with_zygote:
            # A restart the hard way, not a death of the code's: no backoff, not counted towards
            # crash-loop, and the messages in hand come back from the session, not as failures.
            self._set(State.BACKOFF)
            self.restart_at = now
            self.detail = "restarting"
            why = "went down with its zygote" if self.with_zygote else "was killed by the operator"
            self.host.event("exited", f"worker {self.key} {why}; restarting it now", self.key)
            return
        if in_hand and self.host.died_holding(self, in_hand):
            # The message that kept killing it is set aside now: not a reason to give up on it.
            self.policy.reset()
        delay = self.policy.on_death(now, uptime)
        if delay is None:
            self._set(State.CRASH_LOOP)
            deaths = f"died {len(self.policy.deaths)} times within {self.policy.window:g} s"
            self.detail = f"{deaths}; last exit {self.last_exit}. Restart it by hand (restart_dead_workers(), r)."
            self.host.event(
                "crash-loop",
                f"Worker {self.key} {deaths} and is no longer restarted (last exit {self.last_exit}). "
                "Fix the cause, then restart it by hand.",
                self.key,
                logging.ERROR,
            )
            self.host.left_for_good(self)
            return
        self._set(State.BACKOFF)
        self.restart_at = now + delay
        self.detail = f"restarting in {delay:g} s"
        self.host.event(
            "exited",
            f"worker {self.key} exited with {self.last_exit}; restarting in {delay:g} s",
            self.key,
            logging.WARNING,
        )

    # --- the timed changes -----------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Backoff over, hung, past the stop deadline, due for recycling: act on it."""
        if self.state is State.BACKOFF:
            if self.restart_at is not None and self.restart_at <= now and not self.host.closing:
                self.spawn(restarted=True)
            return
        if self.process is None:
            return
        if self.stop_deadline is not None:
            if now >= self.stop_deadline:
                self.stop_deadline = None
                self.kill(f"still busy after the {self.host.settings.graceful_timeout:g} s graceful timeout")
            return
        self._check_hung(now)

    def _check_hung(self, now: float) -> None:
        limit = self.host.settings.hang_timeout
        silent = now - self.last_heard
        # Until its first heartbeat a worker is still importing its routes, which on a loaded
        # machine may take longer than a short hang timeout allows. After that, silence counts
        # as a hang only once a few heartbeats in a row are missing.
        allowed = max(limit, SILENCE_MIN) if self.beat is not None else max(limit, STARTUP_GRACE)
        if silent > allowed:
            self.kill(f"hung, no heartbeat for {silent:.0f} s")
            return
        oldest = self.beat.oldest_handler_age if self.beat is not None else None
        if oldest is not None and oldest > limit:
            self.kill(f"hung, a handler has run for {oldest:.0f} s")

    def sample(self, now: float) -> None:
        """CPU and memory now; recycle a worker past its memory or message limit."""
        self.rates.silent(now)
        if self.process is None:
            return
        cpu, rss = self.process.sample()
        if cpu is not None:
            self.cpu = cpu
            self.cpu_history.append(cpu)
        if rss is None:
            return
        self.rss = rss
        self.memory_history.append(rss)
        if self.state is not State.RUNNING:
            return
        s = self.host.settings
        done = self.beat.done if self.beat is not None else 0
        if s.max_memory_mb and rss > s.max_memory_mb * 1024 * 1024:
            self._recycle(f"RSS {rss / 1048576:.0f} MB above WORKER_MAX_MEMORY_MB={s.max_memory_mb}")
        elif self.message_limit and done >= self.message_limit:
            self._recycle(f"{done} messages handled (WORKER_MAX_MESSAGES={s.max_messages})")

    def _recycle(self, why: str) -> None:
        self.host.event("recycled", f"worker {self.key} recycled: {why}", self.key)
        self.restart()
