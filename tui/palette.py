"""The command palette (Ctrl+P) lists every dashboard command, as posting does for its actions."""

from __future__ import annotations

from functools import partial

from textual.actions import parse
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from .keys import palette_commands


class DashboardCommands(Provider):
    """One palette entry per dashboard command, run exactly as its key would run it: by the screen
    the palette was opened on when that screen carries the command out itself (a manager's screen
    steers that manager), else by the app."""

    def _target(self, action: str) -> DOMNode:
        _, name, _ = parse(action)
        return self.screen if hasattr(self.screen, f"action_{name}") else self.app

    async def _run(self, action: str) -> None:
        await self.app.run_action(action, self._target(action))

    async def discover(self) -> Hits:
        for command in palette_commands():
            yield DiscoveryHit(command.title, partial(self._run, command.action), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in palette_commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    partial(self._run, command.action),
                    help=command.help,
                )
