"""FleetView: a screen drawn from the statuses of the fleet, kept fresh.

What the observer knows is read in a thread worker (its lock is held while its network thread
checks a status, which for a large one takes a while) and shown back on the event loop: once when
the screen opens, then with every refresh of the dashboard (:meth:`refresh_fleet`, awaited by the
app's refresh loop, like a detail screen's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from textual.screen import Screen
from textual.worker import WorkerCancelled, WorkerFailed

from ..fleet_port import FleetPort

if TYPE_CHECKING:
    from ..app import DashboardApp

Seen = TypeVar("Seen")


class FleetView(Screen[None], Generic[Seen]):
    """Subclasses say what to read (:meth:`read`, in a thread) and how to show it (:meth:`show`)."""

    CSS_PATH = "fleet.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.problem: str | None = None  # why what shows may be out of date

    # --- what subclasses define -----------------------------------------------------------------

    def read(self, fleet: FleetPort) -> Seen:
        raise NotImplementedError

    def show(self, seen: Seen) -> None:
        raise NotImplementedError

    def show_problem(self) -> None:
        """Say :attr:`problem` (what shows stays)."""
        raise NotImplementedError

    # --- the plumbing ---------------------------------------------------------------------------

    @property
    def dashboard(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def on_mount(self) -> None:
        self.run_worker(self.refresh_fleet(), group="fleet-open")

    async def refresh_fleet(self) -> None:
        """Read the fleet again and show it (or why it cannot be read)."""
        fleet = self.dashboard.fleet
        if fleet is None:
            return
        worker = self.run_worker(lambda: self.read(fleet), group="fleet-read", thread=True, exclusive=True,
                                 exit_on_error=False)
        try:
            seen = await worker.wait()
        except WorkerCancelled:
            return  # a newer read took over, or the screen closed
        except WorkerFailed as failure:
            self.problem = f"cannot read the fleet: {failure.error}"
            if self.is_attached:
                self.show_problem()
            return
        self.problem = None
        if self.is_attached:
            self.show(seen)
