"""KeyedTable: a DataTable whose rows are items with stable keys, reconciled in place.

Every refresh hands the table the engine's current items. The table removes rows whose key is
gone, updates only the cells whose text or style changed, adds new rows, re-sorts, and puts the
cursor back on the row it was on. It never clears and refills: that would lose the cursor and
the scroll position, and repaint everything once a second. It repaints only the rows that
changed (PlainTable draws them), and sizes its columns from the widths of the texts it holds
(counted as they change) rather than having DataTable measure a column through Rich again
whenever one of its cells changes length.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from .plain_table import PlainTable, text_width

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


class KeyedTable(PlainTable, Generic[Item]):
    """Rows keyed by :meth:`key_of`; columns from :meth:`column_specs`; sorted by one column.

    Sorting by the key column means "the engine's order" (slot order, route registration
    order), so the default view is the order the engine reports.
    """

    KEY_COLUMN: ClassVar[str] = ""  # sorting by this column means "the engine's order"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row")
        self._items: dict[str, Item] = {}  # in the engine's order
        # What each row displays now: the text and the resolved style of each cell.
        self._shown: dict[str, tuple[tuple[str, ...], tuple[Style, ...]]] = {}
        self.specs: tuple[ColumnSpec[Item], ...] = tuple(self.column_specs())
        self._text_functions = [spec.text for spec in self.specs]
        self._column_keys = [ColumnKey(spec.key) for spec in self.specs]
        self._row_key_objects: dict[str, RowKey] = {}  # the RowKey of each row, as DataTable made it
        self._widths: list[Counter[int]] = [Counter() for _ in self.specs]  # per column: text width -> rows
        self._styled_columns = [index for index, spec in enumerate(self.specs) if spec.style]  # own component class
        self._specs_by_key = {spec.key: spec for spec in self.specs}
        self.sort_column = self.KEY_COLUMN
        self.sort_reverse = False
        self._styles: dict[str | None, Style] = {}  # component class -> resolved style, until restyled
        self._looks: dict[tuple[str | None, ...], tuple[Style, ...]] = {}  # see _styles_of()

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
            # DataTable's own key objects: a dict finds its own key by identity, without __eq__.
            self._column_keys = [
                self.add_column(Text(spec.label, justify=spec.justify), key=spec.key)  # type: ignore[arg-type]
                for spec in self.specs
            ]

    def show(self, items: Sequence[Item]) -> None:
        """Make the rows match ``items``: remove, update, add, sort; keep the cursor's row."""
        self._ensure_columns()
        selected = self.selected_key
        fresh = {self.key_of(item): item for item in items}
        reshaped = False  # rows came or went
        for gone in [key for key in self._items if key not in fresh]:
            self.remove_row(gone)
            self._count_widths(self._shown.pop(gone)[0], -1)
            del self._row_key_objects[gone]
            reshaped = True
        changed: list[RowKey] = []
        remeasure: set[int] = set()  # columns where a text changed width
        widths = self._widths
        for key, item in fresh.items():
            texts, styles = shown = self._texts_of(item), self._styles_of(item)
            old = self._shown.get(key)
            if old is None:
                self._row_key_objects[key] = self.add_row(
                    *map(self._render, itertools.repeat(key), self.specs, texts, styles), key=key
                )
                self._count_widths(texts, +1)
                reshaped = True
            elif old != shown:
                row_key = self._row_key_objects[key]
                cells = {}
                for index, (text, style, old_text, old_style) in enumerate(zip(texts, styles, *old, strict=True)):
                    if text != old_text or style is not old_style:
                        cells[self._column_keys[index]] = self._render(key, self.specs[index], text, style)
                        width, old_width = text_width(text), text_width(old_text)
                        if width != old_width:
                            _count(widths[index], width, +1)
                            _count(widths[index], old_width, -1)
                            remeasure.add(index)
                self.set_row_cells(row_key, cells)
                changed.append(row_key)
            self._shown[key] = shown
        self._items = fresh
        resized = self._fit_columns(range(len(self.specs)) if reshaped else remeasure)
        reordered = self._apply_sort()
        if reshaped or resized or reordered:
            self.refresh()
        elif changed:
            self.repaint_rows(changed)
        self._restore_cursor(selected)

    def _texts_of(self, item: Item) -> tuple[str, ...]:
        return tuple([text(item) for text in self._text_functions])

    def _styles_of(self, item: Item) -> tuple[Style, ...]:
        """The resolved style of each of the item's cells: one tuple for each way a row can look.

        The styles are resolved from the theme, so a theme change restyles the cells too. The
        same objects come back from one show() to the next (until the styles change), so that
        comparing a row with what it shows is mostly identity checks.
        """
        row_class = self.row_style(item)
        look = (row_class, *(self.specs[index].style(item) for index in self._styled_columns))  # type: ignore[misc]
        styles = self._looks.get(look)
        if styles is None:
            own = dict(zip(self._styled_columns, look[1:], strict=True))
            styles = tuple(self._style_of(own.get(index) or row_class) for index in range(len(self.specs)))
            self._looks[look] = styles
        return styles

    def _style_of(self, style_class: str | None) -> Style:
        style = self._styles.get(style_class)
        if style is None:
            style = self.get_component_rich_style(style_class, partial=True) if style_class else Style()
            self._styles[style_class] = style
        return style

    def _count_widths(self, texts: Sequence[str], change: int) -> None:
        for counts, text in zip(self._widths, texts, strict=True):
            _count(counts, text_width(text), change)

    def _fit_columns(self, indices: Iterable[int]) -> bool:
        """Size these columns to their widest text (or label): grow for a longer text, shrink back.

        Returns whether a column changed width.
        """
        return self.set_content_widths({
            self._column_keys[index]: max([cell_len(self.specs[index].label), *self._widths[index]])
            for index in indices
        })

    def _render(self, key: str, spec: ColumnSpec[Item], text: str, style: Style) -> Text:
        options: dict[str, Any] = {"style": style, "justify": spec.justify, "no_wrap": True, "end": ""}
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
        self._styles.clear()
        self._looks.clear()
        if self._items:
            self.call_later(self._restyle)

    def clear(self, columns: bool = False) -> Self:
        # Forget the rows here too: the next show() adds them all again.
        self._items.clear()
        self._shown.clear()
        self._row_key_objects.clear()
        for counts in self._widths:
            counts.clear()
        return super().clear(columns)

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

    def _apply_sort(self) -> bool:
        """Put the rows in the sort order; returns whether they moved."""
        ordered = self._ordered_keys()
        if ordered == self.row_keys:
            return False
        position = {key: index for index, key in enumerate(ordered)}
        # DataTable.sort hands the key function the cell values only, not the row key; the key
        # column's cells are KeyTexts that carry it.
        self.sort(self.KEY_COLUMN, key=lambda cell: position[cell.row_key])
        return True

    def _show_sort(self) -> None:
        label = self._specs_by_key[self.sort_column].label if self.sort_column else ""
        arrow = "▼" if self.sort_reverse else "▲"
        self.border_subtitle = f"sorted by {label} {arrow}"


def _count(counts: Counter[int], width: int, change: int) -> None:
    """Count a text of ``width`` in (+1) or out (-1) of a column; widths no text has are dropped."""
    counts[width] += change
    if not counts[width]:
        del counts[width]
