"""FailureExampleView: the latest failure of a group: when, which worker, topic, payload, traceback.

Everything here came from a handler or over the network: the payload shows as its safe preview
(``FailureExample.preview``: ``\\xNN`` for every control character and invalid byte) and the
traceback with its control characters escaped, both as plain Text (never as markup), so that
neither an escape sequence nor a ``[bold]`` in a message changes what the screen shows.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.details import FailureGroup

from .. import format as fmt
from ..detail_format import payload_size, printable, stamp

_LABEL = 10


def example_text(group: FailureGroup | None, label: Style | str = "", heading: Style | str = "") -> Text:
    """The group's latest example as lines of text (the traceback last: it is the longest)."""
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
        text.append("\n" + " " * _LABEL)
        text.append(example.preview)
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

    def compose(self) -> ComposeResult:
        yield Static(id="failure-example-text")

    def show(self, group: FailureGroup | None) -> None:
        if self._shown and group == self._group:
            return
        same_example = self._group is not None and group is not None and group.exception == self._group.exception
        self._group, self._shown = group, True
        style = self.get_component_rich_style
        text = example_text(group, style("failure-example--label", partial=True),
                            style("failure-example--heading", partial=True))
        self.query_one(Static).update(text)
        if not same_example:
            self.scroll_home(animate=False)

    @property
    def group(self) -> FailureGroup | None:
        return self._group
