"""Text for the detail screens: handler times, histogram bounds, sizes and stamps.

Plain functions of plain values, like ``format.py`` (whose helpers they build on). Text from
workers is made safe by ``engine.text.printable``, the one way for every screen.
"""

from __future__ import annotations

import time

from . import format as fmt


def handler_time(seconds: float | None) -> str:
    """A handler's time in at most six characters: ``850µs``, ``1.2ms``, ``38ms``, ``2.50s``."""
    if seconds is None:
        return fmt.MISSING
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 0.01:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1e3:.0f}ms"
    if seconds < 10:
        return f"{seconds:.2f}s"
    return f"{seconds:.1f}s" if seconds < 100 else f"{seconds:.0f}s"


def bound(seconds: float) -> str:
    """A histogram bucket's bound as written: ``10µs``, ``3.15ms``, ``250ms``, ``2.5s``."""
    for unit, scale in (("µs", 1e-6), ("ms", 1e-3)):
        if seconds < scale * 1000:
            return f"{round(seconds / scale, 2):g}{unit}"
    return f"{round(seconds, 2):g}s"


def stamp(wall_time: float) -> str:
    """``2026-01-01 00:01:02 UTC``: a failure's time, which may be days old."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall_time))


def payload_size(kept: int, size: int) -> str:
    """``37 B`` or ``200 of 4,096 B`` when only the first bytes were kept."""
    return f"{size:,} B" if kept >= size else f"first {kept:,} of {size:,} B"
