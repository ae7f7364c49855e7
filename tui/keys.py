"""The dashboard's commands, described once: keys, footer labels, help text, palette entries.

Each command becomes a :class:`~textual.binding.Binding` with an ``id`` (so users can remap it
with a keymap, ``App.set_keymap({"scale-up": "u"})``), a line on the help screen and an entry
in the command palette. Keeping them in one table keeps the three in step.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from textual.binding import Binding

MIN_WORKERS = 1  # `-` never scales a shared route below this; stop all (`s`) stops everything
AUTOSCALE_DEFAULT_MAX = 4  # `A` on a route with no range of its own: 1 to this (or twice its size)


@dataclass(frozen=True)
class KeyCommand:
    id: str  # binding id, the name used in keymaps
    key: str  # default key(s), Textual key names
    action: str  # app action it runs
    label: str  # short, for the footer
    title: str  # for the help screen and the command palette
    help: str  # one sentence: what it does, exactly
    key_display: str | None = None
    show: bool = True  # in the footer
    priority: bool = False


COMMANDS: tuple[KeyCommand, ...] = (
    KeyCommand(
        "scale-up", "plus", "scale_up", "More", "Scale up",
        "Add one worker to the selected shared route.", key_display="+",
    ),
    KeyCommand(
        "scale-down", "minus", "scale_down", "Fewer", "Scale down",
        f"Remove one worker from the selected shared route (never below {MIN_WORKERS}); "
        "the removed worker drains first.",
        key_display="-",
    ),
    KeyCommand(
        "autoscale", "A", "toggle_autoscale", "Auto", "Toggle autoscaling",
        "Turn autoscaling of the selected shared route on (its range from the code or --autoscale, "
        f"else 1 to {AUTOSCALE_DEFAULT_MAX} or twice its size) or off (it keeps its size).",
    ),
    KeyCommand(
        "restart-dead", "r", "restart_dead", "Restart", "Restart dead workers",
        "Restart every worker waiting in backoff or stuck in crash-loop, now.",
    ),
    KeyCommand(
        "stop-all", "s", "stop_all", "Stop", "Stop all workers",
        "Stop every worker gracefully, after you confirm (y / n).",
    ),
    KeyCommand(
        "start-all", "a", "start_all", "Start", "Start all workers",
        "Start every pool at its desired size.",
    ),
    KeyCommand(
        "restart-worker", "R", "restart_selected", "Restart it", "Restart the selected worker",
        "Restart the worker under the cursor gracefully: it finishes what it holds, then a new process "
        "takes its place.", show=False,
    ),
    KeyCommand(
        "kill-worker", "K", "kill_selected", "Kill it", "Kill the selected worker",
        "SIGKILL the worker under the cursor, after you confirm (y / n); what it held comes back from its "
        "session and the slot restarts.", show=False,
    ),
    KeyCommand(
        "scale-to", "equals_sign", "scale_to", "Scale to", "Scale the selected route to a number",
        "Ask how many workers the selected shared route should have, and scale it to that.",
        key_display="=", show=False,
    ),
    KeyCommand(
        "cycle-sort", "o", "cycle_sort", "Sort", "Sort by next column",
        "Sort the selected table by its next column (click a header to sort by it; again to reverse).",
    ),
    KeyCommand(
        "reverse-sort", "O", "reverse_sort", "Reverse", "Reverse sort order",
        "Reverse the sort order of the selected table.", show=False,
    ),
    # htop's direct sort keys, for what operators sort by most: biggest first, again to reverse.
    KeyCommand(
        "sort-cpu", "c", "sort_biggest_first('cpu')", "CPU", "Sort by CPU",
        "Sort the workers by CPU, busiest first (again: the other way round).", show=False,
    ),
    KeyCommand(
        "sort-memory", "m", "sort_biggest_first('memory')", "Memory", "Sort by memory",
        "Sort the workers by memory, largest first (again: the other way round).", show=False,
    ),
    KeyCommand(
        "sort-failed", "f", "sort_biggest_first('failed')", "Failed", "Sort by failed messages",
        "Sort the selected table by failed messages, most first (again: the other way round).", show=False,
    ),
    KeyCommand(
        "sort-restarts", "t", "sort_biggest_first('restarts')", "Restarts", "Sort by restarts",
        "Sort the workers by restarts, most first (again: the other way round).", show=False,
    ),
    KeyCommand(
        "events-warnings", "w", "events_warnings", "Warnings", "Events: warnings and errors only",
        "Show only warnings and errors in the events panel (again: everything).", show=False,
    ),
    KeyCommand(
        "events-worker", "l", "events_worker", "Its log", "Events: the selected worker's only",
        "Show only the selected worker's lines in the events panel; it follows the cursor "
        "(again: every worker's).", show=False,
    ),
    KeyCommand("help", "question_mark", "help", "Help", "Help", "Show this help.", key_display="?"),
    KeyCommand(
        "fleet", "F", "fleet", "Fleet", "Fleet: every manager of the group",
        "Show every manager of the share group that publishes its status on the broker; Enter on one shows "
        "its workers and routes, which the same keys steer through signed commands (FLEET_CONTROL_KEY).",
    ),
    # After help: on an 80-column footer, ? must stay in sight.
    KeyCommand(
        "filter", "slash", "filter", "Filter", "Filter the selected table",
        "Show only the rows of the selected table whose slot, route or state contains what you type "
        "(Enter keeps the filter, Esc clears it).", key_display="/",
    ),
    KeyCommand(
        "quit", "q", "quit", "Quit", "Quit",
        "Stop every worker gracefully (the screen says so while it waits), then leave.",
    ),
    # Ctrl+C reaches us as a key (the terminal is in raw mode). Textual 8 binds it to a hint
    # about how to quit; an operator pressing it means "get me out", cleanly.
    KeyCommand(
        "interrupt", "ctrl+c", "quit", "Quit", "Quit (Ctrl+C)",
        "Same as q: stop every worker gracefully, then leave.", show=False, priority=True,
    ),
)


COMMAND_IDS = frozenset(command.id for command in COMMANDS)


def bindings(ids: Collection[str] | None = None) -> list[Binding]:
    """The app's BINDINGS, built from :data:`COMMANDS`; with ``ids``, those commands only (a screen
    that carries some of them out its own way binds them under the same ids, so that a keymap, the
    footer and the help stay one)."""
    return [
        Binding(
            command.key,
            command.action,
            command.label,
            show=command.show,
            key_display=command.key_display,
            priority=command.priority,
            tooltip=command.help,
            id=command.id,
        )
        for command in COMMANDS
        if ids is None or command.id in ids
    ]


def palette_commands() -> list[KeyCommand]:
    """The commands worth offering in the command palette (one entry per action)."""
    seen: set[str] = set()
    unique = []
    for command in COMMANDS:
        if command.action not in seen:
            seen.add(command.action)
            unique.append(command)
    return unique
