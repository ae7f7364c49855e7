"""FailuresTable: a route's failures grouped by cause (row key = the exception type), with counts."""

from __future__ import annotations

from engine.details import FailureGroup
from engine.text import printable

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable

COLUMNS: tuple[ColumnSpec[FailureGroup], ...] = (
    # The cause and its count always show (the cause shortened when the room is short).
    ColumnSpec("cause", "cause", lambda g: printable(g.exception), min_width=12, max_width=40),
    ColumnSpec("count", "count", lambda g: fmt.count(g.count), lambda g: g.count, "right"),
    ColumnSpec("latest", "latest", lambda g: fmt.clock(g.latest.time), lambda g: g.latest.time, "right",
               priority=1),
)


class FailuresTable(KeyedTable[FailureGroup]):
    """Sorted as the engine reports them (the most recent first) unless sorted by a column."""

    KEY_COLUMN = "cause"

    def column_specs(self) -> tuple[ColumnSpec[FailureGroup], ...]:
        return COLUMNS

    def key_of(self, item: FailureGroup) -> str:
        return item.exception
