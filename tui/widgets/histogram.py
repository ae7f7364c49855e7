"""The handler-time histogram as text: bars over the non-empty range of buckets, bounds beneath.

The buckets are :data:`engine.timings.BOUNDS` (ten a decade, 10 µs to 100 s); only the stretch
from the first to the last non-empty bucket is drawn, each bucket as wide as fits (up to three
columns), so a route whose handlers take 0.2 to 5 ms fills the space instead of a sliver of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.timings import BOUNDS

from ..detail_format import bound
from .throughput import bar_rows

MAX_BUCKET_WIDTH = 3


def bucket_range(counts: Sequence[int]) -> tuple[int, int] | None:
    """The first and last non-empty buckets, or None when nothing was counted."""
    filled = [index for index, count in enumerate(counts) if count]
    return (filled[0], filled[-1]) if filled else None


def _lower(index: int) -> str:
    return bound(BOUNDS[index - 1]) if index > 0 else "0"


def _upper(index: int) -> str:
    return bound(BOUNDS[index]) if index < len(BOUNDS) else f">{bound(BOUNDS[-1])}"


def histogram_lines(counts: Sequence[int], width: int, height: int) -> list[str]:
    """``height`` rows of bars, then the range's lower and upper bound under its ends.

    Adjacent buckets are added together when there are more than ``width`` of them.
    """
    span = bucket_range(counts)
    if span is None or width <= 0 or height <= 0:
        return []
    first, last = span
    shown = list(counts[first: last + 1])
    group = -(-len(shown) // width)  # buckets per column, when they do not fit one each
    if group > 1:
        shown = [sum(shown[i: i + group]) for i in range(0, len(shown), group)]
    per_bucket = max(1, min(MAX_BUCKET_WIDTH, width // len(shown)))
    columns = [float(count) for count in shown for _ in range(per_bucket)]
    rows = bar_rows(columns, len(columns), height)
    low, high = _lower(first), _upper(last)
    gap = max(1, len(columns) - len(low) - len(high))
    return [*rows, f"{low}{' ' * gap}{high}"]
