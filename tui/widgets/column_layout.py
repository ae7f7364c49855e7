"""Which columns of a table show at a given width, how wide, and how a text too long for its cell is shortened.

Plain functions of the columns, their natural widths (as wide as their widest text) and the room
there is, so that the tables decide on resize and tests call them directly. Widths here include
the cells' padding, as :class:`~tui.widgets.table_rows.Rows` counts them.

The rules, in order:

1. Columns of priority 0 always show: at their natural width, capped at ``max_width``, and
   shrunk towards ``min_width`` (shortened with an ellipsis) when the room is short. When even
   their floors do not fit, they keep their floors and the table scrolls sideways (its frozen
   columns stay in place).
2. The room left grows the shrunk priority-0 columns back, a cell each in turn (so that a long
   route and a long exit cause share it rather than one of them taking all), up to their
   ``preferred_width``: wide enough for the usual text, not for the longest.
3. The other columns appear in order of priority (1 first) while they fit; a shrinkable one takes
   what is left if that is at least its floor. The first that does not fit ends the list, so that
   widening the terminal reveals columns in one predictable order (the help screen says which).
4. What is left grows the shrunk priority-0 columns on, up to their full width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len

from engine.text import printable

PADDING = 1  # blank cells on each side of a cell's text
ELLIPSIS = "…"
Justify = Literal["left", "right"]
Elide = Literal["end", "middle"]  # where a shortened text loses its characters
# Control characters would break a line in two, or move the terminal's cursor: each shows as a space.


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a TableView: its key (for sorting, get_cell), its header label, its alignment,
    and how it fits the width (the rules above)."""

    key: str
    label: str
    justify: Justify = "left"
    priority: int = 0  # 0: always shown; the others appear in this order as the table widens
    max_width: int | None = None  # text cells at most: a longer text is shortened with an ellipsis
    min_width: int | None = None  # text cells it may shrink to when the room is short; None: never shrinks
    preferred_width: int | None = None  # text cells it grows to before other columns appear; None: all it needs
    frozen: bool = False  # a leading column that stays in place when the table scrolls sideways
    elide: Elide = "end"  # where a shortened text loses its characters


def text_width(text: str) -> int:
    """The cells a text takes, drawn as :func:`one_line`: for printable ASCII (as numbers are), its length."""
    return len(text) if text.isascii() and text.isprintable() else cell_len(one_line(text))


def one_line(text: str) -> str:
    """The text as one line, safe to show: newlines as spaces, every other unprintable character
    (an escape sequence from a worker's output, a bidi override) as its escape (engine/text.py)."""
    return text if text.isprintable() else printable(text).replace("\n", " ")


def shorten(text: str, cells: int, where: Elide = "end") -> str:
    """``text`` in at most ``cells`` cells: cut at the end (``"SIGKILL (lik…"``) or in the middle
    (``"sensors/…perature"``: routes differ at both ends, so both are kept)."""
    if cell_len(text) <= cells:
        return text
    if cells <= 1:
        return ELLIPSIS[:cells]
    if where == "end":
        return _head(text, cells - 1) + ELLIPSIS
    tail_cells = (cells - 1) // 2
    head = _head(text, cells - 1 - tail_cells)
    return head + ELLIPSIS + _tail(text, cells - 1 - cell_len(head))


def _head(text: str, cells: int) -> str:
    if text.isascii():
        return text[:cells]
    taken, width = [], 0
    for char in text:
        width += cell_len(char)
        if width > cells:
            break
        taken.append(char)
    return "".join(taken)


def _tail(text: str, cells: int) -> str:
    return _head(text[::-1], cells)[::-1]


def fit(columns: Sequence[Column], natural: Sequence[int], names: Sequence[Sequence[str]], available: int) -> list[int]:
    """The width of each column as shown at ``available`` cells (0: hidden): :func:`plan` with the
    columns' own floors and caps, a frozen column never shortened so far that two rows' ``names``
    (the texts of their frozen columns) read the same."""
    floors = [width if column.min_width is None else column.min_width + 2 * PADDING
              for column, width in zip(columns, natural, strict=True)]
    for index, column in enumerate(columns):
        if column.frozen and column.min_width is not None and names:
            text = distinct_floor(names, index, column.min_width, natural[index] - 2 * PADDING, column.elide)
            floors[index] = text + 2 * PADDING
    caps = [None if column.max_width is None else max(column.max_width, text_width(column.label)) + 2 * PADDING
            for column in columns]
    preferred = [None if column.preferred_width is None else column.preferred_width + 2 * PADDING
                 for column in columns]
    return plan(natural, [column.priority for column in columns], floors, caps, available, preferred)


def plan(
    natural: Sequence[int],
    priorities: Sequence[int],
    floors: Sequence[int],
    caps: Sequence[int | None],
    available: int,
    preferred: Sequence[int | None] | None = None,
) -> list[int]:
    """The width of each column as shown (0: hidden), by the rules above.

    ``natural`` are the columns' widths as wide as their widest text, ``floors`` the widths they
    may shrink to (their natural width for a column that never shrinks), ``caps`` the widths
    they never exceed (None: no cap), ``preferred`` what they grow to before the other columns
    appear (None: their full width); all with padding.
    """
    want = [width if cap is None else min(width, cap) for width, cap in zip(natural, caps, strict=True)]
    floor = [min(low, high) for low, high in zip(floors, want, strict=True)]
    first = [high if wish is None else max(low, min(wish, high))
             for low, high, wish in zip(floor, want, preferred or [None] * len(want), strict=True)]
    widths = [0] * len(natural)
    required = [index for index, priority in enumerate(priorities) if priority == 0]
    for index in required:
        widths[index] = floor[index]
    room = _grow(widths, first, required, available - sum(widths))
    optional = sorted((index for index, priority in enumerate(priorities) if priority > 0),
                      key=lambda index: (priorities[index], index))
    for index in optional:
        if want[index] <= room:
            widths[index] = want[index]
        elif floor[index] <= room:
            widths[index] = room
        else:
            break
        room -= widths[index]
    _grow(widths, want, required, room)
    return widths


def _grow(widths: list[int], want: Sequence[int], columns: Iterable[int], room: int) -> int:
    """Give ``room`` to the shrunk ``columns``, one cell each in turn, up to what they want; returns what is left."""
    growing = [index for index in columns if widths[index] < want[index]]
    while room > 0 and growing:
        for index in growing:
            if room == 0:
                break
            widths[index] += 1
            room -= 1
        growing = [index for index in growing if widths[index] < want[index]]
    return room


def distinct_floor(names: Sequence[Sequence[str]], column: int, floor: int, ceiling: int, where: Elide) -> int:
    """The narrowest text width, from ``floor`` up to ``ceiling``, at which the rows' names still read apart
    once ``names[row][column]`` is shortened to it (names are the texts of a row's identifying columns,
    slot and route): two rows that differ must never read the same.
    """
    if len({tuple(name) for name in names}) < len(names):
        return floor  # rows that read the same in full: no width tells them apart
    for width in range(floor, ceiling):
        shown = {(*name[:column], shorten(name[column], width, where), *name[column + 1:]) for name in names}
        if len(shown) == len(names):
            return width
    return max(floor, ceiling)
