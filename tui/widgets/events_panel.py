"""EventsPanel: the main screen's engine events and log lines, newest at the bottom, narrowed on demand.

The lines live in an :class:`~tui.event_feed.EventFeed`, lifecycle events and log lines bounded
apart, so a flood of log lines never pushes a death out. The panel draws only the lines on
screen (``ScrollView.render_line``, as the tables do), so a flood or a change of narrowing costs
the lines shown, not the lines kept. It follows new lines while scrolled to the end and stays
put once the operator scrolled up (until they scroll back down, or press End).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.cells import cell_len
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.snapshot import EngineEvent

from ..event_feed import MAX_EVENTS, Entry, EventFeed
from .column_layout import one_line
from .log_panel import MAX_LINES, event_line

TITLE = "Events"
_LINE_START = 8 + 1 + 10 + 1  # "HH:MM:SS", a space, the kind padded to 10, a space


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
            self._update(to_end=True)

    def _show_title(self) -> None:
        narrowed = self.feed.describe()
        self.border_title = f"{TITLE}: {narrowed}" if narrowed else TITLE

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
        if self.following:  # laid out for the first time, or taller: the end is elsewhere now
            self._scroll_to_end()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y

    def _width_of(self, entry: Entry) -> int:
        width = self._widths.get(entry.number)
        if width is None:
            source = f"{entry.source}: " if entry.source and entry.source not in entry.message else ""
            width = self._widths[entry.number] = _LINE_START + cell_len(source) + cell_len(entry.message)
        return width

    def _strip_of(self, entry: Entry) -> Strip:
        strip = self._strips.get(entry.number)
        if strip is None:
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
