"""DashboardHeader: broker, share group, totals and uptime, in two lines. No wall clock.

Colours come from component classes styled in dashboard.tcss, like every other widget's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from engine.snapshot import ManagerSnapshot

from .. import format as fmt

# Broker connection states (BrokerInfo.state) that are not bad news.
_BROKER_STATE_TONE = {"connected": "good", "connecting": "warning", "idle": "label"}
_SEPARATOR = (" · ", "label")

Part = tuple[str, str]  # (text, tone): the tone names a component class


class DashboardHeader(Widget):
    """What the pool is connected to and how it is doing, at a glance.

    Drawn line by line, each line a segment per part: the totals line changes every second,
    and laying a Text out as Content (wrapping, spans) for it costs more than the drawing.
    A line wider than the header ends in an ellipsis.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "dashboard-header--label",
        "dashboard-header--value",
        "dashboard-header--good",
        "dashboard-header--warning",
        "dashboard-header--bad",
        "dashboard-header--pending",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[ManagerSnapshot | None, tuple[str, ...], str | None] = (None, (), None)
        self._lines: tuple[tuple[Part, ...], ...] = ((("waiting for the engine…", "label"),), ())
        self._strips: dict[int, Strip] = {}  # line -> drawn, for _strips_width
        self._strips_width = 0
        self._tones: dict[str, Style] = {}  # tone -> resolved style, until the styles change

    def show(self, snapshot: ManagerSnapshot | None, pending: Sequence[str] = (), problem: str | None = None) -> None:
        """Render the snapshot; ``pending`` lists engine calls in flight, ``problem`` an engine error."""
        self._shown = (snapshot, tuple(pending), problem)
        first = self._connection_line(snapshot) if snapshot else [("waiting for the engine…", "label")]
        lines = (tuple(first), tuple(self._totals_line(snapshot, pending, problem)))
        for y, (line, old) in enumerate(zip(lines, self._lines, strict=True)):
            if line != old:  # repaint only a line that says something new
                self._strips.pop(y, None)
                self.refresh(Region(0, y, max(self.size.width, 1), 1))
        self._lines = lines

    def notify_style_update(self) -> None:
        super().notify_style_update()  # the theme changed: draw again in its colours
        self._tones.clear()
        self._strips.clear()

    def render(self) -> Text:
        """The header's text (what the lines show, for anything that asks; drawing is render_line's)."""
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for y, line in enumerate(self._lines):
            if y:
                text.append("\n")
            for chunk, tone in line:
                text.append(chunk, self._tone(tone))
        return text

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._strips_width:
            self._strips.clear()
            self._strips_width = width
        strip = self._strips.get(y)
        if strip is None:
            parts = self._lines[y] if y < len(self._lines) else ()
            strip = self._strips[y] = self._draw(parts, y, width)
        return strip

    def _draw(self, parts: Sequence[Part], y: int, width: int) -> Strip:
        """A segment per part, in the header's style under the part's tone; cut with "…" if too wide.

        Each segment carries its offset in the text, as Content's rendering does (for selecting).
        """
        base = self.visual_style.rich_style
        segments: list[Segment] = []
        used = offset = 0
        for chunk, tone in parts:
            if not chunk:
                continue
            length = cell_len(chunk)
            if used + length > width:
                chunk = set_cell_size(chunk, max(width - 1 - used, 0)) + "…" if width > used else ""
                length = width - used
            if chunk:
                style = base + self._tone(tone) + Style.from_meta({"offset": (offset, y)})
                segments.append(Segment(chunk, style))
            used += length
            offset += len(chunk)
            if used >= width:
                break
        if not segments:
            return Strip.blank(width, base)
        return Strip(segments, used)

    def _tone(self, tone: str) -> Style:
        style = self._tones.get(tone)
        if style is None:
            style = self._tones[tone] = self.get_component_rich_style(f"dashboard-header--{tone}", partial=True)
        return style

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
            # Serving (running and connected) as /healthz counts them: with the broker down,
            # live processes that reconnect do not count, and the header says how many live.
            serving, live, desired = snapshot.serving_workers, snapshot.live_workers, snapshot.desired_workers
            dead = sum(1 for worker in snapshot.workers if worker.state.is_dead)
            parts += [("workers ", "label"), (f"{serving}/{desired}", "value" if serving >= desired else "warning")]
            if live != serving:
                parts += [(f" ({live} live)", "label")]
            parts += [
                _SEPARATOR,
                (fmt.rate(snapshot.messages_per_second), "value"), (" msg/s", "label"),
                _SEPARATOR,
                ("handled ", "label"), (fmt.count(snapshot.handled), "value"),
                _SEPARATOR,
                ("errors ", "label"), (fmt.count(snapshot.failed), "bad" if snapshot.failed else "value"),
            ]
            if dead:
                parts += [_SEPARATOR, (f"{dead} dead", "bad")]
            if snapshot.zygote_restarts:
                parts += [_SEPARATOR, (f"zygote restarted {snapshot.zygote_restarts} times", "warning")]
            parts += [_SEPARATOR, ("up ", "label"), (fmt.duration(snapshot.uptime), "value")]
            if not snapshot.started:
                parts += [_SEPARATOR, ("not started (a starts)", "warning")]
        if pending:
            parts += [_SEPARATOR, ("⧗ " + ", ".join(pending) + "…", "pending")]
        if problem:
            parts += [_SEPARATOR, (problem, "bad")]
        return parts
