"""HeldMessages: the messages a worker's handlers hold right now, the oldest first, with their age.

A message held for long is the first suspect when a worker stops answering: it is what the
supervisor charges a death to (see the poison ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from engine.details import HeldMessage
from engine.text import printable

from .. import format as fmt

_AGE = 7


def held_lines(held: Sequence[HeldMessage], height: int) -> list[str]:
    """A title line, then one line per message (age, topic) as far as ``height`` allows."""
    if not held:
        return ["holds no message"]
    title = f"holds {len(held)} message{'s' if len(held) != 1 else ''}"
    room = max(height - 1, 0)
    shown = held if len(held) <= room else held[: max(room - 1, 0)]
    lines = [title] + [f"{fmt.age(message.age):>{_AGE}}  {printable(message.topic)}" for message in shown]
    if len(shown) < len(held) and room:
        lines.append(f"{'':>{_AGE}}  … {len(held) - len(shown)} more")
    return lines


class HeldMessages(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"held-messages--title"}
    DEFAULT_CSS = """
    HeldMessages {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._held: tuple[HeldMessage, ...] = ()

    def show(self, held: Sequence[HeldMessage]) -> None:
        held = tuple(held)
        if held != self._held:
            self._held = held
            self.refresh()

    def render(self) -> Text:
        title, *rest = held_lines(self._held, self.size.height)
        text = Text(title, style=self.get_component_rich_style("held-messages--title", partial=True),
                    no_wrap=True, overflow="ellipsis", end="")
        for line in rest:
            text.append("\n" + line)
        return text
