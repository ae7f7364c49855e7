"""WorkersTable: one row per worker slot (row key = slot), dead and crash-looping slots in colour."""

from __future__ import annotations

from typing import ClassVar

from engine.snapshot import SlotState, WorkerInfo

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable

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


def _optional_int(value: int | None) -> str:
    return fmt.MISSING if value is None else str(value)


def _state_class(worker: WorkerInfo) -> str | None:
    return _STATE_CLASS.get(worker.state)


COLUMNS: tuple[ColumnSpec[WorkerInfo], ...] = (
    # The slot is (route, index): the index here, the route next to it.
    ColumnSpec("slot", "slot", lambda w: "main" if w.is_main else f"#{w.index}"),
    ColumnSpec("route", "route", lambda w: w.route),
    ColumnSpec("pid", "pid", lambda w: _optional_int(w.pid), lambda w: w.pid, "right"),
    ColumnSpec("state", "state", lambda w: str(w.state), style=_state_class),
    ColumnSpec("cpu", "cpu %", lambda w: fmt.percent(w.cpu_percent), lambda w: w.cpu_percent, "right"),
    ColumnSpec("busy", "busy %", lambda w: fmt.share(w.busy), lambda w: w.busy, "right"),
    ColumnSpec("memory", "memory", lambda w: fmt.size(w.rss_bytes), lambda w: w.rss_bytes, "right"),
    ColumnSpec("handled", "handled", lambda w: fmt.count(w.handled), lambda w: w.handled, "right"),
    ColumnSpec("failed", "failed", lambda w: fmt.count(w.failed), lambda w: w.failed, "right"),
    ColumnSpec("rate", "msg/s", lambda w: fmt.rate(w.messages_per_second), lambda w: w.messages_per_second, "right"),
    ColumnSpec("last", "last msg", lambda w: fmt.age(w.last_message_age), lambda w: w.last_message_age, "right"),
    ColumnSpec("restarts", "restarts", lambda w: str(w.restarts), lambda w: w.restarts, "right"),
    ColumnSpec("exit", "exit", lambda w: w.last_exit or fmt.MISSING, lambda w: w.last_exit),
    ColumnSpec("uptime", "uptime", lambda w: fmt.duration(w.uptime), lambda w: w.uptime, "right"),
    ColumnSpec("detail", "detail", lambda w: w.detail, lambda w: w.detail or None),
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
    }

    def column_specs(self) -> tuple[ColumnSpec[WorkerInfo], ...]:
        return COLUMNS

    def key_of(self, item: WorkerInfo) -> str:
        return item.slot

    def row_style(self, item: WorkerInfo) -> str | None:
        return _ROW_CLASS.get(item.state)
