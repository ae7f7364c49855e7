"""LogPanel: engine events and worker log lines, newest at the bottom, bounded."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget
from textual.widgets import RichLog

from engine.snapshot import EngineEvent

from .. import format as fmt

MAX_LINES = 500


class LogPanel(RichLog):
    """One line per event: UTC time, kind, slot, message; warnings and errors in theme colours."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-panel--time",
        "log-panel--debug",
        "log-panel--warning",
        "log-panel--error",
    }

    def __init__(self, *, max_lines: int = MAX_LINES, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, wrap=False, markup=False, highlight=False, id=id, classes=classes)

    def add_events(self, events: Iterable[EngineEvent]) -> None:
        for event in events:
            self.add_line(event.time, event.kind, event.slot, event.message, event.level)

    def add_line(self, wall_time: float, kind: str, source: str | None, message: str, level: int) -> None:
        self.write(event_line(self, wall_time, kind, source, message, level))


def event_line(widget: Widget, wall_time: float, kind: str, source: str | None, message: str, level: int) -> Text:
    """One event as a line: UTC time, kind (a log line's level), source, message; coloured by
    level with the widget's ``log-panel--*`` component classes. Shared by the panels that show events."""
    line = Text(no_wrap=True, end="")
    line.append(fmt.clock(wall_time), style=widget.get_component_rich_style("log-panel--time", partial=True))
    label = logging.getLevelName(level).lower() if kind == "log" else kind
    line.append(f" {label:<10} ")
    if source and source not in message:
        line.append(f"{source}: ")
    line.append(message)
    style_class = level_class(level)
    if style_class:
        line.stylize(widget.get_component_rich_style(style_class, partial=True), len(fmt.clock(wall_time)))
    return line


def level_class(level: int) -> str | None:
    """The ``log-panel--*`` component class of a level (None: the text's own colour)."""
    if level >= logging.ERROR:
        return "log-panel--error"
    if level >= logging.WARNING:
        return "log-panel--warning"
    if level < logging.INFO:
        return "log-panel--debug"
    return None
