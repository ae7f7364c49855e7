"""HelpScreen: every key and what it does, with the keys the user's keymap gives them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

# (keys, what they do): the keys as the user would press them now.
HelpRow = tuple[str, str]

NOTES = (
    "Scaling acts on the selected route: the row under the cursor in the routes table, or the route of "
    "the worker under the cursor in the workers table, whichever table you used last (the first shared "
    "route when neither has a selection). Only shared routes scale; the main worker serves the others.",
    "Dead workers (backoff) show in the error colour and come back by themselves; crash-looping workers "
    "wait for you: press r.",
    "Tab moves between the tables and the log; arrows move the cursor; Ctrl+P opens the command palette.",
)


class HelpScreen(ModalScreen[None]):
    """The keys of the dashboard; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
    ]

    def __init__(self, rows: Sequence[HelpRow], refresh_interval: float | None) -> None:
        super().__init__()
        self.rows = list(rows)
        self.refresh_interval = refresh_interval

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Label("routemq-dash keys", id="help-title")
            with Grid(id="help-keys"):
                for keys, text in self.rows:
                    yield Label(keys, classes="help-key")
                    yield Static(text, classes="help-text", markup=False)
            for note in self._notes():
                yield Static(note, classes="help-note")
            yield Label("Esc, q or ? closes this help", id="help-close-hint")

    def _notes(self) -> list[str]:
        if self.refresh_interval is None:
            refresh = "The tables refresh when asked (no timer)."
        else:
            refresh = (
                f"The tables refresh every {self.refresh_interval:g} s (routemq-dash --refresh SECONDS); "
                "rows keep their place and the cursor stays on its worker."
            )
        return [*NOTES, refresh]

    def action_close(self) -> None:
        self.dismiss(None)
