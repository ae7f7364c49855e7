"""EngineCalls: every engine call that may block, run in a thread worker and followed to its end.

Any engine method but the cheap reads can take seconds (a graceful stop waits for in-flight
messages), and the event loop must never wait for the engine: each call runs in a thread
worker of the app. The calls reach the engine one at a time, so they never overlap. While one
runs, the header says so; when it fails, the operator gets a toast and a line in the events
panel. Once quitting, only the quit call still reaches the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.worker import Worker, WorkerState, get_current_worker

if TYPE_CHECKING:
    from .app import DashboardApp

QUIT_GROUP = "quit"  # the group of the one call still run once quitting: stopping the workers


class _Skipped:
    """What an engine call returns when it never ran (superseded or quitting)."""


SKIPPED = _Skipped()


@dataclass
class PendingCall:
    """An engine call in flight: what the header calls it, and what to do when it succeeds."""

    description: str
    on_success: Callable[[Any], None] | None = None
    scale: tuple[str, int] | None = None  # (route, target) of a scale call


class EngineCalls:
    """The app's engine calls in flight, one thread worker each.

    ``on_quit_finished`` is told when the quit call ends, whatever its outcome: the app exits
    then, with the status the call earned.
    """

    def __init__(self, app: DashboardApp, on_quit_finished: Callable[[Worker[Any]], None]) -> None:
        self.app = app
        self._on_quit_finished = on_quit_finished
        self._lock = threading.Lock()  # one engine call at a time
        self._pending: dict[Worker[Any], PendingCall] = {}

    def run(
        self,
        group: str,
        description: str,
        call: Callable[[], Any],
        *,
        on_success: Callable[[Any], None] | None = None,
        scale: tuple[str, int] | None = None,
    ) -> Worker[Any]:
        """Run a slow engine call in a thread worker; ``on_success`` gets its result on the event loop.

        Workers of one group are exclusive: a newer request (another `+`, `a` after `s`)
        supersedes an older one that has not reached the engine yet. ``scale`` names the route
        and size a scale call asks for, so that the routes table shows it until it is applied.
        """
        app = self.app

        def run() -> Any:
            with self._lock:
                if get_current_worker().is_cancelled or (app.quitting and group != QUIT_GROUP):
                    return SKIPPED
                return call()

        worker = app.run_worker(
            run, name=description, group=group, description=description,
            exclusive=True, thread=True, exit_on_error=False,
        )
        self._pending[worker] = PendingCall(description, on_success, scale)
        app.show_header()
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Follow one of our calls to its end (the app hands over every worker's state change)."""
        worker = event.worker
        call = self._pending.get(worker)
        if call is None or not worker.is_finished:
            return
        del self._pending[worker]
        if worker.state is WorkerState.SUCCESS and worker.result is not SKIPPED and call.on_success:
            call.on_success(worker.result)
        elif worker.state is WorkerState.ERROR:
            self._report_failure(call, worker.error)
        if worker.group == QUIT_GROUP:
            self._on_quit_finished(worker)
            return
        self.app.show_header()

    def _report_failure(self, call: PendingCall, error: BaseException | None) -> None:
        app = self.app
        app.notify(f"{call.description}: {error}", title="Engine call failed", severity="error", markup=False)
        app.log_panel.add_line(time.time(), "error", None, f"{call.description} failed: {error!r}", logging.ERROR)

    @property
    def pending(self) -> list[str]:
        """Descriptions of the engine calls in flight (shown in the header)."""
        return [call.description for call in self._pending.values()]

    def scaling(self) -> set[str]:
        """The routes with a scale call in flight."""
        return {call.scale[0] for call in self._pending.values() if call.scale}
