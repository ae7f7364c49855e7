"""KeyedTable: a TableView whose rows are items with stable keys, reconciled in place.

Every refresh hands the table the engine's current items (:meth:`KeyedTable.show`). The table
works out each item's cell texts and styles from its column specs and hands them to TableView,
which removes rows whose key is gone, updates only the cells that changed, adds new rows, puts
them in the sort order, and keeps the cursor on the row it was on. It never clears and refills:
that would lose the cursor and the scroll position, and repaint everything once a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.style import Style

from .table_rows import Cells, Column, Justify
from .table_view import HeaderSelected, TableView

Item = TypeVar("Item")


@dataclass(frozen=True)
class ColumnSpec(Generic[Item]):
    """How one column shows an item, and how it sorts."""

    key: str
    label: str
    text: Callable[[Item], str]
    # What sorting by this column compares; None sorts by the cell text. Items whose value is
    # None (no process, no message yet) always go last.
    sort_value: Callable[[Item], Any] | None = None
    justify: Justify = "left"  # "left" or "right" (numbers)
    # A component class for this cell alone, overriding the row's (the state badge).
    style: Callable[[Item], str | None] | None = None


class KeyedTable(TableView, Generic[Item]):
    """Rows keyed by :meth:`key_of`; columns from :meth:`column_specs`; sorted by one column.

    Sorting by the key column means "the engine's order" (slot order, route registration
    order), so the default view is the order the engine reports. The sort shows in the
    border's subtitle; a click on a header sorts by its column (again: the other way round).
    """

    KEY_COLUMN: ClassVar[str] = ""  # sorting by this column means "the engine's order"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        self.specs: tuple[ColumnSpec[Item], ...] = tuple(self.column_specs())
        super().__init__([Column(spec.key, spec.label, spec.justify) for spec in self.specs], id=id, classes=classes)
        self._items: dict[str, Item] = {}  # in the engine's order
        self._text_functions = [spec.text for spec in self.specs]
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

    # --- reading the selection ------------------------------------------------------------------

    @property
    def selected_item(self) -> Item | None:
        key = self.selected_key
        return None if key is None else self._items.get(key)

    # --- reconciling ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._show_sort()

    def show(self, items: Sequence[Item]) -> None:
        """Make the rows match ``items``: remove, update, add, sort; keep the cursor's row."""
        self._items = {self.key_of(item): item for item in items}
        self._reconcile()

    def _reconcile(self) -> None:
        rows: dict[str, Cells] = {key: (self._texts_of(item), self._styles_of(item))
                                  for key, item in self._items.items()}
        self.set_rows(rows, self._ordered_keys())

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

    def notify_style_update(self) -> None:
        # The theme (or a pseudo-class such as :focus) changed: component styles may resolve to
        # other colours now, so let the rows be worked out again.
        super().notify_style_update()
        self._styles.clear()
        self._looks.clear()
        if self._items:
            self.call_later(self._restyle)

    def _restyle(self) -> None:
        if self.is_mounted:
            self._reconcile()

    # --- sorting --------------------------------------------------------------------------------

    def sort_by(self, column_key: str, reverse: bool | None = None) -> None:
        """Sort by a column; ``reverse=None`` flips the order when it is already the column."""
        if column_key not in self._specs_by_key:
            raise ValueError(f"no column {column_key!r}")
        if reverse is None:
            reverse = not self.sort_reverse if column_key == self.sort_column else False
        self.sort_column, self.sort_reverse = column_key, reverse
        self.set_order(self._ordered_keys())
        self._show_sort()

    def cycle_sort(self) -> None:
        """Sort by the next column (ascending), wrapping around to the key column."""
        keys = [column.key for column in self.specs]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)], reverse=False)

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_table_view_header_selected(self, event: HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_key)

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

    def _show_sort(self) -> None:
        label = self._specs_by_key[self.sort_column].label if self.sort_column else ""
        arrow = "▼" if self.sort_reverse else "▲"
        self.border_subtitle = f"sorted by {label} {arrow}"
