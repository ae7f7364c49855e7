"""FilterBar: the one-line input `/` opens to filter a table by a substring of its rows' text.

The table filters as the operator types. Enter keeps the filter and goes back to the table;
Esc clears it; leaving the bar any other way keeps it. While a filter is on, the table's border
says so (see KeyedTable), and Esc on the table clears it too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import Input

from .keyed_table import KeyedTable


class FilterBar(Input):
    """Hidden until :meth:`open`; filters one table at a time."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", show=False, id="filter.clear"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="filter: part of a slot, route or state (Enter keeps it, Esc clears)",
                         id=id, select_on_focus=False, compact=True)
        self.table: KeyedTable[Any] | None = None
        self.display = False
        self.cursor_blink = False  # a steady cursor: the same picture every time it is taken

    def allow_focus(self) -> bool:
        return self.display and super().allow_focus()  # hidden, it must not take the screen's first focus

    def open(self, table: KeyedTable[Any]) -> None:
        """Show the bar with the table's filter, ready to type."""
        self.table = table
        self.value = table.filter_text
        self.cursor_position = len(self.value)
        self.display = True
        self.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.table is not None and self.display:
            self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close()

    def action_clear(self) -> None:
        if self.table is not None:
            self.table.set_filter("")
        self._close()

    def on_blur(self, event: events.Blur) -> None:
        self.display = False  # Tab or a click elsewhere: the filter stays, the bar goes

    def _close(self) -> None:
        self.display = False
        if self.table is not None:
            self.table.focus()
