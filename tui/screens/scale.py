"""ScaleScreen: ask how many workers a route should have (`=`), and check the answer.

`+` and `-` move a pool one worker at a time; going from 2 to 12 is quicker typed. The answer
must be a whole number of at least one (stopping every worker is `s`); the dialog says what is
wrong and stays open until it is right or the operator presses Esc.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ..keys import MIN_WORKERS

WHAT_TO_TYPE = f"type a whole number of workers, at least {MIN_WORKERS}"


def parse_count(text: str) -> int | str:
    """The worker count typed, or why it is not one (a sentence to show)."""
    text = text.strip()
    if not text:
        return f"Nothing typed: {WHAT_TO_TYPE} (Esc cancels)."
    try:
        count = int(text)
    except ValueError:
        return f"{text!r} is not a whole number: {WHAT_TO_TYPE}."
    if count < MIN_WORKERS:
        return f"A pool needs at least {MIN_WORKERS} worker; to stop every worker, press s instead."
    return count


class ScaleScreen(ModalScreen[int | None]):
    """Dismisses with the count typed (Enter), or None (Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="scale.cancel")]
    AUTO_FOCUS = "#scale-count"

    def __init__(self, topic: str, current: int) -> None:
        super().__init__()
        self.topic = topic
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="scale-dialog"):
            yield Static(f"Scale {self.topic}", id="scale-title", markup=False)  # a long route wraps
            yield Static(f"It has {self.current} worker{'s' if self.current != 1 else ''} now. How many should it "
                         "have? Growing starts workers at once; shrinking drains the idlest first.",
                         id="scale-message", markup=False)
            count = Input(str(self.current), type="integer", id="scale-count")
            count.cursor_blink = False  # a steady cursor: the same picture every time it is taken
            yield count
            yield Static("", id="scale-error", markup=False)
            yield Label("Enter scales, Esc cancels", id="scale-hint")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#scale-error", Static).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        count = parse_count(event.value)
        if isinstance(count, str):
            self.query_one("#scale-error", Static).update(count)
            return
        self.dismiss(count)

    def action_cancel(self) -> None:
        self.dismiss(None)
