"""HelpScreen: every key and what it does (with the keys the user's keymap gives them), and what
every column of the two tables says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from .. import keys

# (keys, what they do): the keys as the user would press them now; or (column, what it says).
HelpRow = tuple[str, str]


def help_rows(app: App[Any]) -> list[HelpRow]:
    """Every command's keys and help, one row per action, with the keys as bound now on the
    active screen, so that a user's keymap shows here."""
    keys_by_id: dict[str, list[str]] = {}
    for active in app.screen.active_bindings.values():
        binding = active.binding
        if binding.id in keys.COMMAND_IDS:
            keys_by_id.setdefault(binding.id, []).append(app.get_key_display(binding))
    keys_by_action: dict[str, list[str]] = {}
    for command in keys.COMMANDS:  # in the table's order: q before Ctrl+C
        shown = keys_by_id.get(command.id) or [command.key_display or command.key]
        keys_by_action.setdefault(command.action, []).extend(shown)
    return [
        (" ".join(dict.fromkeys(keys_by_action[command.action])), command.help)
        for command in keys.palette_commands()  # one row per action
    ]

# Keys of the tables and screens rather than commands of the app (no keymap id, no palette
# entry): listed first, the way into and out of the worker and route screens.
NAVIGATION: tuple[HelpRow, ...] = (
    ("Enter", "Open the screen of the worker or route under the cursor: a worker's log, lifecycle, CPU "
              "and memory; a route's handler times, throughput, failures and pool (Enter on a worker of "
              "the pool opens that worker's screen). On the fleet screen: the manager's workers and routes."),
    ("Esc", "Go back from a worker, route, fleet or manager screen, to the row you were on; close a dialog or "
            "this help; clear the filter of the selected table."),
)

NOTES = (
    "Scaling acts on the selected route: the row under the cursor in the routes table, or the route of "
    "the worker under the cursor in the workers table, whichever table you used last (the first shared "
    "route when neither has a selection). Only shared routes scale; the main worker serves the others.",
    "Dead workers (backoff) show in the error colour and come back by themselves; crash-looping workers "
    "wait for you: press r.",
    "R, K and = act on the row under the cursor: R and K on the worker in the workers table, = on the "
    "route selected as for scaling. Sorting by a value that moves every second (msg/s, busy, cpu, "
    "memory, and the ages: beat, last msg, uptime) keeps rows whose values are close in their place, so "
    "rows move only when they clearly pass each other.",
    "/ filters the selected table as you type (the table's border shows the filter and how many rows "
    "match); Enter keeps it, Esc clears it. w narrows the events panel to warnings and errors, l to the "
    "selected worker's lines (it follows the cursor); the panel's title says what it shows. Lifecycle "
    "events are kept apart from log lines, so a flood of log lines never pushes a death out.",
    "Columns that do not fit the terminal's width are left out, the least needed first (the tables "
    "below list them in the order they appear as the terminal widens); long routes and exit causes are "
    "shortened with an ellipsis. When a table is still wider than the terminal, slot and route stay in "
    "place and the other columns scroll sideways (arrows, shift+wheel).",
    "F shows the fleet: every manager of the share group that publishes its status on the broker. On a "
    "manager's screen, +, -, A, r, R, s and a act on that manager through signed commands (FLEET_CONTROL_KEY "
    "on both sides), and a toast gives its reply.",
    "Tab moves between the tables and the log; arrows move the cursor; Ctrl+P opens the command palette.",
)


class HelpScreen(ModalScreen[None]):
    """The keys of the dashboard; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
    ]

    def __init__(self, rows: Sequence[HelpRow], refresh_interval: float | None,
                 columns: Sequence[tuple[str, Sequence[HelpRow]]] = ()) -> None:
        super().__init__()
        self.rows = [*NAVIGATION, *rows]
        self.refresh_interval = refresh_interval
        self.columns = [(table, list(table_columns)) for table, table_columns in columns]  # (table, its columns)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Label("routemq-dash keys", id="help-title")
            with Grid(id="help-keys"):
                for keys, text in self.rows:
                    yield Label(keys, classes="help-key")
                    yield Static(text, classes="help-text", markup=False)
            for note in self._notes():
                yield Static(note, classes="help-note")
            for table, columns in self.columns:
                yield Label(f"{table} table columns", classes="help-section")
                with Grid(classes="help-columns"):
                    for label, text in columns:
                        yield Label(label, classes="help-key", markup=False)
                        yield Static(text, classes="help-text", markup=False)
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
