"""Human-readable numbers for the dashboard: durations, sizes, rates, counts.

Plain functions of plain values, so the tables render the same text for the same snapshot.
"""

from __future__ import annotations

import time

MISSING = "\u2013"  # an en dash, shown where a value is unknown (no process, no message yet)


def duration(seconds: float | None) -> str:
    """``45s``, ``12m 05s``, ``3h 02m``, ``4d 07h``: two units at most, so columns stay narrow."""
    if seconds is None:
        return MISSING
    whole = int(max(seconds, 0))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def age(seconds: float | None) -> str:
    """How long ago: ``0.4s``, ``12s``, ``3m 10s``; the dash when nothing happened yet."""
    if seconds is None:
        return MISSING
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    return duration(seconds)


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(num_bytes: int | None) -> str:
    """``512 B``, ``48.2 MiB``, ``1.5 GiB`` (binary units, as RSS is counted in pages)."""
    if num_bytes is None:
        return MISSING
    value = float(num_bytes)
    for unit in _BYTE_UNITS:
        if value < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def rate(per_second: float) -> str:
    """Messages per second: ``0``, ``7.5``, ``152``, ``12.3k``."""
    if per_second <= 0:
        return "0"
    if per_second < 100:
        return f"{per_second:.1f}"
    if per_second < 10_000:
        return f"{per_second:.0f}"
    if per_second < 10_000_000:
        return f"{per_second / 1000:.1f}k"
    return f"{per_second / 1_000_000:.1f}M"


def count(value: int) -> str:
    """A counter with thousands separators: ``18,234``."""
    return f"{value:,}"


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def share(fraction: float | None) -> str:
    """A 0..1 fraction as a whole percentage: ``0``, ``42``, ``100``."""
    return MISSING if fraction is None else f"{fraction * 100:.0f}"


def millis(seconds: float | None) -> str:
    """Seconds shown in milliseconds: ``0.42``, ``12.5``, ``340``, ``12,400``; the dash when unknown."""
    if seconds is None:
        return MISSING
    ms = max(seconds, 0.0) * 1000
    if ms < 1:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:,.0f}"


def autoscale_mode(autoscale_min: int | None, autoscale_max: int | None, held_at: int | None) -> str:
    """``auto 1-8``, ``auto 1-8 held 2``, or ``manual``."""
    if autoscale_min is None:
        return "manual"
    text = f"auto {autoscale_min}-{autoscale_max}"
    return text if held_at is None else f"{text} held {held_at}"


def clock(wall_time: float) -> str:
    """``HH:MM:SS`` in UTC: the same text on every machine, whatever its time zone."""
    return time.strftime("%H:%M:%S", time.gmtime(wall_time))


def short_clock(wall_time: float) -> str:
    """``HH:MM`` in UTC, where the width is short (the compact events panel)."""
    return time.strftime("%H:%M", time.gmtime(wall_time))
