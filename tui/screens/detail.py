"""DetailScreen: a screen about one thing the engine knows (a worker slot, a route), kept fresh.

A detail view costs the engine more than a snapshot and may wait for the supervisor thread, so it
is asked for in a thread worker and rendered back on the event loop: once when the screen opens
(after showing at once what the last snapshot says), then with every refresh of the dashboard
(:meth:`refresh_detail`, awaited by the app's refresh, so a slow engine stretches the period
instead of piling requests up). Esc goes back to where the operator was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, cast

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import WorkerCancelled, WorkerFailed

from engine.snapshot import ManagerSnapshot

from ..engine_port import EnginePort

if TYPE_CHECKING:
    from ..app import DashboardApp

Detail = TypeVar("Detail")
WIDE = 120  # columns from which side-by-side panels get room of their own


class DetailTitle(Static):
    """The screen's one-line title: what it is about, and why it may be out of date."""

    DEFAULT_CSS = """
    DetailTitle {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
        text-style: bold;
    }
    """

    _shown: tuple[str, str, str, str | None] | None = None

    def show(self, what: str, name: str, facts: str, problem: str | None) -> None:
        if (what, name, facts, problem) == self._shown:
            return  # the same title: no repaint (the screens show it again at every refresh)
        self._shown = (what, name, facts, problem)
        text = Text(f"{what} ", style="not bold", no_wrap=True, overflow="ellipsis", end="")
        text.append(name)
        if facts:
            text.append(f"  {facts}", style="not bold")
        if problem:
            text.append(f"  ({problem})", style="not bold italic")
        self.update(text, layout=False)  # one line high whatever it says: no layout pass


class DetailScreen(Screen[None], Generic[Detail]):
    """Subclasses say how to ask the engine (:meth:`fetch`) and how to show the answer (:meth:`show`)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="detail.back")]
    CSS_PATH = "detail.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]  # Screen declares it ClassVar[...] | None
    WHAT: ClassVar[str] = ""  # "Worker", "Route": the title's first word

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.detail: Detail | None = None
        self.problem: str | None = None  # why what shows may be out of date
        self.title_bar = DetailTitle(id="detail-title")

    # --- what subclasses define -----------------------------------------------------------------

    def fetch(self, manager: EnginePort) -> Detail | None:
        """Ask the engine (in a thread); None when it no longer knows the key."""
        raise NotImplementedError

    def from_snapshot(self, snapshot: ManagerSnapshot) -> Detail | None:
        """What the last snapshot says, shown until the engine answers."""
        raise NotImplementedError

    def show(self, detail: Detail) -> None:
        raise NotImplementedError

    def facts(self, detail: Detail) -> str:
        """A few words after the name in the title."""
        return ""

    # --- the plumbing ---------------------------------------------------------------------------

    @property
    def dashboard(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def on_mount(self) -> None:
        snapshot = self.dashboard.snapshot
        first = self.from_snapshot(snapshot) if snapshot is not None else None
        if first is not None:
            self._show(first)
        else:
            self._show_title()
        self.run_worker(self.refresh_detail(), group="detail-open")

    async def refresh_detail(self) -> None:
        """Ask the engine again and show its answer (or why there is none)."""
        manager = self.dashboard.manager
        worker = self.run_worker(lambda: self.fetch(manager), group="detail", thread=True, exclusive=True,
                                 exit_on_error=False)
        try:
            detail = await worker.wait()
        except WorkerCancelled:
            return  # a newer request took over, or the screen closed
        except WorkerFailed as failure:
            detail, self.problem = None, f"cannot read the engine: {failure.error}"
        else:
            self.problem = None if detail is not None else "gone: the engine no longer has it"
        if not self.is_attached:
            return
        if detail is not None:
            self._show(detail)
        else:
            self._show_title()  # what shows stays, said to be out of date

    def _show(self, detail: Detail) -> None:
        self.detail = detail
        self.show(detail)
        self._show_title()

    def _show_title(self) -> None:
        facts = self.facts(self.detail) if self.detail is not None else ""
        self.title_bar.show(self.WHAT, self.key, facts, self.problem)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # The app remembers the dashboard table used last (what +, - act on); a table on this
        # screen must not take that place once the screen is gone.
        event.stop()

    def action_back(self) -> None:
        self.dismiss(None)
