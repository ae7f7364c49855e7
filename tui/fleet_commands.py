"""A signed command to another manager of the fleet, and its reply as a toast.

The command goes out and its reply is awaited in a thread worker (publishing waits for the
observer's lock; the reply takes a round trip over the broker, and as long as the verb takes on
the other side), so the event loop never waits. A reply, a refusal, silence past the timeout and a
side without a key each end in one toast; every text in it is the other manager's, made printable.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.worker import WorkerCancelled, WorkerFailed

from engine.fleet.control import reply_timeout
from engine.fleet.observer import RemoteControlOff, Reply
from engine.text import printable

from .fleet_port import FleetPort

if TYPE_CHECKING:
    from .app import DashboardApp

TITLE = "Fleet"
REMOTE_CONTROL_OFF = "remote control is off: set FLEET_CONTROL_KEY to steer other managers"
NO_FLEET = "The fleet is not available: this dashboard has no connection to the status topics."

Answered = Callable[[], None]  # told on the event loop when a command is over, whatever its outcome


@dataclass(frozen=True)
class FleetCommand:
    """One verb for one manager, and how a toast names it (``scale sensors/+/temperature to 3``)."""

    manager: str
    verb: str
    args: dict[str, Any]
    what: str

    @property
    def timeout(self) -> float:
        return reply_timeout(self.verb)  # as long as `routemq-dash ctl` waits


def send(app: DashboardApp, command: FleetCommand, on_reply: Answered | None = None) -> bool:
    """Send ``command`` and toast its outcome (``on_reply`` is told then); False, after a toast,
    when there is no fleet or no key to sign with: nothing was sent."""
    fleet = app.fleet
    if fleet is None:
        app.notify(NO_FLEET, title=TITLE, severity="warning", markup=False)
        return False
    if not fleet.can_sign:
        app.notify(REMOTE_CONTROL_OFF, title=TITLE, severity="warning", markup=False)
        return False
    app.run_worker(_carry(app, fleet, command, on_reply), group="fleet-commands", exit_on_error=False)
    return True


async def _carry(app: DashboardApp, fleet: FleetPort, command: FleetCommand, on_reply: Answered | None) -> None:
    waiting = app.run_worker(lambda: _send_and_wait(fleet, command), group="fleet-command", thread=True,
                             exit_on_error=False, description=f"{command.manager}: {command.what}")
    try:
        reply = await waiting.wait()
    except WorkerCancelled:
        return  # the app is leaving
    except WorkerFailed as failure:
        _report_failure(app, command, failure.error)
    else:
        _report(app, command, reply)
    finally:
        if on_reply is not None:
            on_reply()


def _send_and_wait(fleet: FleetPort, command: FleetCommand) -> Reply:
    reply = fleet.send(command.manager, command.verb, command.args)
    try:
        return reply.result(timeout=command.timeout)
    except TimeoutError:
        reply.cancel()  # the observer forgets it
        raise


def _report(app: DashboardApp, command: FleetCommand, reply: Reply) -> None:
    manager, what = printable(command.manager), printable(command.what)
    if reply.ok:
        app.notify(f"{manager}: {what} ok", title=TITLE, markup=False)
    else:
        error = printable(reply.error or "refused").replace("\n", " ")
        app.notify(f"{manager}: {what} refused: {error}", title=TITLE, severity="error", markup=False)


def _report_failure(app: DashboardApp, command: FleetCommand, error: BaseException) -> None:
    manager = printable(command.manager)
    if isinstance(error, CancelledError):
        return  # the observer closed: the app is leaving
    if isinstance(error, RemoteControlOff):
        app.notify(REMOTE_CONTROL_OFF, title=TITLE, severity="warning", markup=False)
    elif isinstance(error, TimeoutError):
        app.notify(f"no reply from {manager} within {command.timeout:g} s ({printable(command.what)})",
                   title=TITLE, severity="error", markup=False)
    else:
        app.notify(f"{manager}: {printable(command.what)} not sent: {error}", title=TITLE, severity="error",
                   markup=False)
