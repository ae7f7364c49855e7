"""Which engine events deserve a toast (app.notify), and what it says.

Deaths, hangs, restarts and crash-loops pop up; routine events only go to the log panel. A
burst of the same kind (a broker outage kills every worker at once) becomes one toast, not
a wall of them. A crash-looping worker (died, restarted, died again every few seconds) toasts
once per :data:`PER_SLOT_INTERVAL`, unless the news gets worse (a crash-loop after deaths); what
was held back is summed up in one toast when the slot's interval ends (:class:`ToastLimiter`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from engine.snapshot import EngineEvent
from engine.text import printable

Severity = Literal["information", "warning", "error"]

BURST = 3  # more events than this of one kind in one refresh become a single summary toast
PER_SLOT_INTERVAL = 30.0  # seconds: at most one toast per slot this often (unless worse news)
_RANK = {"information": 0, "warning": 1, "error": 2}


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
            toasts.extend(
                Toast(style.title, printable(event.message), _severity(event, style), style.timeout) for event in group
            )
    return toasts


class ToastLimiter:
    """Lets at most one toast per slot through every ``interval`` seconds; sums up the rest.

    A toast more severe than the slot's last one still gets through (a crash-loop after the
    deaths that led to it). Events without a slot (a restart of all dead workers, autoscaling)
    are not limited: they are rare and the operator caused most of them.
    """

    def __init__(self, interval: float = PER_SLOT_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # slot -> (when, rank) of its last toast
        self._held: Counter[str] = Counter()  # slot -> toasts held back since then

    def toasts_for(self, events: Iterable[EngineEvent]) -> list[Toast]:
        """The toasts for one refresh's new events: those let through, then a summary of the
        held-back ones whose slot's interval has ended."""
        now = self._clock()
        summary = self._summary(now)
        toasts = toasts_for([event for event in events if self._admit(event, now)])
        return toasts + ([summary] if summary else [])

    def _admit(self, event: EngineEvent, now: float) -> bool:
        if not _deserves_toast(event) or event.slot is None:
            return _deserves_toast(event)
        rank = _RANK[_severity(event, _KINDS[event.kind])]
        last = self._last.get(event.slot)
        if last is not None and now - last[0] < self.interval and rank <= last[1]:
            self._held[event.slot] += 1
            return False
        self._last[event.slot] = (now, rank)
        return True

    def _summary(self, now: float) -> Toast | None:
        due = sorted(slot for slot in self._held if now - self._last[slot][0] >= self.interval)
        if not due:
            return None
        counts = {slot: self._held.pop(slot) for slot in due}
        for slot in due:  # the summary counts as the slot's toast: news no worse waits another interval
            self._last[slot] = (now, self._last[slot][1])
        total = sum(counts.values())
        listed = ", ".join(f"{slot} ({count})" for slot, count in counts.items())
        return Toast(f"{total} more notification{'s' if total != 1 else ''}",
                     f"Held back to keep the screen readable: {listed}. The events panel has them all.",
                     "warning")
