"""The operator's verbs on one worker, as the detail screens use them: restart it, kill it.

Both go through the app's engine calls (a thread worker each, shown in the header while they
run, errors reported), so they behave like every other key. Killing asks first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.snapshot import WorkerInfo

from .screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from .app import DashboardApp


def restart_worker(app: DashboardApp, worker: WorkerInfo) -> None:
    """Restart it gracefully: it finishes what it holds, and a new process takes its place."""
    slot = worker.slot
    app.calls.run(f"worker {slot}", f"restarting {slot}", lambda: app.manager.restart_worker(slot))


def kill_worker(app: DashboardApp, worker: WorkerInfo) -> None:
    """SIGKILL it after the operator confirms (y / n); it restarts as after any death."""
    slot = worker.slot
    if worker.pid is None:
        app.notify(f"{slot} has no process to kill ({worker.state}).", severity="warning", markup=False)
        return
    message = (
        f"SIGKILL pid {worker.pid} now, without letting it finish. The messages it holds come back "
        "from its session, and the slot restarts as after any death."
    )

    def confirmed(yes: bool | None) -> None:
        if yes:
            app.calls.run(f"worker {slot}", f"killing {slot}", lambda: app.manager.kill_worker(slot))

    app.push_screen(ConfirmScreen(f"Kill worker {slot}?", message, "Kill"), confirmed)
