"""WorkersTable: one row per worker slot (row key = slot), dead and crash-looping slots in colour."""

from __future__ import annotations

from typing import ClassVar

from engine.snapshot import SlotState, WorkerInfo

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable
from .stable_order import ages, linear, relative

# How a slot's state shows: a component class for the whole row, and one for the state cell.
_ROW_CLASS = {
    SlotState.BACKOFF: "workers-table--dead",
    SlotState.CRASH_LOOP: "workers-table--crash-loop",
    SlotState.STARTING: "workers-table--changing",
    SlotState.STOPPING: "workers-table--changing",
    SlotState.RESTARTING: "workers-table--changing",
    SlotState.DRAINING: "workers-table--changing",
    SlotState.EXITED: "workers-table--idle",
    SlotState.STOPPED: "workers-table--idle",
    SlotState.RETIRED: "workers-table--idle",
}
_STATE_CLASS = {
    SlotState.RUNNING: "workers-table--running-state",
    SlotState.CRASH_LOOP: "workers-table--crash-loop-state",
}
DISCONNECTED = "disconnected"  # the state column of a running worker cut off from the broker


STALE_BEAT = 3.0  # seconds without a heartbeat (one a second) before the beat shows in the warning colour


def _optional_int(value: int | None) -> str:
    return fmt.MISSING if value is None else str(value)


def state_text(worker: WorkerInfo) -> str:
    """The slot's state, except that a running worker not connected to the broker reads
    ``disconnected``: its process lives (and reconnects) but serves nothing, and at 80 columns
    the detail column that says why is not shown. A dead broker must not look green."""
    if worker.state is SlotState.RUNNING and not worker.connected:
        return DISCONNECTED
    return str(worker.state)


def _state_class(worker: WorkerInfo) -> str | None:
    if worker.state is SlotState.RUNNING and not worker.connected:
        return "workers-table--disconnected-state"
    return _STATE_CLASS.get(worker.state)


def _beat_class(worker: WorkerInfo) -> str | None:
    age = worker.heartbeat_age
    return "workers-table--stale-beat" if age is not None and age > STALE_BEAT else None


def _exit_class(worker: WorkerInfo) -> str | None:
    # A slot running again after a death is healthy: its last exit is history, not news.
    return "workers-table--past-exit" if worker.state is SlotState.RUNNING and worker.last_exit else None


# Columns of priority 0 always show (all of them fit 80 columns); the others appear in the order
# of their priority as the terminal widens. Slot and route name the row: they stay in place when
# the table scrolls sideways, and the route is shortened in the middle, never so far that two
# rows read the same.
COLUMNS: tuple[ColumnSpec[WorkerInfo], ...] = (
    # The slot is (route, index): the index here, the route next to it.
    ColumnSpec("slot", "slot", lambda w: "main" if w.is_main else f"#{w.index}", frozen=True,
               help="The slot's place in its route's pool (#0, #1, …); main serves every non-shared route."),
    ColumnSpec("route", "route", lambda w: w.route, frozen=True, min_width=12, preferred_width=28, elide="middle",
               help="The route whose pool the slot belongs to (shortened in the middle when the screen is narrow)."),
    ColumnSpec("pid", "pid", lambda w: _optional_int(w.pid), lambda w: w.pid, "right",
               help=f"The worker process's id; {fmt.MISSING} while no process fills the slot."),
    ColumnSpec("state", "state", state_text, style=_state_class,
               help="starting, running, disconnected (running but cut off from the broker: it reconnects by "
                    "itself and serves nothing meanwhile), stopping, restarting, draining, backoff (dead, "
                    "restarts by itself), crash-loop (waits for you: r or R), exited, stopped, retired."),
    ColumnSpec("cpu", "cpu %", lambda w: fmt.percent(w.cpu_percent), lambda w: w.cpu_percent, "right",
               bucket=linear(5.0), help="CPU the worker process uses, in % of one core."),
    ColumnSpec("busy", "busy %", lambda w: fmt.share(w.busy), lambda w: w.busy, "right", priority=1,
               bucket=linear(0.05),
               help="Share of its last seconds the worker had messages in hand: what the autoscaler reads."),
    ColumnSpec("memory", "memory", lambda w: fmt.size(w.rss_bytes), lambda w: w.rss_bytes, "right",
               bucket=relative(1.1), help="Resident memory (RSS) of the worker process."),
    ColumnSpec("handled", "handled", lambda w: fmt.count(w.handled), lambda w: w.handled, "right", priority=6,
               help="Messages its handlers finished, across the slot's restarts."),
    ColumnSpec("failed", "failed", lambda w: fmt.count(w.failed), lambda w: w.failed, "right", priority=3,
               help="Messages whose handler raised, or that were in hand when the worker died."),
    ColumnSpec("rate", "msg/s", lambda w: fmt.rate(w.messages_per_second), lambda w: w.messages_per_second, "right",
               priority=2, bucket=relative(), help="Messages handled per second, lately."),
    ColumnSpec("last", "last msg", lambda w: fmt.age(w.last_message_age), lambda w: w.last_message_age, "right",
               priority=7, bucket=ages(), help="How long ago its last message arrived."),
    ColumnSpec("restarts", "restarts", lambda w: str(w.restarts), lambda w: w.restarts, "right", priority=4,
               help="Times the slot's process was replaced: deaths, restarts, recycling."),
    ColumnSpec("beat", "beat", lambda w: fmt.age(w.heartbeat_age), lambda w: w.heartbeat_age, "right",
               priority=5, style=_beat_class, bucket=ages(),
               help=f"Since the worker was last heard (it sends a heartbeat every second); in the warning colour "
                    f"past {STALE_BEAT:g} s: it may be hung, and is killed at the hang timeout."),
    ColumnSpec("exit", "last exit", lambda w: w.last_exit or fmt.MISSING, lambda w: w.last_exit,
               style=_exit_class, max_width=36, min_width=9, preferred_width=30,
               help="How the slot's previous process ended: exit code or signal, and why. Dimmed while a "
                    "new process runs: history, not a death now."),
    ColumnSpec("uptime", "uptime", lambda w: fmt.duration(w.uptime), lambda w: w.uptime, "right", priority=8,
               bucket=ages(), help="How long its current process has been up."),
    ColumnSpec("detail", "detail", lambda w: w.detail, lambda w: w.detail or None, priority=9, max_width=48,
               min_width=12, help="What the slot is waiting for, or why it is not connected or died."),
)


class WorkersTable(KeyedTable[WorkerInfo]):
    """The worker slots of every pool and the main worker."""

    KEY_COLUMN = "slot"
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "workers-table--dead",
        "workers-table--crash-loop",
        "workers-table--crash-loop-state",
        "workers-table--changing",
        "workers-table--idle",
        "workers-table--running-state",
        "workers-table--disconnected-state",
        "workers-table--stale-beat",
        "workers-table--past-exit",
    }

    def column_specs(self) -> tuple[ColumnSpec[WorkerInfo], ...]:
        return COLUMNS

    def key_of(self, item: WorkerInfo) -> str:
        return item.slot

    def row_style(self, item: WorkerInfo) -> str | None:
        return _ROW_CLASS.get(item.state)
