"""KeyedTable: a DataTable whose rows are items with stable keys, reconciled in place.

Every refresh hands the table the engine's current items. The table removes rows whose key is
gone, updates only the cells whose text or style changed, adds new rows, re-sorts, and puts the
cursor back on the row it was on. It never clears and refills: that would lose the cursor and
the scroll position, and repaint everything once a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

Item = TypeVar("Item")


class KeyText(Text):
    """A cell's text that also knows its row's key, so that sorting can find the row."""

    def __init__(self, text: str, row_key: str, **options: Any) -> None:
        super().__init__(text, **options)
        self.row_key = row_key


@dataclass(frozen=True)
class ColumnSpec(Generic[Item]):
    """How one column shows an item, and how it sorts."""

    key: str
    label: str
    text: Callable[[Item], str]
    # What sorting by this column compares; None sorts by the cell text. Items whose value is
    # None (no process, no message yet) always go last.
    sort_value: Callable[[Item], Any] | None = None
    justify: str = "left"  # "left" or "right" (numbers)
    # A component class for this cell alone, overriding the row's (the state badge).
    style: Callable[[Item], str | None] | None = None


class KeyedTable(DataTable[Text], Generic[Item]):
    """Rows keyed by :meth:`key_of`; columns from :meth:`column_specs`; sorted by one column.

    Sorting by the key column means "the engine's order" (slot order, route registration
    order), so the default view is the order the engine reports.
    """

    KEY_COLUMN: ClassVar[str] = ""  # sorting by this column means "the engine's order"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row")
        self._items: dict[str, Item] = {}  # in the engine's order
        self._shown: dict[str, tuple[tuple[str, Any, str], ...]] = {}  # what each row displays now
        self.specs: tuple[ColumnSpec[Item], ...] = tuple(self.column_specs())
        self._specs_by_key = {spec.key: spec for spec in self.specs}
        self.sort_column = self.KEY_COLUMN
        self.sort_reverse = False

    # --- what subclasses define -----------------------------------------------------------------

    def column_specs(self) -> Sequence[ColumnSpec[Item]]:
        raise NotImplementedError

    def key_of(self, item: Item) -> str:
        raise NotImplementedError

    def row_style(self, item: Item) -> str | None:
        """The component class that styles the whole row (dead workers, degraded routes)."""
        return None

    # --- reading the selection ----------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value

    @property
    def selected_item(self) -> Item | None:
        key = self.selected_key
        return None if key is None else self._items.get(key)

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def select_key(self, key: str) -> None:
        """Put the cursor on the row with this key."""
        self.move_cursor(row=self.get_row_index(key), animate=False)

    # --- reconciling ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._ensure_columns()
        self._show_sort()

    def _ensure_columns(self) -> None:
        if not self.columns:
            for spec in self.specs:
                self.add_column(Text(spec.label, justify=spec.justify), key=spec.key)  # type: ignore[arg-type]

    def show(self, items: Sequence[Item]) -> None:
        """Make the rows match ``items``: remove, update, add, sort; keep the cursor's row."""
        self._ensure_columns()
        selected = self.selected_key
        fresh = {self.key_of(item): item for item in items}
        for gone in [key for key in self._items if key not in fresh]:
            self.remove_row(gone)
            del self._shown[gone]
        for key, item in fresh.items():
            cells = self._cells(item)
            old = self._shown.get(key)
            if old is None:
                self.add_row(*(self._render(key, spec, cell) for spec, cell in zip(self.specs, cells, strict=True)),
                             key=key)
            elif old != cells:
                for spec, cell, old_cell in zip(self.specs, cells, old, strict=True):
                    if cell != old_cell:
                        resized = len(cell[0]) != len(old_cell[0])  # let an auto-width column grow
                        self.update_cell(key, spec.key, self._render(key, spec, cell), update_width=resized)
            self._shown[key] = cells
        self._items = fresh
        self._apply_sort()
        self._restore_cursor(selected)

    def _cells(self, item: Item) -> tuple[tuple[str, Any, str], ...]:
        """(text, resolved style, justify) per column: compared to decide which cells changed.

        The style is resolved from the theme here, so a theme change restyles the cells too.
        """
        row_class = self.row_style(item)
        cells = []
        for column in self.specs:
            style_class = (column.style(item) if column.style else None) or row_class
            style = self.get_component_rich_style(style_class, partial=True) if style_class else Style()
            cells.append((column.text(item), style, column.justify))
        return tuple(cells)

    def _render(self, key: str, spec: ColumnSpec[Item], cell: tuple[str, Any, str]) -> Text:
        text, style, justify = cell
        options: dict[str, Any] = {"style": style, "justify": justify, "no_wrap": True, "end": ""}
        if spec.key == self.KEY_COLUMN:
            return KeyText(text, key, **options)
        return Text(text, **options)

    def _restore_cursor(self, selected: str | None) -> None:
        if selected is not None and selected in self._items:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)

    def notify_style_update(self) -> None:
        # The theme (or a pseudo-class such as :focus) changed: component styles may resolve to
        # other colours now, so let the next show() see the cells as changed.
        super().notify_style_update()
        if self._items:
            self.call_later(self._restyle)

    def _restyle(self) -> None:
        if self.is_mounted:
            self.show(list(self._items.values()))

    # --- sorting --------------------------------------------------------------------------------

    def sort_by(self, column_key: str, reverse: bool | None = None) -> None:
        """Sort by a column; ``reverse=None`` flips the order when it is already the column."""
        if column_key not in self._specs_by_key:
            raise ValueError(f"no column {column_key!r}")
        if reverse is None:
            reverse = not self.sort_reverse if column_key == self.sort_column else False
        selected = self.selected_key
        self.sort_column, self.sort_reverse = column_key, reverse
        self._apply_sort()
        self._restore_cursor(selected)
        self._show_sort()

    def cycle_sort(self) -> None:
        """Sort by the next column (ascending), wrapping around to the key column."""
        keys = [column.key for column in self.specs]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)], reverse=False)

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def _ordered_keys(self) -> list[str]:
        items = list(self._items.items())  # the engine's order: ties keep it
        if self.sort_column == self.KEY_COLUMN:
            ordered = [key for key, _ in items]
            return ordered[::-1] if self.sort_reverse else ordered
        column = self._specs_by_key[self.sort_column]
        value_of = column.sort_value or (lambda item: column.text(item).casefold())
        known = [(key, value_of(item)) for key, item in items]
        present = sorted((pair for pair in known if pair[1] is not None), key=lambda pair: pair[1],
                         reverse=self.sort_reverse)
        missing = [pair for pair in known if pair[1] is None]
        return [key for key, _ in present + missing]

    def _apply_sort(self) -> None:
        ordered = self._ordered_keys()
        if ordered == self.row_keys:
            return
        position = {key: index for index, key in enumerate(ordered)}
        # DataTable.sort hands the key function the cell values only, not the row key; the key
        # column's cells are KeyTexts that carry it.
        self.sort(self.KEY_COLUMN, key=lambda cell: position[cell.row_key])

    def _show_sort(self) -> None:
        label = self._specs_by_key[self.sort_column].label if self.sort_column else ""
        arrow = "▼" if self.sort_reverse else "▲"
        self.border_subtitle = f"sorted by {label} {arrow}"
