"""Throughput: messages per second over time, as bars anchored at zero.

Textual's Sparkline scales between the smallest and largest sample, which makes 100 vs 101
msg/s look like empty vs full; an operator reading "is traffic flowing?" needs a zero baseline.
The history itself is kept (bounded) by the app; this widget only draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from .. import format as fmt

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def bar_rows(samples: Sequence[float], width: int, height: int, *, floor: float = 0.0,
             ceiling: float = 0.0) -> list[str]:
    """Rows of a bar chart (top row first), one column per sample, newest on the right.

    Bars rise from ``floor`` (zero unless told) to the largest visible sample, or to ``ceiling``
    if that is higher; a non-zero sample always shows at least a sliver, so that a trickle is
    distinguishable from silence (and, above a floor, a sample at the floor from no sample).
    """
    if width <= 0 or height <= 0:
        return []
    visible = list(samples)[-width:]
    span = max(*visible, ceiling) - floor if visible else 0.0
    columns = []
    for sample in visible:
        eighths = round((sample - floor) / span * height * 8) if span > 0 else 0
        columns.append(_bar(max(eighths, 1) if sample > 0 else 0, height))
    padding = " " * (width - len(visible))
    if not columns:
        return [padding] * height
    return [padding + "".join(row) for row in zip(*columns, strict=True)]


@lru_cache(maxsize=1024)
def _bar(level: int, height: int) -> str:
    """One bar, ``level`` eighths of a cell high, as its cells from the top row down."""
    return "".join(_EIGHTHS[min(max(level - row * 8, 0), 8)] for row in reversed(range(height)))


class Throughput(Widget):
    """A label with the current and peak rate over bars of the recent history.

    Drawn line by line (each a single segment) rather than as a Text to lay out: the graph
    changes with every refresh, and going through a Visual would cost more than the bars.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"throughput--bars", "throughput--label"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._history: tuple[float, ...] = ()
        self._texts: list[str] = []  # the lines (label, then bars) for _texts_size
        self._texts_size = Size(0, 0)
        self._strips: dict[int, Strip] = {}  # line -> drawn, until its text or the styles change

    def show(self, history: Sequence[float]) -> None:
        history = tuple(history)
        if history == self._history:
            return
        self._history = history
        size = self.size
        if size != self._texts_size or not self._texts:
            self._texts = []  # drawn again, all of it, at the next paint
            self._strips.clear()
            self.refresh()
            return
        # Repaint only the lines that changed: under steady traffic, once the history is as wide
        # as the graph, the lower rows stay full.
        texts = self._lines(size)
        changed = [y for y, (text, old) in enumerate(zip(texts, self._texts, strict=True)) if text != old]
        self._texts = texts
        for y in changed:
            self._strips.pop(y, None)
        if changed:
            self.refresh(Region(0, changed[0], size.width, changed[-1] - changed[0] + 1))

    def notify_style_update(self) -> None:
        super().notify_style_update()  # the theme changed: draw again in its colours
        self._strips.clear()

    def _label(self) -> str:
        current = self._history[-1] if self._history else 0.0
        peak = max(self._history, default=0.0)
        return f"{fmt.rate(current)} msg/s  peak {fmt.rate(peak)}"

    def render_line(self, y: int) -> Strip:
        size = self.size
        if size != self._texts_size or not self._texts:
            self._texts = self._lines(size)
            self._texts_size = size
            self._strips.clear()
        strip = self._strips.get(y)
        if strip is None:
            if y < len(self._texts):
                strip = self._draw(y, self._texts[y])
            else:
                strip = Strip.blank(size.width, self.visual_style.rich_style)
            self._strips[y] = strip
        return strip

    def _lines(self, size: Size) -> list[str]:
        """The label (cut with an ellipsis if too wide), then the rows of bars."""
        width, height = size
        if width <= 0 or height <= 0:
            return []
        label = self._label()
        if cell_len(label) > width:
            label = set_cell_size(label, width - 1) + "…"
        return [label, *bar_rows(self._history, width, height - 1)]

    def _draw(self, y: int, text: str) -> Strip:
        # The bars take the label's style under their own (as when they were appended to it),
        # and each line carries its offset in the text, as Content's rendering does (for selecting).
        style = self.visual_style.rich_style + self.get_component_rich_style("throughput--label", partial=True)
        if y:
            style += self.get_component_rich_style("throughput--bars", partial=True)
        return Strip([Segment(text, style + Style.from_meta({"offset": (0, y)}))], cell_len(text))
