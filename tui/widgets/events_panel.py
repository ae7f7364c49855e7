"""EventsPanel: the main screen's engine events and log lines, newest at the bottom, narrowed on demand.

The lines live in an :class:`~tui.event_feed.EventFeed`, lifecycle events and log lines bounded
apart, so a flood of log lines never pushes a death out. The panel draws only the lines on
screen (``ScrollView.render_line``, as the tables do), so a flood or a change of narrowing costs
the lines shown, not the lines kept. It follows new lines while scrolled to the end and stays
put once the operator scrolled up (until they scroll back down, or press End).

Narrower than :data:`COMPACT_BELOW` cells (below 110 columns; at 80 the panel is 52 wide) a
line is compact, so that the message gets most of the width: ``HH:MM``, the level as one letter
(in its colour), the slot shortened in the middle (left out when the panel shows one slot only),
the message (the slot shortened in it too); wider, the full line (time to the second, kind, slot).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.content import Content
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from engine.snapshot import EngineEvent

from .. import format as fmt
from ..event_feed import MAX_EVENTS, Entry, EventFeed
from .column_layout import one_line, shorten
from .log_panel import MAX_LINES, event_line, level_class

TITLE = "Events"
_LINE_START = 8 + 1 + 10 + 1  # "HH:MM:SS", a space, the kind padded to 10, a space
COMPACT_BELOW = 72  # cells of the panel's width below which lines are compact
COMPACT_SOURCE = 16  # cells a compact line's slot is shortened to
_COMPACT_START = 5 + 1 + 1 + 1  # "HH:MM", a space, the level's letter, a space
_LEVEL_LETTERS = {logging.DEBUG: "D", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E",
                  logging.CRITICAL: "C"}


def level_letter(level: int) -> str:
    """The level as one letter: D, I, W, E, C (the nearest standard level at or below it)."""
    standard = max((known for known in _LEVEL_LETTERS if known <= level), default=logging.DEBUG)
    return _LEVEL_LETTERS[standard]


def compact_source(source: str | None, message: str, one_slot: bool) -> str:
    """The source as a compact line shows it (with its ": "), or "" when the line needs none."""
    if not source or one_slot or source in message:
        return ""
    return f"{shorten(source, COMPACT_SOURCE, 'middle')}: "


def compact_message(source: str | None, message: str) -> str:
    """The message with its source, when it names it ("worker <slot> exited ..."), shortened too."""
    if source and source in message:
        return message.replace(source, shorten(source, COMPACT_SOURCE, "middle"))
    return message


def compact_line(widget: Widget, entry: Entry, one_slot: bool) -> Text:
    """``HH:MM L slot: message``: the event of :func:`~tui.widgets.log_panel.event_line` in fewer
    cells, coloured the same way (the level's colour from the letter on)."""
    line = Text(no_wrap=True, end="")
    line.append(fmt.short_clock(entry.time),
                style=widget.get_component_rich_style("log-panel--time", partial=True))
    line.append(f" {level_letter(entry.level)} ")
    line.append(compact_source(entry.source, entry.message, one_slot))
    line.append(compact_message(entry.source, entry.message))
    style_class = level_class(entry.level)
    if style_class:
        line.stylize(widget.get_component_rich_style(style_class, partial=True), 5)
    return line


class EventsPanel(ScrollView, can_focus=True):
    """One line per event: UTC time, kind, slot, message; warnings and errors in theme colours."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-panel--time",
        "log-panel--debug",
        "log-panel--warning",
        "log-panel--error",
    }

    def __init__(self, *, max_events: int = MAX_EVENTS, max_lines: int = MAX_LINES, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.feed = EventFeed(max_events=max_events, max_logs=max_lines)
        self._shown: list[Entry] = []  # the lines the narrowing lets through, oldest first
        self._strips: dict[int, Strip] = {}  # entry number -> its line as drawn, until the styles change
        self._widths: dict[int, int] = {}  # entry number -> its line's width in cells
        self.following = True  # scrolled to the end: new lines scroll into view
        self._stale = False  # lines were added one by one: shown at the next turn of the event loop
        self.compact = False  # narrower than COMPACT_BELOW: see the module's docstring

    def on_mount(self) -> None:
        self._show_title()

    # --- adding ---------------------------------------------------------------------------------

    def add_events(self, events: Iterable[EngineEvent]) -> None:
        added = False
        for event in events:
            self.feed.add(event.time, event.kind, event.slot, one_line(event.message), event.level)
            added = True
        if added:
            self._update()

    def add_line(self, wall_time: float, kind: str, source: str | None, message: str, level: int) -> None:
        self.feed.add(wall_time, kind, source, one_line(message), level)
        if not self._stale:  # a burst of Python log records costs one update, not one each
            self._stale = True
            self.call_later(self._update_if_stale)

    def _update_if_stale(self) -> None:
        if self._stale:
            self._update()

    # --- narrowing ------------------------------------------------------------------------------

    def toggle_warnings(self) -> None:
        """Show only warnings and errors, or everything again."""
        self.feed.warnings_only = not self.feed.warnings_only
        self._update(to_end=True)

    def toggle_slot(self, slot: str | None) -> None:
        """Show only ``slot``'s lines, or (already narrowed to a slot) every slot's again."""
        self.show_slot(None if self.feed.slot is not None else slot)

    def show_slot(self, slot: str | None) -> None:
        """Show only ``slot``'s lines (None: every slot's)."""
        if slot != self.feed.slot:
            self.feed.slot = slot
            if self.compact:  # compact lines leave the slot out when only one slot shows
                self._forget_lines()
            self._update(to_end=True)

    def _forget_lines(self) -> None:
        self._strips.clear()
        self._widths.clear()

    def _show_title(self) -> None:
        narrowed = self.feed.describe()
        # Content, not a str: a slot name may hold "[", which markup would read as a tag.
        self.border_title = Content(f"{TITLE}: {narrowed}") if narrowed else TITLE

    # --- showing --------------------------------------------------------------------------------

    @property
    def lines(self) -> list[Strip]:
        """Every line shown (scrolled into view or not), as drawn."""
        self._update_if_stale()
        return [self._strip_of(entry) for entry in self._shown]

    def _update(self, *, to_end: bool = False) -> None:
        self._stale = False
        self._shown = self.feed.shown()
        if len(self._widths) > 2 * len(self._shown) + 100:  # lines gone from the feed: forget them
            kept = {entry.number for entry in self._shown}
            self._strips = {number: strip for number, strip in self._strips.items() if number in kept}
            self._widths = {number: width for number, width in self._widths.items() if number in kept}
        widest = max((self._width_of(entry) for entry in self._shown), default=0)
        self.virtual_size = Size(widest, len(self._shown))
        if to_end or self.following:
            self._scroll_to_end()
        self._show_title()
        self.refresh()

    def _scroll_to_end(self) -> None:
        self.following = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_resize(self) -> None:
        compact = self.size.width < COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self._forget_lines()
            self._update()
        if self.following:  # laid out for the first time, or taller: the end is elsewhere now
            self._scroll_to_end()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y

    def _width_of(self, entry: Entry) -> int:
        width = self._widths.get(entry.number)
        if width is None:
            if self.compact:
                source = compact_source(entry.source, entry.message, self.feed.slot is not None)
                start, message = _COMPACT_START + cell_len(source), compact_message(entry.source, entry.message)
            else:
                source = f"{entry.source}: " if entry.source and entry.source not in entry.message else ""
                start, message = _LINE_START + cell_len(source), entry.message
            width = self._widths[entry.number] = start + cell_len(message)
        return width

    def _strip_of(self, entry: Entry) -> Strip:
        strip = self._strips.get(entry.number)
        if strip is None:
            if self.compact:
                text = compact_line(self, entry, self.feed.slot is not None)
            else:
                text = event_line(self, entry.time, entry.kind, entry.source, entry.message, entry.level)
            strip = self._strips[entry.number] = Strip(list(text.render(self.app.console)), text.cell_len)
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self._shown):
            return Strip.blank(width, self.rich_style)
        strip = self._strip_of(self._shown[index]).crop_extend(scroll_x, scroll_x + width, self.rich_style)
        return strip.apply_style(self.rich_style)

    def notify_style_update(self) -> None:
        super().notify_style_update()  # the theme changed: draw the lines again in its colours
        self._strips.clear()
