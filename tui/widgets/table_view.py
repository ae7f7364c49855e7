"""TableView: a table of one-line text cells that owns its rows and draws them line by line.

A ScrollView with ``render_line``: the header row stays on top and the rows scroll under it.
Rows are keyed by strings and set all at once (:meth:`TableView.set_rows`): the table updates
the rows whose cells changed, adds and removes rows, puts them in the given order, and keeps
the cursor on its row (by key). Each row keeps what it was last drawn as (see table_rows.py),
so that only changed rows are drawn again, and only they are repainted (a region per run of
adjacent rows) unless rows came, went or moved, or a column changed width.

The columns fit the width (column_layout.py): on a resize, and when texts change widths, the
table decides which columns show and how wide; what does not fit its cell is shortened with an
ellipsis, never so far that two rows' names (the frozen leading columns) read the same. When
even the columns that always show are wider than the table, the frozen columns stay in place
and the others scroll under them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size, Spacing
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .column_layout import Column, fit
from .table_messages import HeaderSelected, RowHighlighted, RowMessage, RowSelected
from .table_rows import Cells, LineStyles, Row, Rows, draw_line

__all__ = ["HeaderSelected", "RowHighlighted", "RowMessage", "RowSelected", "TableView"]

HEADER = -1  # the header's row index, for hovering


# DataTable's look (textual 8.2), under TableView's own component classes.
TABLE_CSS = """
TableView {
    background: $surface;
    color: $foreground;
    height: auto;
    max-height: 100%;
    &:focus {
        background-tint: $foreground 5%;
        & > .table-view--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .table-view--header {
            background-tint: $foreground 5%;
        }
    }
    & > .table-view--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    &:ansi > .table-view--header {
        background: ansi_bright_blue;
        color: ansi_default;
    }
    & > .table-view--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    & > .table-view--header-hover {
        background: $accent 30%;
    }
    & > .table-view--hover {
        background: $block-hover-background;
    }
}
"""


class TableView(ScrollView, can_focus=True):
    """Rows of text cells under a fixed header, with a row cursor that stays on its row's key."""

    ALLOW_SELECT = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "table-view--header",
        "table-view--cursor",
        "table-view--hover",
        "table-view--header-hover",
    }
    DEFAULT_CSS = TABLE_CSS

    def __init__(self, columns: Sequence[Column], *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._rows = Rows(columns)
        self.columns = self._rows.columns
        self._cursor_key: str | None = None
        self._hover: int | None = None  # the row under the mouse (HEADER for the header), if any
        self._epoch = 0  # a new number when styles or column widths change: every line is drawn again
        self._line_styles: dict[tuple[bool, bool, bool], LineStyles] = {}  # (header, cursor, hover) ->
        # How the columns fit (see _fit_columns): each one's width as shown (0: hidden), the
        # indices of those shown, the width of the frozen ones; the rows' names when last fitted.
        self._widths: list[int] = list(self._rows.widths)
        self._shown: list[int] = list(range(len(self.columns)))
        self._frozen = [index for index, column in enumerate(self.columns) if column.frozen]
        if self._frozen != list(range(len(self._frozen))):
            raise ValueError("frozen columns must be the leading ones")
        self._frozen_width = 0
        self._names: tuple[tuple[str, ...], ...] = ()

    # --- reading --------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows.order)

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._rows.order)

    @property
    def cursor_row(self) -> int:
        """The cursor's row index (0 in an empty table)."""
        return 0 if self._cursor_key is None else self._rows.index[self._cursor_key]

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        return self._cursor_key

    def get_row_index(self, key: str) -> int:
        return self._rows.index[key]

    def get_cell(self, key: str, column_key: str) -> Text:
        """A cell as a Text (its text, style and justification); the same object until it changes."""
        row = self._rows.by_key[key]
        index = next(i for i, column in enumerate(self.columns) if column.key == column_key)
        cell = row.cells[index]
        if cell is None:
            justify = self.columns[index].justify
            cell = row.cells[index] = Text(row.texts[index], row.styles[index], justify=justify, no_wrap=True, end="")
        return cell

    def column_x(self, column_key: str) -> int:
        """Where a shown column starts across the table (before scrolling sideways)."""
        index = next(i for i, column in enumerate(self.columns) if column.key == column_key)
        if not self._widths[index]:
            raise ValueError(f"column {column_key!r} is hidden at this width")
        return sum(self._widths[:index])

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns shown at the table's width, left to right."""
        return [self.columns[index].key for index in self._shown]

    def column_width(self, column_key: str) -> int:
        """A column's width as shown, padding included (0: hidden)."""
        return next(width for column, width in zip(self.columns, self._widths, strict=True) if column.key == column_key)

    # --- changing rows --------------------------------------------------------------------------

    def set_rows(self, rows: Mapping[str, Cells], order: Sequence[str] | None = None) -> None:
        """Make the table show these rows, in ``order`` (else the mapping's); keep the cursor's row.

        Rows with a new key are added, rows whose key is gone removed, and the others updated
        where their texts or styles differ. Repaints only the changed rows, unless rows came,
        went or moved, or a column changed width.
        """
        cursor = self.cursor_row
        reshaped, changed, resized = self._rows.update(rows)
        frozen = len(self._frozen)
        names = tuple(texts[:frozen] for texts, _ in rows.values()) if frozen else ()
        if names != self._names:
            self._names = names
            resized = True
        refitted = (reshaped or resized) and self._fit_columns()
        self._set_order(list(rows) if order is None else order, cursor, repaint=reshaped or refitted)
        if not (reshaped or refitted):
            self._repaint_rows(self._rows.index[key] for key in changed)

    def set_order(self, order: Sequence[str]) -> None:
        """Put the rows (the same keys) in this order; the cursor stays on its row."""
        self._set_order(order, self.cursor_row, repaint=False)

    def _set_order(self, order: Sequence[str], cursor: int, *, repaint: bool) -> None:
        rows, selected = self._rows, self._cursor_key
        repaint = rows.reorder(order) or repaint
        if selected not in rows.index:  # gone (or none yet): the row now where the cursor was
            self._cursor_key = rows.order[min(cursor, len(rows.order) - 1)] if rows.order else None
        size = Size(sum(self._widths), len(rows.order) + 1)
        if self.virtual_size != size:
            self.virtual_size = size
        if repaint:
            self.refresh()
            if self.cursor_row != cursor:
                self._scroll_to_cursor()
        if self._cursor_key != selected and self._cursor_key is not None:
            self.post_message(RowHighlighted(self, self._cursor_key))

    # --- fitting the width ----------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._refit()

    def watch_show_vertical_scrollbar(self) -> None:
        # The scrollbar takes a cell of the width (rows came or the table got shorter).
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        if self._fit_columns():
            self._set_order(self._rows.order, self.cursor_row, repaint=True)
            if self.scroll_x > self.max_scroll_x:
                self.scroll_to(x=self.max_scroll_x, animate=False, immediate=True)

    def _fit_columns(self) -> bool:
        """Decide which columns show and how wide, for the width there is now (column_layout.plan).

        Returns whether that changed: then every line is drawn again.
        """
        widths = fit(self.columns, self._rows.widths, self._names, self.scrollable_content_region.width)
        if widths == self._widths:
            return False
        self._widths = widths
        self._shown = [index for index, width in enumerate(widths) if width]
        self._frozen_width = sum(widths[index] for index in self._frozen)
        self._epoch += 1  # every cell is drawn again, in its new width
        return True

    # --- the cursor -----------------------------------------------------------------------------

    def select_key(self, key: str) -> None:
        """Put the cursor on the row with this key."""
        self.move_cursor(self._rows.index[key])

    def move_cursor(self, row: int) -> None:
        """Put the cursor on row ``row`` (clamped to the rows there are), and show that row."""
        if not self._rows.order:
            return
        old = self.cursor_row
        new = min(max(row, 0), len(self._rows.order) - 1)
        self._scroll_to_cursor(new)
        if new != old or self._cursor_key is None:
            self._cursor_key = self._rows.order[new]
            self._repaint_rows((old, new))
            self.post_message(RowHighlighted(self, self._cursor_key))

    def _scroll_to_cursor(self, row: int | None = None) -> None:
        if self.is_mounted and self.size.height > 1:
            line = 1 + (self.cursor_row if row is None else row)
            self.scroll_to_region(Region(0, line, 1, 1), spacing=Spacing(1, 0, 0, 0), animate=False, force=True,
                                  x_axis=False, immediate=True)

    def _data_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        self._set_hover(None)
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._set_hover(None)
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._set_hover(None)
        self.scroll_relative(y=-self._data_height(), animate=False, force=True)
        self.move_cursor(self.cursor_row - self._data_height())

    def action_page_down(self) -> None:
        self._set_hover(None)
        self.scroll_relative(y=self._data_height(), animate=False, force=True)
        self.move_cursor(self.cursor_row + self._data_height())

    def action_first_row(self) -> None:
        self._set_hover(None)
        self.move_cursor(0)

    def action_last_row(self) -> None:
        self._set_hover(None)
        self.move_cursor(len(self._rows.order) - 1)

    def action_select_cursor(self) -> None:
        self._set_hover(None)
        if self._cursor_key is not None:
            self.post_message(RowSelected(self, self._cursor_key))

    # --- the mouse ------------------------------------------------------------------------------

    def _row_at(self, event: events.MouseEvent) -> tuple[int | None, int]:
        """The row under the mouse (HEADER, an index, or None) and the x across the table."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None, 0
        x = offset.x if offset.x < self._frozen_width else offset.x + round(self.scroll_x)
        if offset.y == 0:
            return HEADER, x
        index = offset.y - 1 + round(self.scroll_y)
        return (index if index < len(self._rows.order) else None), x

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._set_hover(self._row_at(event)[0])

    def on_leave(self, event: events.Leave) -> None:
        self._set_hover(None)

    def on_click(self, event: events.Click) -> None:
        row, x = self._row_at(event)
        self._set_hover(row)
        if row == HEADER:
            edge = 0
            for index in self._shown:
                edge += self._widths[index]
                if x < edge:
                    self.post_message(HeaderSelected(self, self.columns[index].key))
                    break
        elif row is not None:
            event.stop()
            if row == self.cursor_row and self._cursor_key is not None:
                self.post_message(RowSelected(self, self._cursor_key))
            else:
                self.move_cursor(row)

    def _set_hover(self, row: int | None) -> None:
        if row != self._hover:
            old, self._hover = self._hover, row
            self._repaint_rows(index for index in (old, row) if index is not None)

    # --- drawing --------------------------------------------------------------------------------

    def _repaint_rows(self, indices: Iterable[int]) -> None:
        """Repaint these rows (HEADER for the header), those on screen: a region per run of adjacent rows."""
        top = round(self.scroll_y)
        height = self._data_height()
        lines = sorted({0 if index == HEADER else 1 + index for index in indices
                        if index == HEADER or top <= index < top + height})
        width = max(self.virtual_size.width, self.size.width)
        start = 0
        for position, line in enumerate(lines):
            if position + 1 == len(lines) or lines[position + 1] != line + 1:
                first = lines[start]
                y = 0 if first == 0 else first - top
                self.refresh(Region(0, y, width, line - first + 1))
                start = position + 1

    def notify_style_update(self) -> None:
        super().notify_style_update()  # the theme or a pseudo-class (:focus) changed: draw again
        self._epoch += 1
        self._line_styles.clear()

    def _line_styles_for(self, header: bool, cursor: bool, hover: bool) -> LineStyles:
        """The styles of a line, as DataTable's for a row cursor (cursor and hover on whole rows)."""
        styles = self._line_styles.get((header, cursor, hover))
        if styles is None:
            get = self.get_component_rich_style
            component = Style()
            if hover:
                component += get("table-view--hover")
                if header:
                    component += get("table-view--header-hover")
            if cursor:
                component += get("table-view--cursor")
            row_style = self.get_component_styles("table-view--header").rich_style if header else self.rich_style
            styles = self._line_styles[(header, cursor, hover)] = LineStyles.of(row_style, component)
        return styles

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        if y == 0:
            strip = self._line(self._rows.header, HEADER, width)
        elif (index := y - 1 + scroll_y) < len(self._rows.order):
            strip = self._line(self._rows.by_key[self._rows.order[index]], index, width)
        else:
            return Strip.blank(width, self.rich_style)
        if scroll_x and (frozen := self._frozen_width):  # the frozen columns stay, the rest scrolls under them
            strip = Strip.join([strip.crop(0, frozen), strip.crop(frozen + scroll_x, scroll_x + width)])
        elif scroll_x or strip.cell_length != width:
            strip = strip.crop(scroll_x, scroll_x + width)
        if strip.cell_length != width:
            strip = strip.adjust_cell_length(width, self.rich_style)
        return strip

    def _line(self, row: Row, index: int, width: int) -> Strip:
        """The row's line as drawn for how it shows now: drawn again only if that changed."""
        row.drawn_for((index == self.cursor_row and index != HEADER, index == self._hover, self._epoch))
        if row.strip is None or row.strip_width != width:
            row.strip = self.draw_row(row, index, width)
            row.strip_width = width
        return row.strip

    def draw_row(self, row: Row, index: int, width: int) -> Strip:
        """Draw a row's whole line (index HEADER: the header); what tests count to see rows drawn."""
        cursor, hover, _ = row.look
        styles = self._line_styles_for(index == HEADER, cursor, hover)
        return draw_line(row, self.columns, self._shown, self._widths, width, styles)

