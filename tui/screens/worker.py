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

MEMORY_MIN_SPAN = 1024 * 1024  # bytes: the memory bars' top is at least this above their floor


def _memory_label(now: int | None, history: tuple[int, ...]) -> str:
    """``memory 48.2 MiB, 45.0-48.2 MiB``: now, then the range the bars show (smallest to largest)."""
    label = f"memory {fmt.size(now)}"
    if not history:
        return label
    low, high = fmt.size(min(history)), fmt.size(max(history))
    low_number, _, low_unit = low.partition(" ")
    if low_unit == high.partition(" ")[2]:  # "45.0-48.2 MiB" rather than "45.0 MiB-48.2 MiB"
        low = low_number
    return f"{label}, {low}-{high}"


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
        # From the smallest sample: from zero, a flat 45-48 MiB would be one solid block.
        self.memory = SparkBars(from_minimum=True, min_span=MEMORY_MIN_SPAN, id="worker-memory")
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
        self.cpu.show(f"cpu {fmt.percent(info.cpu_percent)} %, peak {fmt.percent(max(cpu, default=None))} %"
                      if cpu else f"cpu {fmt.percent(info.cpu_percent)} %", cpu)
        self.memory.show(_memory_label(info.rss_bytes, memory), [float(m) for m in memory])
        samples = max(len(cpu), len(memory))
        self.resources.border_title = f"Resources, last {_span(samples)}" if samples else "Resources"
        self.held.show(detail.held)
        self.log_pane.show(detail.logs)
        # Entries, not lines: one entry (a failure with its traceback) can take many lines.
        entries = len(detail.logs)
        self.log_pane.border_subtitle = (f"{fmt.count(entries)} {'entry' if entries == 1 else 'entries'} kept"
                                         if entries else "nothing logged yet")
        self.lifecycle.show(detail.lifecycle)

    # --- acting on it ---------------------------------------------------------------------------

    def action_restart_worker(self) -> None:
        if self.detail is not None:
            worker_actions.restart_worker(self.dashboard, self.detail.info)

    def action_kill_worker(self) -> None:
        if self.detail is not None:
            worker_actions.kill_worker(self.dashboard, self.detail.info)
