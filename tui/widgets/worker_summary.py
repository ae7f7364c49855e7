"""WorkerSummary: who a worker is and how it is doing, as label-value lines.

Route, state with its detail, pid, client id, uptime, restarts, the last exit with its cause, the
heartbeat's age and the counters. The state and a late heartbeat show in the theme's colours:
a worker that stopped talking must not look healthy before the hang timeout kills it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from engine.details import WorkerDetail
from engine.snapshot import SlotState
from engine.text import printable

from .. import format as fmt
from .workers_table import state_text

LATE_HEARTBEAT = 3.0  # seconds: a worker is heard every second; this late, something is wrong
_LABEL = 10
_VALUE = 12

_STATE_CLASS = {
    SlotState.RUNNING: "worker-summary--good",
    SlotState.BACKOFF: "worker-summary--bad",
    SlotState.CRASH_LOOP: "worker-summary--bad",
    SlotState.STARTING: "worker-summary--warning",
    SlotState.STOPPING: "worker-summary--warning",
    SlotState.RESTARTING: "worker-summary--warning",
    SlotState.DRAINING: "worker-summary--warning",
}

Field = tuple[str, str, str | None]  # label, value, component class


def _heartbeat(age: float | None) -> Field:
    if age is None:
        return ("heartbeat", "no process", None)
    late = age >= LATE_HEARTBEAT
    return ("heartbeat", f"{fmt.age(age)} ago", "worker-summary--warning" if late else None)


def summary_lines(detail: WorkerDetail) -> list[list[Field]]:
    """The fields, one list per line (a line holds one to three)."""
    info = detail.info
    disconnected = info.state is SlotState.RUNNING and not info.connected
    state = state_text(info) + (f": {info.detail}" if info.detail else "")
    state_class = "worker-summary--warning" if disconnected else _STATE_CLASS.get(info.state)
    connected = "connected" if info.connected else "not connected"
    heartbeat_age = detail.heartbeat_age if detail.heartbeat_age is not None else info.heartbeat_age
    return [
        [("route", info.route, None)],
        [("state", state, state_class)],
        [("pid", fmt.MISSING if info.pid is None else str(info.pid), None),
         ("uptime", fmt.duration(info.uptime), None)],
        [("client id", info.client_id, None)],
        [("last exit", info.last_exit or fmt.MISSING, "worker-summary--bad" if info.last_exit else None)],
        [("restarts", str(info.restarts), None), _heartbeat(heartbeat_age)],
        [("broker", connected, None if info.connected else "worker-summary--warning"),
         ("in flight", str(info.in_flight), None)],
        [("handled", fmt.count(info.handled), None),
         ("failed", fmt.count(info.failed), "worker-summary--bad" if info.failed else None),
         ("msg/s", fmt.rate(info.messages_per_second), None)],
    ]


class WorkerSummary(Widget):
    """Label-value lines; values cut with an ellipsis rather than wrapped."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "worker-summary--label",
        "worker-summary--good",
        "worker-summary--warning",
        "worker-summary--bad",
    }
    DEFAULT_CSS = """
    WorkerSummary {
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._detail: WorkerDetail | None = None

    def show(self, detail: WorkerDetail) -> None:
        if detail != self._detail:
            self._detail = detail
            self.refresh(layout=True)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        if self._detail is None:
            return text
        style = self.get_component_rich_style
        label_style = style("worker-summary--label", partial=True)
        for number, fields in enumerate(summary_lines(self._detail)):
            if number:
                text.append("\n")
            for position, (label, value, component) in enumerate(fields):
                last = position == len(fields) - 1
                value = printable(value).replace("\n", " ")
                text.append(f"{label:<{_LABEL}}", style=label_style)
                text.append(value if last else f"{value:<{_VALUE}}", style=style(component, partial=True)
                            if component else "")
                if not last:
                    text.append(" ")
        return text
