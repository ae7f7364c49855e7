"""SparkBars: a labelled sparkline of a worker's recent CPU or memory, bars anchored at zero.

Textual's Sparkline scales between the smallest and largest sample, so a steady 48.0 vs 48.3 MiB
would read as empty vs full; like the throughput chart, these bars start at zero. A history
longer than the widget is wide is compressed (the largest sample of each stretch: a spike stays
visible), so the whole span kept shows, oldest on the left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from .throughput import bar_rows


def compress(samples: Sequence[float], width: int) -> list[float]:
    """At most ``width`` samples: each the largest of an equal stretch of ``samples``."""
    if width <= 0:
        return []
    if len(samples) <= width:
        return list(samples)
    count = len(samples)
    return [max(samples[count * i // width: count * (i + 1) // width]) for i in range(width)]


class SparkBars(Widget):
    """A label line (what, now, peak), then bars of the history in the remaining lines."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"spark-bars--label", "spark-bars--bars"}
    DEFAULT_CSS = """
    SparkBars {
        height: 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._label = ""
        self._samples: tuple[float, ...] = ()

    def show(self, label: str, samples: Sequence[float]) -> None:
        samples = tuple(samples)
        if (label, samples) != (self._label, self._samples):
            self._label, self._samples = label, samples
            self.refresh()

    def render(self) -> Text:
        width, height = self.size
        text = Text(self._label, style=self.get_component_rich_style("spark-bars--label", partial=True),
                    no_wrap=True, overflow="ellipsis", end="")
        bars = self.get_component_rich_style("spark-bars--bars", partial=True)
        for row in bar_rows(compress(self._samples, width), width, height - 1):
            text.append("\n")
            text.append(row, style=bars)
        return text
