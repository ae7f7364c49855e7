"""WorkerScreen: one worker slot: who it is, its log, its lifecycle, CPU and memory, what it holds.

Opened with Enter on a worker's row (of the dashboard, or of a route's pool); Esc goes back. R
restarts the worker gracefully, K kills it after asking; the dashboard's other keys still work.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from engine.details import LIFECYCLE_KEPT, LOG_LINES_KEPT, WorkerDetail
from engine.snapshot import ManagerSnapshot

from .. import format as fmt
from .. import worker_actions
from ..engine_port import EnginePort
from ..widgets.event_pane import EventPane
from ..widgets.held_messages import HeldMessages
from ..widgets.spark_bars import SparkBars
from ..widgets.worker_summary import WorkerSummary
from .detail import DetailScreen


def _span(samples: int) -> str:
    """How long a history of one sample a second covers."""
    return f"{samples / 60:.0f} min" if samples >= 90 else f"{samples} s"


class WorkerScreen(DetailScreen[WorkerDetail]):
    """The slot's key is its name (``sensors/+/temperature#0``, ``main``)."""

    WHAT = "Worker"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "restart_worker", "Restart it", id="worker.restart"),
        Binding("K", "kill_worker", "Kill it", id="worker.kill"),
    ]
    AUTO_FOCUS = "#worker-log"

    def compose(self) -> ComposeResult:
        self.summary = WorkerSummary(id="worker-summary")
        self.cpu = SparkBars(id="worker-cpu")
        self.memory = SparkBars(id="worker-memory")
        self.held = HeldMessages(id="worker-held")
        self.resources = Vertical(id="worker-resources")
        self.log_pane = EventPane(self.key, max_lines=LOG_LINES_KEPT, id="worker-log")
        # Few lines, each a cause worth reading whole: wrapped.
        self.lifecycle = EventPane(self.key, max_lines=LIFECYCLE_KEPT, wrap=True, id="worker-lifecycle")
        yield self.title_bar
        with Horizontal(id="worker-top"):
            yield self.summary
            with self.resources:
                yield self.cpu
                yield self.memory
                yield self.held
        with Horizontal(id="worker-events"):
            yield self.log_pane
            yield self.lifecycle
        yield Footer()

    def on_mount(self) -> None:
        self.summary.border_title = "Identity"
        self.resources.border_title = "Resources"
        self.log_pane.border_title = "Log"
        self.lifecycle.border_title = "Lifecycle"
        super().on_mount()

    def fetch(self, manager: EnginePort) -> WorkerDetail | None:
        return manager.worker_detail(self.key)

    def from_snapshot(self, snapshot: ManagerSnapshot) -> WorkerDetail | None:
        info = next((w for w in snapshot.workers if w.slot == self.key), None)
        return None if info is None else WorkerDetail(info, heartbeat_age=info.heartbeat_age)

    def show(self, detail: WorkerDetail) -> None:
        info = detail.info
        self.summary.show(detail)
        cpu, memory = detail.cpu_history, detail.memory_history
        self.cpu.show(f"cpu {fmt.percent(info.cpu_percent)} %, peak {fmt.percent(max(cpu, default=None))}", cpu)
        self.memory.show(f"memory {fmt.size(info.rss_bytes)}, peak {fmt.size(max(memory, default=None))}",
                         [float(m) for m in memory])
        samples = max(len(cpu), len(memory))
        self.resources.border_title = f"Resources, last {_span(samples)}" if samples else "Resources"
        self.held.show(detail.held)
        self.log_pane.show(detail.logs)
        self.log_pane.border_subtitle = f"{len(detail.logs)} lines kept" if detail.logs else "no lines yet"
        self.lifecycle.show(detail.lifecycle)

    # --- acting on it ---------------------------------------------------------------------------

    def action_restart_worker(self) -> None:
        if self.detail is not None:
            worker_actions.restart_worker(self.dashboard, self.detail.info)

    def action_kill_worker(self) -> None:
        if self.detail is not None:
            worker_actions.kill_worker(self.dashboard, self.detail.info)
