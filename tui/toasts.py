"""Which engine events deserve a toast (app.notify), and what it says.

Deaths, hangs, restarts and crash-loops pop up; routine events only go to the log panel. A
burst of the same kind (a broker outage kills every worker at once) becomes one toast, not
a wall of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from engine.snapshot import EngineEvent

Severity = Literal["information", "warning", "error"]

BURST = 3  # more events than this of one kind in one refresh become a single summary toast


@dataclass(frozen=True)
class Toast:
    title: str
    message: str
    severity: Severity
    timeout: float | None = None  # None: Textual's default


@dataclass(frozen=True)
class _Kind:
    title: str
    severity: Severity
    timeout: float | None = None


_KINDS = {
    "exited": _Kind("Worker died", "warning"),
    "hung": _Kind("Worker hung", "warning"),
    "restarted": _Kind("Worker restarted", "information"),
    "autoscale": _Kind("Autoscale", "information"),
    # A crash-looping worker waits for the operator: keep the toast up longer.
    "crash-loop": _Kind("Crash loop", "error", timeout=15),
}


def _deserves_toast(event: EngineEvent) -> bool:
    if event.kind not in _KINDS:
        return False
    if event.kind in ("restarted", "autoscale"):
        return True
    # The engine marks the bad news at WARNING or above; the rest of these kinds is routine
    # (a worker exiting because it was asked to, a crash-looping slot's follow-up notes).
    return event.level >= logging.WARNING


def _severity(event: EngineEvent, style: _Kind) -> Severity:
    """An informational kind's event marked WARNING (an autoscaler's step back) shows as one."""
    if style.severity == "information" and event.level >= logging.WARNING:
        return "warning"
    return style.severity


def toasts_for(events: Iterable[EngineEvent]) -> list[Toast]:
    """The toasts for one refresh's new events, in the order their kinds first appeared."""
    by_kind: dict[str, list[EngineEvent]] = {}
    for event in events:
        if _deserves_toast(event):
            by_kind.setdefault(event.kind, []).append(event)
    toasts = []
    for kind, group in by_kind.items():
        style = _KINDS[kind]
        if len(group) > BURST:
            slots = ", ".join(sorted({e.slot for e in group if e.slot}))
            message = f"{len(group)} workers: {slots}" if slots else f"{len(group)} events"
            toasts.append(Toast(f"{style.title} ({len(group)})", message, style.severity, style.timeout))
        else:
            toasts.extend(Toast(style.title, event.message, _severity(event, style), style.timeout) for event in group)
    return toasts
