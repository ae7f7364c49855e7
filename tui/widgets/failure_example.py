"""FailureExampleView: the latest failure of a group: when, which worker, topic, payload, traceback.

Everything here came from a handler or over the network: the payload shows as its safe preview
(``FailureExample.preview``: ``\\xNN`` for every control character and invalid byte) and the
traceback with its control characters escaped, both as plain Text (never as markup), so that
neither an escape sequence nor a ``[bold]`` in a message changes what the screen shows.

The preview of a binary payload is one long word of escapes; folded at the edge it would read
``\\x`` at the end of a line and ``1f`` at the start of the next. It is cut into lines here, at the
width the view has, only ever between two characters of the payload (an escape is one).
"""

from __future__ import annotations

import re
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.events import Resize
from textual.widgets import Static

from engine.details import FailureGroup
from engine.text import printable

from .. import format as fmt
from ..detail_format import payload_size, stamp

_LABEL = 10
# One character of the payload as the preview shows it: an escape (\x1b, \u202e, \n) or a character.
_PREVIEW_CHARACTER = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)|.", re.DOTALL)


def preview_lines(preview: str, width: int) -> list[str]:
    """``preview`` in lines of at most ``width`` cells, cut only between two of its characters,
    never inside an escape such as ``\\x1f`` (a line holds at least one, however narrow)."""
    lines: list[str] = []
    line: list[str] = []
    used = 0
    for match in _PREVIEW_CHARACTER.finditer(preview):
        token = match.group()
        cells = cell_len(token)
        if line and used + cells > width:
            lines.append("".join(line))
            line, used = [], 0
        line.append(token)
        used += cells
    if line:
        lines.append("".join(line))
    return lines


def example_text(group: FailureGroup | None, label: Style | str = "", heading: Style | str = "",
                 width: int | None = None) -> Text:
    """The group's latest example as lines of text (the traceback last: it is the longest).

    With the ``width`` it will be shown at, the payload's preview is cut into lines that fit,
    under one another, never inside an escape; without, it is one line.
    """
    if group is None:
        return Text("No failure since the dashboard started.", style=label)
    example = group.latest
    text = Text(overflow="fold", end="")
    times = "once" if group.count == 1 else f"{fmt.count(group.count)} times"
    text.append(f"{printable(group.exception)}, {times}; the latest:", style=heading)
    fields = (
        ("time", stamp(example.time)),
        ("worker", printable(example.slot)),
        ("topic", printable(example.topic)),
        ("payload", payload_size(len(example.payload), example.payload_size)),
    )
    for name, value in fields:
        text.append(f"\n{name:<{_LABEL}}", style=label)
        text.append(value)
    if example.payload:
        preview = example.preview
        lines = [preview] if width is None else preview_lines(preview, max(width - _LABEL, 1))
        for line in lines:
            text.append("\n" + " " * _LABEL)
            text.append(line)
    text.append("\ntraceback", style=label)
    text.append("\n" + (printable(example.traceback.rstrip("\n")) or fmt.MISSING))
    return text


class FailureExampleView(VerticalScroll):
    """Scrolls (a long traceback); keeps its place while the same example stays selected."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"failure-example--label", "failure-example--heading"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._group: FailureGroup | None = None
        self._shown = False
        self._width = 0  # the width the text was written for

    def compose(self) -> ComposeResult:
        yield Static(id="failure-example-text")

    def show(self, group: FailureGroup | None) -> None:
        if self._shown and group == self._group:
            return
        same_example = self._group is not None and group is not None and group.exception == self._group.exception
        self._group, self._shown = group, True
        self._write()
        if not same_example:
            self.scroll_home(animate=False)

    def _write(self) -> None:
        style = self.get_component_rich_style
        width = self.scrollable_content_region.width  # the scrollbar's gutter is kept: see detail.tcss
        self._width = width
        text = example_text(self._group, style("failure-example--label", partial=True),
                            style("failure-example--heading", partial=True), width or None)
        self.query_one(Static).update(text)

    def on_resize(self, event: Resize) -> None:
        if self._shown and self.scrollable_content_region.width != self._width:
            self._write()  # the preview's lines were cut for another width

    @property
    def group(self) -> FailureGroup | None:
        return self._group
