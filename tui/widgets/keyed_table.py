"""KeyedTable: a TableView whose rows are items with stable keys, reconciled in place.

Every refresh hands the table the engine's current items (:meth:`KeyedTable.show`). The table
works out each item's cell texts and styles from its column specs and hands them to TableView,
which removes rows whose key is gone, updates only the cells that changed, adds new rows, puts
them in the sort order, and keeps the cursor on the row it was on. It never clears and refills:
that would lose the cursor and the scroll position, and repaint everything once a second.

A filter (``/``) keeps the rows whose text columns contain a substring; sorting by a column that
moves every second is stable (stable_order.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.style import Style
from textual.binding import Binding, BindingType
from textual.content import Content

from .column_layout import Column, Elide, Justify, one_line
from .stable_order import Bucket, StableOrder
from .table_rows import Cells
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
    help: str = ""  # what the column says, for the help screen
    # How it fits the width (column_layout.py): 0 always shows, the others as the table widens.
    priority: int = 0
    max_width: int | None = None
    min_width: int | None = None
    preferred_width: int | None = None
    frozen: bool = False
    elide: Elide = "end"
    # For a value that moves every second: sorting by it is stable (stable_order.py).
    bucket: Bucket | None = None

    def column(self) -> Column:
        return Column(self.key, self.label, self.justify, self.priority, self.max_width, self.min_width,
                      self.preferred_width, self.frozen, self.elide)


class KeyedTable(TableView, Generic[Item]):
    """Rows keyed by :meth:`key_of`; columns from :meth:`column_specs`; sorted by one column.

    Sorting by the key column means "the engine's order" (slot order, route registration
    order), so the default view is the order the engine reports. The sort and the filter show
    in the border's subtitle; a click on a header sorts by its column (again: the other way round).
    """

    KEY_COLUMN: ClassVar[str] = ""  # sorting by this column means "the engine's order"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        self.specs: tuple[ColumnSpec[Item], ...] = tuple(self.column_specs())
        super().__init__([spec.column() for spec in self.specs], id=id, classes=classes)
        self._items: dict[str, Item] = {}  # in the engine's order
        self._text_functions = [spec.text for spec in self.specs]
        self._styled_columns = [index for index, spec in enumerate(self.specs) if spec.style]  # own component class
        self._specs_by_key = {spec.key: spec for spec in self.specs}
        self.sort_column = self.KEY_COLUMN
        self.sort_reverse = False
        self._stable = StableOrder()
        self._fresh_sort = True  # the next ordering is exact (see stable_order.py)
        self._filter = ""  # casefolded; "" shows every row
        self._filtered_out = 0
        # What the filter searches: the key and the text columns (not the numbers).
        self._searched = [index for index, spec in enumerate(self.specs) if spec.justify == "left"]
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
        self._show_subtitle()

    def show(self, items: Sequence[Item]) -> None:
        """Make the rows match ``items``: remove, update, add, sort; keep the cursor's row."""
        self._items = {self.key_of(item): item for item in items}
        self._reconcile()

    def _reconcile(self) -> None:
        rows: dict[str, Cells] = {key: (self._texts_of(item), self._styles_of(item))
                                  for key, item in self._items.items()}
        if self._filter:
            shown = {key: cells for key, cells in rows.items() if self._matches(key, cells[0])}
            self._filtered_out, rows = len(rows) - len(shown), shown
            self._show_subtitle()
        self.set_rows(rows, self._ordered_keys(rows))

    # --- filtering ------------------------------------------------------------------------------

    @property
    def filter_text(self) -> str:
        return self._filter

    def set_filter(self, text: str) -> None:
        """Show only the rows whose key or text columns contain ``text`` (any case); "" shows them all."""
        text = text.strip().casefold()
        if text != self._filter:
            self._filter, self._filtered_out = text, 0
            self._reconcile()
            self._show_subtitle()

    def _matches(self, key: str, texts: tuple[str, ...]) -> bool:
        needle = self._filter
        return needle in key.casefold() or any(needle in texts[index].casefold() for index in self._searched)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self._filter)  # no filter: Esc is left to whoever else wants it
        return True

    def action_clear_filter(self) -> None:
        self.set_filter("")

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
            style = self._resolved_style(style_class) if style_class else Style()
            self._styles[style_class] = style
        return style

    def _resolved_style(self, style_class: str) -> Style:
        """A component class's style, its colour made solid: a translucent or "auto" colour
        (``$text-muted`` is "auto 60%") is blended over the table's background here, as Textual
        does for a widget's own colour, rather than drawn at full strength."""
        style = self.get_component_rich_style(style_class, partial=True)
        styles = self.get_component_styles(style_class)
        color = styles.color
        if styles.has_rule("color") and (color.auto or color.a < 1):
            _, background = self.background_colors
            solid = background.get_contrast_text(color.a) if color.auto else background + color
            style += Style(color=solid.rich_color)
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
        self._fresh_sort = True
        self.set_order(self._ordered_keys(self.row_keys))
        self._show_subtitle()

    def sort_biggest_first(self, column_key: str) -> None:
        """htop's sort keys: by this column, biggest first; again: the other way round."""
        self.sort_by(column_key, reverse=None if column_key == self.sort_column else True)

    def cycle_sort(self) -> None:
        """Sort by the next column (ascending), wrapping around to the key column."""
        keys = [column.key for column in self.specs]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)], reverse=False)

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_table_view_header_selected(self, event: HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_key)

    def _ordered_keys(self, shown: Iterable[str]) -> list[str]:
        """The ``shown`` rows' keys in the sort order."""
        keys = set(shown)
        items = [(key, item) for key, item in self._items.items() if key in keys]  # the engine's order: ties keep it
        if self.sort_column == self.KEY_COLUMN:
            ordered = [key for key, _ in items]
            return ordered[::-1] if self.sort_reverse else ordered
        column = self._specs_by_key[self.sort_column]
        value_of = column.sort_value or (lambda item: column.text(item).casefold())
        known = [(key, value_of(item)) for key, item in items]
        present = [pair for pair in known if pair[1] is not None]
        missing = [key for key, value in known if value is None]
        fresh, self._fresh_sort = self._fresh_sort, False
        if column.bucket is None:
            ordered = [key for key, _ in sorted(present, key=lambda pair: pair[1], reverse=self.sort_reverse)]
        else:
            if fresh:
                self._stable.forget()
            previous = {key: index for index, key in enumerate(self.row_keys)}
            ordered = self._stable.order(present, column.bucket, previous, reverse=self.sort_reverse, fresh=fresh)
        return ordered + missing

    def _show_subtitle(self) -> None:
        label = self._specs_by_key[self.sort_column].label if self.sort_column else ""
        arrow = "▼" if self.sort_reverse else "▲"
        sort = f"sorted by {label} {arrow}"
        if not self._filter:
            self.border_subtitle = sort
            return
        total = len(self._items)
        # Content, not a str: what was typed is text, and "[/" read as markup would raise.
        shown = f"/{one_line(self._filter)}: {total - self._filtered_out} of {total} · {sort} · Esc clears"
        self.border_subtitle = Content(shown)

    # --- the help screen ------------------------------------------------------------------------

    def column_help(self) -> list[tuple[str, str]]:
        """(label, what it says) for every column, those always shown first, then in the order they appear.

        An optional column says when it shows, from the layout's rule (column_layout.py): in the
        order of priority, each while the table has room for it, so that the words are true at
        every width (at 80 columns some optional columns show already).
        """
        specs = sorted(self.specs, key=lambda spec: spec.priority)  # stable: ties keep the table's order
        optional = [spec for spec in specs if spec.priority > 0]
        described = []
        for spec in specs:
            if spec.priority == 0:
                described.append((spec.label, spec.help))
                continue
            rank = optional.index(spec) + 1
            after = "" if rank == 1 else f", after optional {'1' if rank == 2 else f'1-{rank - 1}'}"
            when = f" (optional {rank} of {len(optional)}: shown when there is room{after})"
            described.append((spec.label, spec.help + when))
        return described
