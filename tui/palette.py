"""The command palette (Ctrl+P) lists every dashboard command, as posting does for its actions."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .keys import palette_commands


class DashboardCommands(Provider):
    """One palette entry per dashboard command, run exactly as its key would run it."""

    async def discover(self) -> Hits:
        for command in palette_commands():
            yield DiscoveryHit(command.title, partial(self.app.run_action, command.action), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in palette_commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    partial(self.app.run_action, command.action),
                    help=command.help,
                )
