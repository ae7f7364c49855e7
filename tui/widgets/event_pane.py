"""EventPane: one slot's events (its log, or its lifecycle) as a LogPanel that only ever appends.

The engine hands the slot's whole history (up to its last 1,000 lines) with every refresh; the
pane appends the events numbered after the last one it shows, so a refresh never rewrites what
the operator is reading. It follows new lines while scrolled to the end, and stays put once the
operator scrolled up (until they scroll back down, or press End).

A wrapping pane (the lifecycle: few lines, each a cause worth reading whole) wraps its lines at
the width it has; RichLog wraps once, when a line is written, so when that width changes the
pane writes its lines again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Self

from rich.console import RenderableType
from rich.text import Text
from textual.events import Resize

from engine.snapshot import EngineEvent
from engine.text import printable

from .log_panel import LogPanel


class EventPane(LogPanel):
    """Events of one slot (the ``subject``), oldest first; the slot is in the screen's title, not on each line."""

    def __init__(self, subject: str, *, max_lines: int, wrap: bool = False, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, id=id, classes=classes)
        if wrap:
            self.wrap, self.min_width = True, 20
        self._shown: deque[EngineEvent] = deque(maxlen=max_lines if wrap else 0)  # to write again
        self._wrapped_at = 0  # the width the lines were wrapped at
        self.last_seq = -1  # the number of the newest event shown
        self.following = True  # scrolled to the end: new lines scroll into view
        # "worker sensors/+/temperature#0 exited with ..." reads "exited with ..." here.
        self._prefixes = tuple(f"{word} {subject}{end}" for word in ("worker", "Worker") for end in (": ", " "))

    def _without_subject(self, message: str) -> str:
        for prefix in self._prefixes:
            if message.startswith(prefix):
                return message[len(prefix):]
        return message

    def show(self, events: Iterable[EngineEvent]) -> int:
        """Append the events newer than those shown; returns how many that was."""
        new = [event for event in events if event.seq > self.last_seq]
        if not new:
            return 0
        self.last_seq = new[-1].seq
        # Decided once for the batch: RichLog scrolls after the next refresh, so in between the
        # pane is not at the end yet, whatever the operator did.
        self.auto_scroll = self.following
        self._shown.extend(new)
        self._write_events(new)
        return len(new)

    def _write_events(self, events: Iterable[EngineEvent]) -> None:
        for event in events:
            self.add_line(event.time, event.kind, None, printable(self._without_subject(event.message)), event.level)

    def on_resize(self, event: Resize) -> None:
        width = event.size.width
        if self.wrap and width != self._wrapped_at:
            if self._wrapped_at and self._shown:
                self.clear()
                self.auto_scroll = self.following = True
                self._write_events(self._shown)
            self._wrapped_at = width

    def write(
        self,
        content: RenderableType | object,
        width: int | None = None,
        expand: bool = False,
        shrink: bool = True,
        scroll_end: bool | None = None,
        animate: bool = False,
    ) -> Self:
        if self.wrap and isinstance(content, Text):
            content.no_wrap = False  # the panel's lines are made not to wrap; this pane's do
        return super().write(content, width, expand, shrink, scroll_end, animate)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y
