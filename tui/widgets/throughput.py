"""Throughput: messages per second over time, as bars anchored at zero.

Textual's Sparkline scales between the smallest and largest sample, which makes 100 vs 101
msg/s look like empty vs full; an operator reading "is traffic flowing?" needs a zero baseline.
The history itself is kept (bounded) by the app; this widget only draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from .. import format as fmt

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def bar_rows(samples: Sequence[float], width: int, height: int) -> list[str]:
    """Rows of a bar chart (top row first), one column per sample, newest on the right.

    Bars are scaled to the largest visible sample; a non-zero sample always shows at least a
    sliver, so that a trickle is distinguishable from silence.
    """
    if width <= 0 or height <= 0:
        return []
    visible = list(samples)[-width:]
    peak = max(visible, default=0.0)
    levels = []
    for sample in visible:
        eighths = round(sample / peak * height * 8) if peak > 0 else 0
        levels.append(max(eighths, 1) if sample > 0 else 0)
    padding = width - len(visible)
    rows = []
    for row in reversed(range(height)):  # top row first
        cells = (_EIGHTHS[min(max(level - row * 8, 0), 8)] for level in levels)
        rows.append(" " * padding + "".join(cells))
    return rows


class Throughput(Widget):
    """A label with the current and peak rate over bars of the recent history."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"throughput--bars", "throughput--label"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._history: tuple[float, ...] = ()

    def show(self, history: Sequence[float]) -> None:
        self._history = tuple(history)
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        current = self._history[-1] if self._history else 0.0
        peak = max(self._history, default=0.0)
        text = Text(
            f"{fmt.rate(current)} msg/s  peak {fmt.rate(peak)}",
            style=self.get_component_rich_style("throughput--label", partial=True),
            no_wrap=True,
            overflow="ellipsis",
            end="",
        )
        bars = self.get_component_rich_style("throughput--bars", partial=True)
        for row in bar_rows(self._history, width, height - 1):
            text.append("\n")
            text.append(row, style=bars)
        return text
