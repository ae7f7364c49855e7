"""The rows of a TableView and how one is drawn: cells of one-line text, each in one style.

:class:`Rows` holds the rows by key, their order and the columns' widths, and tells what an
update changed. A row holds a text and a Rich style per column. It is drawn as the segments
Rich would make of ``Padding(Text(text, style, justify), (0, 1))`` under the row's style
(padding, the text justified in the column, padding), worked out directly: the same segments,
without a Rich render per cell. Each row keeps the segments of its cells and its whole line as
last drawn, for one way of showing (cursor, hover, styles), so that a row whose texts did not
change is not drawn again, and a row with a changed cell draws only that cell again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from .column_layout import PADDING, Column, one_line, shorten, text_width

Cells = tuple[tuple[str, ...], tuple[Style, ...]]  # a row's texts and styles, one of each per column


@dataclass(frozen=True, slots=True)
class LineStyles:
    """The styles of a line drawn one way (header or data row; under the cursor, hovered, or not).

    As DataTable draws a cell: ``pre`` under everything (the row's style, then the cursor's or
    the hover's), the cell's own style over it, then ``post`` (the cursor's colour, which wins
    over the cell's, as DataTable's ``cursor_foreground_priority="css"``).
    """

    pre: Style
    post: Style
    pad: Style  # the padding, and a cell whose text has no style of its own: pre + post
    extend: Style  # past the last column, to the widget's edge

    @classmethod
    def of(cls, row_style: Style, component: Style) -> LineStyles:
        pre = row_style + component
        post = Style.from_color(color=component.color)
        return cls(pre, post, pre + post, row_style + component)


class Row:
    """One row: its texts and styles, and what was drawn of it (see :meth:`drawn_for`)."""

    __slots__ = ("cells", "look", "segments", "strip", "strip_width", "styles", "texts")

    def __init__(self, texts: tuple[str, ...], styles: tuple[Style, ...]) -> None:
        self.texts = texts
        self.styles = styles
        self.cells: list[Text | None] = [None] * len(texts)  # get_cell()'s Texts, made when asked
        self.look: Any = None  # how the segments and the strip show (cursor, hover, styles)
        self.segments: list[list[Segment] | None] = [None] * len(texts)  # per cell, for `look`
        self.strip: Strip | None = None  # the whole line, for `look` and `strip_width`
        self.strip_width = 0

    def set_cell(self, index: int) -> None:
        """Cell ``index`` changed (its text or style, in ``texts``/``styles``): draw it again."""
        self.cells[index] = None
        self.segments[index] = None
        self.strip = None

    def drawn_for(self, look: Any) -> None:
        """The row shows ``look`` now: forget what was drawn for another."""
        if look != self.look:
            self.look = look
            self.segments = [None] * len(self.texts)
            self.strip = None


def draw_cell(text: str, style: Style, width: int, column: Column, styles: LineStyles) -> list[Segment]:
    """A cell as DataTable renders it: padding, the text justified in what is left, padding.

    The padding is in ``pre + post``, the text in ``pre + style + post``: one segment when the
    two are the same. An empty cell is all padding. The text shows as one line (see
    :func:`one_line`), shortened with an ellipsis where the column is narrower than it.
    """
    if not text:
        return [Segment(" " * width, styles.pad)] if width else []
    text = one_line(text)
    if text_width(text) > width - 2 * PADDING:
        text = shorten(text, width - 2 * PADDING, column.elide)
    justify = column.justify
    fill = " " * (width - 2 * PADDING - text_width(text))
    body = fill + text if justify == "right" else text + fill
    text_style = styles.pre + style + styles.post
    pad = " " * PADDING
    if text_style == styles.pad:
        return [Segment(pad + body + pad, text_style)]
    return [Segment(pad, styles.pad), Segment(body, text_style), Segment(pad, styles.pad)]


def draw_line(row: Row, columns: list[Column], shown: list[int], widths: list[int], width: int,
              styles: LineStyles) -> Strip:
    """The row's whole line, its cells as last drawn where they did not change; to ``width`` at least.

    The ``shown`` columns (indices, left to right) are drawn, ``widths`` wide (padding included;
    a width per column); past the last one, the line goes on in ``styles.extend`` to the
    widget's ``width``.
    """
    segments: list[Segment] = []
    cells = row.segments
    for index in shown:
        cell = cells[index]
        if cell is None:
            cell = cells[index] = draw_cell(row.texts[index], row.styles[index], widths[index], columns[index], styles)
        segments += cell
    table_width = sum(widths[index] for index in shown)
    segments.append(Segment(" " * max(0, width - table_width), styles.extend))
    return Strip(segments, max(width, table_width))


class Rows:
    """A table's rows by key, in display order, and its columns' widths (padding included).

    Columns are as wide as their widest text (or label): the widths of the texts are counted
    as they change, rather than measured again.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.by_key: dict[str, Row] = {}
        self.order: list[str] = []  # row keys, top to bottom
        self.index: dict[str, int] = {}  # row key -> its place in order
        self.header = Row(tuple(column.label for column in self.columns), (Style(),) * len(self.columns))
        self.widths = [text_width(column.label) + 2 * PADDING for column in self.columns]
        self._counts = [Counter[int]() for _ in self.columns]  # per column: text width -> rows

    def update(self, rows: Mapping[str, Cells]) -> tuple[bool, list[str], bool]:
        """Add, remove and update rows to match ``rows`` (the order is :meth:`reorder`'s).

        Returns whether rows came or went, the keys of the rows updated, and whether a column
        changed width.
        """
        gone = [key for key in self.by_key if key not in rows]
        for key in gone:
            self._count(self.by_key.pop(key).texts, -1)
        reshaped = bool(gone)
        changed: list[str] = []
        resized: set[int] = set()
        for key, (texts, styles) in rows.items():
            row = self.by_key.get(key)
            if row is None:
                self.by_key[key] = Row(texts, styles)
                self._count(texts, +1)
                reshaped = True
            elif row.texts != texts or (row.styles is not styles and row.styles != styles):
                resized.update(self._update_row(row, texts, styles))
                changed.append(key)
        widened = self._fit_columns(range(len(self.columns)) if reshaped else resized)
        return reshaped, changed, widened

    def reorder(self, order: Sequence[str]) -> bool:
        """Put the rows in this order (all their keys); returns whether they moved."""
        if order == self.order:
            return False
        self.order = list(order)
        self.index = {key: index for index, key in enumerate(self.order)}
        return True

    def _update_row(self, row: Row, texts: tuple[str, ...], styles: tuple[Style, ...]) -> list[int]:
        """Put the new texts and styles in the row; returns the columns where a text changed width."""
        resized = []
        for index, (text, style, old_text, old_style) in enumerate(zip(texts, styles, row.texts, row.styles,
                                                                     strict=True)):
            if text == old_text and (style is old_style or style == old_style):
                continue
            row.set_cell(index)
            width, old_width = text_width(text), text_width(old_text)
            if width != old_width:
                _count(self._counts[index], width, +1)
                _count(self._counts[index], old_width, -1)
                resized.append(index)
        row.texts = texts
        row.styles = styles
        return resized

    def _count(self, texts: Iterable[str], change: int) -> None:
        for counts, text in zip(self._counts, texts, strict=True):
            _count(counts, text_width(text), change)

    def _fit_columns(self, indices: Iterable[int]) -> bool:
        """Size these columns to their widest text or label; returns whether one changed width."""
        resized = False
        for index in indices:
            width = max([text_width(self.columns[index].label), *self._counts[index]]) + 2 * PADDING
            if width != self.widths[index]:
                self.widths[index] = width
                resized = True
        return resized


def _count(counts: Counter[int], width: int, change: int) -> None:
    """Count a text of ``width`` in (+1) or out (-1) of a column; widths no text has are dropped."""
    counts[width] += change
    if not counts[width]:
        del counts[width]
