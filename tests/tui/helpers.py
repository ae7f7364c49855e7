"""Small tools for pilot tests: wait for a condition, record notifications."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from textual.app import App
from textual.pilot import Pilot


async def wait_until(pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 10.0,
                     what: str = "the condition") -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.02)


async def settle(pilot: Pilot[object]) -> None:
    """Wait for the app's workers (engine calls, refreshes) and the messages they posted.

    A worker that failed counts as finished: failures are the app's to report, and the tests'
    to check.
    """
    await asyncio.gather(*(worker.wait() for worker in list(pilot.app.workers)), return_exceptions=True)
    await pilot.pause()


@dataclass
class Notifications:
    """Every app.notify() call: (title, message, severity)."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def record(cls, app: App[object]) -> Notifications:
        recorder = cls()
        original = app.notify

        def notify(message: str, *, title: str = "", severity: str = "information", **options: object) -> None:
            recorder.seen.append((title, message, severity))
            original(message, title=title, severity=severity, **options)  # type: ignore[arg-type]

        app.notify = notify  # type: ignore[method-assign]
        return recorder

    @property
    def titles(self) -> list[str]:
        return [title for title, _, _ in self.seen]

    def with_severity(self, severity: str) -> list[tuple[str, str, str]]:
        return [seen for seen in self.seen if seen[2] == severity]
