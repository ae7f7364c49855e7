"""The --no-ui runner: the same manager, with event and status lines instead of a dashboard.

Signals follow gunicorn's conventions and are queued, then handled by the main loop (never inside
the handler): SIGTERM and SIGINT stop gracefully; SIGTTIN / SIGTTOU add / remove one worker in
every shared pool; SIGHUP reloads the router modules and replaces the workers pool by pool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import IO, Any

from .router_registry import RouterLoadError
from .snapshot import EngineEvent, ManagerSnapshot, SlotState
from .text import printable
from .worker_manager import WorkerManager

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP)
EVENT_POLL = 0.25


class HeadlessRunner:
    """Runs a manager until SIGTERM/SIGINT, printing what happens to ``out``."""

    def __init__(
        self,
        manager: WorkerManager,
        *,
        status_interval: float = 5.0,
        log_format: str = "text",
        out: IO[str] | None = None,
        level: int = logging.INFO,
    ) -> None:
        self.manager = manager
        self.status_interval = status_interval
        self.json = log_format == "json"
        self.out = out or sys.stdout
        self.level = level
        self._signals: deque[int] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._last_seq = 0
        self._last_broker_state: str | None = None

    # --- output ---------------------------------------------------------------------------------

    def say(self, message: str, level: int = logging.INFO, kind: str = "runner", **fields: Any) -> None:
        if level < self.level:
            return
        now = datetime.now(UTC)
        if self.json:
            record = {
                "time": now.isoformat(timespec="milliseconds"),
                "level": logging.getLevelName(level).lower(),
                "kind": kind,
                "message": message,
                **fields,
            }
            line = json.dumps(record, default=str)
        else:
            # A terminal would act on an escape sequence in a worker's text (JSON escapes its own).
            slot = f" [{printable(fields['slot'])}]" if fields.get("slot") else ""
            line = f"{now:%Y-%m-%dT%H:%M:%SZ} {logging.getLevelName(level):<7}{slot} {printable(message)}"
        print(line, file=self.out, flush=True)

    def _print_events(self) -> None:
        for event in self.manager.events_since(self._last_seq):
            self._last_seq = event.seq
            self._print_event(event)

    def _print_event(self, event: EngineEvent) -> None:
        if event.exception is None or not self.json:
            self.say(event.message, event.level, event.kind, slot=event.slot)
            return
        # A failure: the values a log pipeline groups and searches by, and the first line as the message.
        self.say(event.message.split("\n", 1)[0], event.level, event.kind, slot=event.slot,
                 exception=event.exception, topic=event.topic, traceback=event.traceback)

    def _print_status(self, snap: ManagerSnapshot, stopped: bool = False) -> None:
        """The periodic status line: a warning while the broker is not connected or fewer workers
        serve than desired; the last one, once everything stopped as asked, is information."""
        broker = snap.broker
        serving, live, desired = snap.serving_workers, snap.live_workers, snap.desired_workers
        text = (
            f"status: {serving}/{desired} workers serving" + (f" ({live} live)" if live != serving else "") + ", "
            f"{snap.messages_per_second:.1f} msg/s, {snap.handled} handled, {snap.failed} errors, "
            f"broker {broker.address} {broker.state}" + (f" ({broker.detail})" if broker.detail else "")
        )
        self.say(
            text,
            logging.INFO if stopped or _as_expected(snap) else logging.WARNING,
            "status",
            serving=serving,
            live=live,
            desired=desired,
            messages_per_second=round(snap.messages_per_second, 2),
            handled=snap.handled,
            failed=snap.failed,
            broker={"address": broker.address, "state": broker.state, "detail": broker.detail, "kind": broker.kind},
        )

    # --- signals --------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def _install_signals(self) -> dict[int, Any]:
        return {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}

    def _handle_signal(self, signum: int) -> bool:
        """Act on one queued signal; True when it asks us to stop."""
        name = signal.Signals(signum).name
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.say(f"{name}: stopping workers gracefully")
            return True
        if signum in (signal.SIGTTIN, signal.SIGTTOU):
            step = 1 if signum == signal.SIGTTIN else -1
            for route in self.manager.snapshot().routes:
                if route.shared and route.desired_workers + step >= 1:
                    self.manager.scale_route(route.topic, route.desired_workers + step)
            self.say(f"{name}: {'added' if step > 0 else 'removed'} one worker in every shared pool")
        elif signum == signal.SIGHUP:
            self._reload()
        return False

    def _reload(self) -> None:
        self.say("SIGHUP: reloading router modules")
        try:
            self.manager.reload()
        except (RouterLoadError, ValueError) as exc:  # before anything changed: a broken module, no package
            self.say(f"reload failed, the running workers keep serving: {exc}", logging.ERROR)
        except Exception as exc:
            self.say(f"reload stopped: {exc}", logging.ERROR)

    # --- the loop -------------------------------------------------------------------------------

    def run(self, num_workers: int | None = None, start: bool = True) -> int:
        """Start the workers (unless ``start`` is False: already started) and serve until
        SIGTERM/SIGINT. Returns the process exit code."""
        previous = self._install_signals()
        try:
            if start:
                self.manager.start_workers(num_workers)
            next_status = time.monotonic()
            while True:
                ready, _, _ = select.select([self._wake_r], [], [], EVENT_POLL)
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                stop = False
                while self._signals and not stop:
                    stop = self._handle_signal(self._signals.popleft())
                self._print_events()
                if stop:
                    break
                snap = self.manager.snapshot()
                now = time.monotonic()
                if now >= next_status or snap.broker.state != self._last_broker_state:
                    self._last_broker_state = snap.broker.state
                    self._print_status(snap)
                    next_status = now + self.status_interval
            self.manager.stop_workers()
            self._print_events()
            self._print_status(self.manager.snapshot(), stopped=True)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)


def _as_expected(snap: ManagerSnapshot) -> bool:
    """Every worker serves, or those that do not are still starting on a broker not known to
    fail: a start is information, a shortfall past it a warning."""
    if snap.broker.state not in ("connected", "connecting"):
        return False
    leaving = (SlotState.DRAINING, SlotState.RETIRED)  # slots on their way out of a pool
    short = [w for w in snap.workers if w.state not in leaving and not (w.state is SlotState.RUNNING and w.connected)]
    return all(w.state is SlotState.STARTING for w in short)
