"""SparkBars: a labelled sparkline of a worker's recent CPU or memory.

CPU bars start at zero, like the throughput chart. Memory bars would be a solid block from zero
(45 to 48 MiB is nearly full all along), so they rise from the smallest sample, which the label
states with the largest ("45.0-48.2 MiB"): the lowest bar is a sliver, the peak is full, a flat
history is a row of slivers. So that a wobble of a few pages does not fill the chart (Textual's
Sparkline would draw 48.0 vs 48.1 MiB as empty vs full), the bars' top is at least ``min_span``
above their floor. A history longer than the widget is wide is compressed (the largest sample of
each stretch: a spike stays visible), so the whole span kept shows, oldest on the left.
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

    def __init__(self, *, from_minimum: bool = False, min_span: float = 0.0, id: str | None = None,
                 classes: str | None = None) -> None:
        """``from_minimum``: bars rise from the smallest sample (say so in the label), their top at
        least ``min_span`` above it; else from zero."""
        super().__init__(id=id, classes=classes)
        self.from_minimum = from_minimum
        self.min_span = min_span
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
        floor = min(self._samples, default=0.0) if self.from_minimum else 0.0
        ceiling = floor + self.min_span if self.from_minimum else 0.0
        for row in bar_rows(compress(self._samples, width), width, height - 1, floor=floor, ceiling=ceiling):
            text.append("\n")
            text.append(row, style=bars)
        return text
