"""ConfirmScreen: a yes/no question before a drastic action. Cancel has the focus."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True when confirmed (``y`` or the confirm button), False otherwise.

    The Cancel button has the focus, so a reflexive Enter does nothing drastic.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes", id="confirm.yes"),
        Binding("n,escape", "cancel", "No", id="confirm.no"),
    ]
    AUTO_FOCUS = "#cancel"

    def __init__(self, title: str, message: str, confirm_label: str) -> None:
        super().__init__()
        self.question = title
        self.message = message
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # Plain text: a question may name a worker, whose route may contain "[".
            yield Label(self.question, id="question", markup=False)
            yield Static(self.message, id="message", markup=False)
            with Horizontal(id="buttons"):
                yield Button(f"{self.confirm_label} (y)", variant="error", id="confirm")
                yield Button("Cancel (n)", variant="primary", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
