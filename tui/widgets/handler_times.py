"""HandlerTimes: a route's handler time per message: quantiles and a small histogram.

Two rows of p50, p90, p99 and max (the last minute, since start) and their counts, then the
histogram of the last minute's buckets (since start when the last minute saw no message).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from engine.timings import Timings

from .. import format as fmt
from ..detail_format import handler_time
from .histogram import histogram_lines

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_CELL = 7
_COUNT = 11  # room for "1,234,567" and a gap
TABLE_LINES = 3  # the header and two rows


def quantile_row(label: str, timings: Timings) -> str:
    times = [handler_time(timings.quantile(q)) for _, q in QUANTILES] + [handler_time(timings.max)]
    return f"{label:<6}" + "".join(f"{t:>{_CELL}}" for t in times) + f"{fmt.count(timings.count):>{_COUNT}}"


def header_row() -> str:
    names = [name for name, _ in QUANTILES] + ["max"]
    return " " * 6 + "".join(f"{n:>{_CELL}}" for n in names) + f"{'count':>{_COUNT}}"


class HandlerTimes(Widget):
    """The quantile table over the histogram; the histogram takes the lines left."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"handler-times--header", "handler-times--bars",
                                             "handler-times--axis"}
    DEFAULT_CSS = """
    HandlerTimes {
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._timings = (Timings(), Timings())

    def show(self, minute: Timings, total: Timings) -> None:
        if (minute, total) != self._timings:
            self._timings = (minute, total)
            self.refresh()

    def render(self) -> Text:
        minute, total = self._timings
        style = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="crop", end="")
        text.append(header_row(), style=style("handler-times--header", partial=True))
        text.append("\n" + quantile_row("1 min", minute))
        text.append("\n" + quantile_row("total", total))
        timings, span = (minute, "last minute") if minute.count else (total, "since start")
        width, height = self.size
        lines = histogram_lines(timings.counts, width, height - TABLE_LINES - 1)
        if not lines:
            return text
        for row in lines[:-1]:
            text.append("\n" + row, style=style("handler-times--bars", partial=True))
        axis = lines[-1]
        if len(axis) + len(span) + 3 <= width:
            axis += f"   {span}"
        text.append("\n" + axis, style=style("handler-times--axis", partial=True))
        return text
