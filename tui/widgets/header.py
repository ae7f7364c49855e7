"""DashboardHeader: broker, share group, totals and uptime, in two lines. No wall clock.

Colours come from component classes styled in dashboard.tcss, like every other widget's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from engine.snapshot import ManagerSnapshot

from .. import format as fmt

# Broker connection states (BrokerInfo.state) that are not bad news.
_BROKER_STATE_TONE = {"connected": "good", "connecting": "warning", "idle": "label"}
_SEPARATOR = (" · ", "label")

Part = tuple[str, str]  # (text, tone): the tone names a component class


class DashboardHeader(Static):
    """What the pool is connected to and how it is doing, at a glance."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "dashboard-header--label",
        "dashboard-header--value",
        "dashboard-header--good",
        "dashboard-header--warning",
        "dashboard-header--bad",
        "dashboard-header--pending",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self._shown: tuple[ManagerSnapshot | None, tuple[str, ...], str | None] = (None, (), None)

    def on_mount(self) -> None:
        self.show(None)

    def show(self, snapshot: ManagerSnapshot | None, pending: Sequence[str] = (), problem: str | None = None) -> None:
        """Render the snapshot; ``pending`` lists engine calls in flight, ``problem`` an engine error."""
        self._shown = (snapshot, tuple(pending), problem)
        first = self._connection_line(snapshot) if snapshot else [("waiting for the engine…", "label")]
        text = self._text(first)
        text.append("\n")
        text.append_text(self._text(self._totals_line(snapshot, pending, problem)))
        self.update(text)

    def notify_style_update(self) -> None:
        super().notify_style_update()  # the theme changed: render again in its colours
        if self.is_mounted:
            self.call_later(self.show, *self._shown)

    def _text(self, parts: Sequence[Part]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for chunk, tone in parts:
            text.append(chunk, self.get_component_rich_style(f"dashboard-header--{tone}", partial=True))
        return text

    @staticmethod
    def _connection_line(snapshot: ManagerSnapshot) -> list[Part]:
        broker = snapshot.broker
        tone = _BROKER_STATE_TONE.get(broker.state, "bad")
        state = broker.state + (f" ({broker.detail})" if broker.detail else "")
        return [
            (f"● {state}", tone),
            ("  ", "label"),
            (broker.address, "value"),
            (f" ({broker.kind})", "label"),
            _SEPARATOR,
            ("group ", "label"),
            (snapshot.group, "value"),
        ]

    @staticmethod
    def _totals_line(snapshot: ManagerSnapshot | None, pending: Sequence[str], problem: str | None) -> list[Part]:
        parts: list[Part] = []
        if snapshot is not None:
            live, desired = snapshot.live_workers, snapshot.desired_workers
            dead = sum(1 for worker in snapshot.workers if worker.state.is_dead)
            parts += [
                ("workers ", "label"), (f"{live}/{desired}", "value" if live >= desired else "warning"),
                _SEPARATOR,
                (fmt.rate(snapshot.messages_per_second), "value"), (" msg/s", "label"),
                _SEPARATOR,
                ("handled ", "label"), (fmt.count(snapshot.handled), "value"),
                _SEPARATOR,
                ("errors ", "label"), (fmt.count(snapshot.failed), "bad" if snapshot.failed else "value"),
            ]
            if dead:
                parts += [_SEPARATOR, (f"{dead} dead", "bad")]
            parts += [_SEPARATOR, ("up ", "label"), (fmt.duration(snapshot.uptime), "value")]
            if not snapshot.started:
                parts += [_SEPARATOR, ("not started (a starts)", "warning")]
        if pending:
            parts += [_SEPARATOR, ("⧗ " + ", ".join(pending) + "…", "pending")]
        if problem:
            parts += [_SEPARATOR, (problem, "bad")]
        return parts
