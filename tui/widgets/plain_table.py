"""PlainTable: a DataTable of one-line text cells that repaints only the rows that changed.

DataTable keys its render caches (lines, rows, cells) on one counter that every cell update
bumps. So when any cell changes, and with 64 workers some cell of every row changes every
second, it renders every visible cell again through Rich (``Styled(Padding(text))`` in
``Console.render_lines``, ~0.1 ms a cell) and repaints the whole table, borders and header
included. PlainTable instead:

- keeps a version per row, bumped when one of its cells changes, and caches each drawn line on
  it (and on where and how the line shows: cursor, hover, focus, scroll, column widths);
- draws a data row's line itself, when its cells are Texts of one line in one style (what
  KeyedTable puts in them): the segments Rich would make (padding, justified text, padding),
  worked out directly, and kept per cell, so that a changed row redraws only its changed cells;
- lets cells be updated a row at a time without a refresh per cell (:meth:`set_row_cells`), and
  repaints only the rows that changed (:meth:`repaint_rows`), as regions, rather than the table.

Anything else (fixed rows or columns, row labels, a cell or column cursor, a cell that is not
such a Text, the header row) goes DataTable's own way. This overrides DataTable internals of
textual 8.2 (``_render_line``, ``_data``, ``_update_count``, ...); tests/tui/test_render_cost.py
holds the lines drawn here to DataTable's own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual.cache import LRUCache
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import Column, ColumnKey, RowKey


@dataclass(frozen=True, slots=True)
class _Paint:
    """What the lines of one render_lines() share, worked out once rather than for every line."""

    base_style: Style
    x1: int  # the window onto the table's width: [x1, x2)
    x2: int
    scroll_y: int
    header_height: int
    width: int
    cursor_row: int
    hover_row: int
    columns: list[Column]
    padding: int
    show_cursor: bool
    show_hover_cursor: bool
    pseudo_classes: Any
    look: tuple[Any, ...]  # what else a line's rendering depends on: for the line cache's key


# A cell as last drawn in its row: its value, its width, its segments, and its text's style
# with the padding and text styles that come of it.
_Cell = tuple[Any, int, list[Segment], Style, tuple[Style, Style]]


def text_width(text: str) -> int:
    """rich.cells.cell_len(), without Rich for printable ASCII (as numbers are): its length."""
    return len(text) if text.isascii() and text.isprintable() else cell_len(text)


class PlainTable(DataTable[Text]):
    """A DataTable of one-line, one-style Text cells, drawn and repainted row by row."""

    def __init__(self, *, id: str | None = None, classes: str | None = None, cursor_type: str = "row") -> None:
        super().__init__(id=id, classes=classes, cursor_type=cursor_type)  # type: ignore[arg-type]
        self._row_versions: dict[RowKey, int] = {}  # a new number each time a row's cells change
        self._versions = itertools.count()
        # (row key, its version, where and how the line shows) -> the line.
        self._lines: LRUCache[tuple[Any, ...], Strip] = LRUCache(1024)
        # row key -> (how the row shows, its cells as last drawn (or None), the style past its end)
        self._row_cells: dict[RowKey, tuple[tuple[Any, ...], list[_Cell | None], Style]] = {}
        self._paint: _Paint | None = None  # during a render_lines() of rows laid out as drawn here
        self._columns_version = 0  # a new number each time columns come or go (the header row's text)

    # --- changing cells -------------------------------------------------------------------------

    def set_row_cells(self, row_key: RowKey, cells: Mapping[ColumnKey, Any]) -> None:
        """Put values in cells of a row: update_cell() for each, but without repainting anything.

        Call :meth:`repaint_rows` (or refresh()) for the rows changed, once they all are.
        """
        self._data[row_key].update(cells)
        self._update_count += 1
        self._touch(row_key)

    def repaint_rows(self, row_keys: Iterable[RowKey]) -> None:
        """Repaint these rows (those on screen): a region per run of adjacent rows."""
        if any(row.height != 1 for row in self.rows.values()):
            self.refresh()
            return
        indices = sorted(self._row_locations.get(key) for key in row_keys)
        if not indices:
            return
        top = self.header_height if self.show_header else 0
        width = max(self.size.width, self.virtual_size.width)
        start = end = indices[0]
        for index in [*indices[1:], None]:
            if index is not None and index == end + 1:
                end = index
                continue
            self._refresh_region(Region(0, top + start, width, end - start + 1))
            if index is not None:
                start = end = index

    def set_content_widths(self, widths: Mapping[ColumnKey, int]) -> bool:
        """Give auto-width columns these content widths; returns whether one changed.

        For a caller that knows its cells' widths: DataTable measures them through Rich.
        """
        resized = False
        for column_key, width in widths.items():
            column = self.columns[column_key]
            if column.content_width != width:
                column.content_width = width
                resized = True
        if resized:
            # As after DataTable's own measuring: the virtual size is worked out again when idle.
            self._require_update_dimensions = True
            self._update_count += 1
        return resized

    def add_column(
        self, label: Any, *, width: int | None = None, key: str | None = None, default: Any = None
    ) -> ColumnKey:
        self._columns_version += 1
        return super().add_column(label, width=width, key=key, default=default)

    def remove_column(self, column_key: ColumnKey | str) -> None:
        self._columns_version += 1
        super().remove_column(column_key)

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None) -> RowKey:
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._touch(row_key)
        return row_key

    def update_cell(self, row_key: RowKey | str, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        self._touch(RowKey(row_key) if isinstance(row_key, str) else row_key)

    def remove_row(self, row_key: RowKey | str) -> None:
        super().remove_row(row_key)
        key = RowKey(row_key) if isinstance(row_key, str) else row_key
        self._row_versions.pop(key, None)
        self._row_cells.pop(key, None)

    def clear(self, columns: bool = False) -> Self:
        self._row_versions.clear()
        self._row_cells.clear()
        self._columns_version += columns
        return super().clear(columns)

    def _touch(self, row_key: RowKey) -> None:
        """The row's cells changed: its lines must be drawn again."""
        self._row_versions[row_key] = next(self._versions)

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._lines.clear()
        self._row_cells.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._row_cells.clear()

    # --- drawing --------------------------------------------------------------------------------

    def _own_layout(self) -> bool:
        """Whether rows are laid out as drawn here (else DataTable draws them)."""
        return (
            self.cursor_type == "row"
            and not self.fixed_rows
            and not self.fixed_columns
            and not self._should_render_row_labels
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pseudo_class_state = self.get_pseudo_class_state()
        if self._own_layout():
            scroll_x, scroll_y = self.scroll_offset
            header_height = self.header_height if self.show_header else 0
            self._paint = self._new_paint(self.rich_style, scroll_x, scroll_y, header_height)
        try:
            return super().render_lines(crop)
        finally:
            self._paint = None

    def render_line(self, y: int) -> Strip:
        paint = self._paint
        if paint is None:
            return super().render_line(y)
        if y >= paint.header_height:
            y += paint.scroll_y
        return self._paint_line(y, paint)

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        # DataTable.render_line's way in, when called other than from render_lines().
        if not self._own_layout():
            return super()._render_line(y, x1, x2, base_style)
        return self._paint_line(y, self._new_paint(base_style, x1, 0, 0))

    def _new_paint(self, base_style: Style, x1: int, scroll_y: int, header_height: int) -> _Paint:
        width = self.size.width
        columns = self.ordered_columns
        show_cursor, show_hover_cursor = self.show_cursor, self._show_hover_cursor
        pseudo_classes = self._pseudo_class_state
        return _Paint(
            base_style=base_style,
            x1=x1,
            x2=x1 + width,
            scroll_y=scroll_y,
            header_height=header_height,
            width=width,
            cursor_row=self.cursor_coordinate.row,
            hover_row=self.hover_coordinate.row,
            columns=columns,
            padding=self.cell_padding,
            show_cursor=show_cursor,
            show_hover_cursor=show_hover_cursor,
            pseudo_classes=pseudo_classes,
            look=(
                show_cursor, show_hover_cursor, pseudo_classes, self.cell_padding, self.zebra_stripes,
                self._columns_version, tuple(column.content_width for column in columns),
            ),
        )

    def _paint_line(self, y: int, paint: _Paint) -> Strip:
        """Line ``y`` of the table, cached on its row's version rather than on the update count."""
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return Strip.blank(paint.width, paint.base_style)
        header = row_key is self._header_row_key
        row_index = -1 if header else self._row_locations.get(row_key)
        cursor = paint.cursor_row == row_index
        hover = paint.hover_row == row_index
        cache_key = (
            row_key, None if header else self._row_versions.get(row_key), line_no, row_index, paint.x1, paint.x2,
            paint.width, paint.base_style, cursor, hover, paint.look,
        )
        strip = self._lines.get(cache_key)
        if strip is None:
            if header:
                strip = super()._render_line(y, paint.x1, paint.x2, paint.base_style)
            else:
                strip = self._draw_row_line(row_key, row_index, line_no, cursor, hover, paint)
            self._lines[cache_key] = strip
        return strip

    def _draw_row_line(
        self, row_key: RowKey, row_index: int, line_no: int, cursor: bool, hover: bool, paint: _Paint
    ) -> Strip:
        """What DataTable._render_line gives for a line of a data row, made directly.

        Each cell as DataTable renders it (see :meth:`_plain_cell`); past the last column, the
        row's style (and the cursor's) to the edge; the line cropped to the scrolled window, and
        adjacent segments of one style merged.
        """
        row_style = self._get_row_style(row_index, paint.base_style)
        state = (row_index, row_style, cursor, hover, paint.show_cursor, paint.show_hover_cursor, paint.pseudo_classes)
        columns = paint.columns
        padding = paint.padding
        data = self._data[row_key]
        # The cells as last drawn in this row, kept while the row shows the same way: a changed
        # row mostly has a few changed cells.
        kept = self._row_cells.get(row_key)
        if kept is None or kept[0] != state or len(kept[1]) != len(columns):
            extend_style, _ = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, paint.show_cursor, paint.show_hover_cursor, False, False
            )
            extend_style += Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
            kept = (state, [None] * len(columns), row_style + extend_style)
            self._row_cells[row_key] = kept
        cells = kept[1]
        segments: list[Segment] = []
        simple = True  # every cell drawn here: the segments come out merged
        table_width = 0
        for column_index, column in enumerate(columns):
            width = 2 * padding + (column.content_width if column.auto_width else column.width)
            table_width += width
            value = data.get(column.key)
            cell = cells[column_index]
            if cell is not None and cell[0] is value and cell[1] == width:
                segments += cell[2]
                continue
            drawn = self._plain_cell(value, row_index, column_index, width, padding, state, cell)
            if drawn is None:
                segments += self._render_cell(row_index, column_index, row_style, width, cursor, hover)[line_no]
                simple = False
            else:
                cells[column_index] = drawn
                segments += drawn[2]
        width = paint.width
        segments.append(Segment(" " * max(0, width - table_width), kept[2]))
        if simple and paint.x1 == 0 and paint.x2 == width and table_width <= width:
            return Strip(segments, width)  # the width already, nothing to crop or merge
        segments = line_crop(segments, paint.x1, paint.x2, width)
        return Strip(segments).adjust_cell_length(width, paint.base_style).simplify()

    def _plain_cell(
        self,
        value: Any,
        row_index: int,
        column_index: int,
        width: int,
        padding: int,
        state: tuple[Any, ...],
        before: _Cell | None,
    ) -> _Cell | None:
        """DataTable's rendering of a cell holding a one-line, one-style Text; None for another cell.

        That rendering is ``Styled(Padding(text, (0, padding)), pre_style, post_style)``: the
        padding in ``pre + post``, then the text, justified in the inner width, in
        ``pre + text style + post``; merged into one segment when the two styles are the same.
        ``before`` is the cell as drawn before in the same row, whose styles serve again when
        its text's style is the same.
        """
        if not isinstance(value, Text) or value.spans or not isinstance(value.style, Style):
            return None
        plain = value.plain
        room = width - 2 * padding
        if (
            value.justify not in ("left", "right")
            or (length := text_width(plain)) > room
            or plain != plain.strip()
            or not plain.isprintable()
        ):
            return None
        if before is not None and before[3] is value.style:
            styles = before[4]
        else:
            _, row_style, cursor, hover, show_cursor, show_hover_cursor, _ = state
            component_style, post_style = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, show_cursor, show_hover_cursor,
                self.cursor_foreground_priority == "css", self.cursor_background_priority == "css",
            )
            pre_style = row_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
            styles = (pre_style + post_style, pre_style + value.style + post_style)
        pad_style, text_style = styles
        segments: list[Segment]
        if not plain:  # nothing to justify: Padding pads the whole cell in its own style
            segments = [Segment(" " * width, pad_style)] if width else []
        else:
            fill = " " * (room - length)
            text = fill + plain if value.justify == "right" else plain + fill
            pad = " " * padding
            if pad_style == text_style:
                segments = [Segment(pad + text + pad, pad_style)]
            elif pad:
                segments = [Segment(pad, pad_style), Segment(text, text_style), Segment(pad, pad_style)]
            else:
                segments = [Segment(text, text_style)]
        return (value, width, segments, value.style, styles)
