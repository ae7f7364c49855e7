"""The messages a TableView sends: a row highlighted or selected, a header clicked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from .table_view import TableView


class RowMessage(Message):
    """About a row of a table: its key."""

    def __init__(self, table: TableView, key: str) -> None:
        super().__init__()
        self.table = table
        self.key = key

    @property
    def control(self) -> TableView:
        return self.table


class RowHighlighted(RowMessage, namespace="table_view"):
    """The cursor moved to another row (not sent when its row only moved)."""


class RowSelected(RowMessage, namespace="table_view"):
    """Enter on the cursor's row, or a click on it."""


class HeaderSelected(Message, namespace="table_view"):
    """A click on a column's header."""

    def __init__(self, table: TableView, column_key: str) -> None:
        super().__init__()
        self.table = table
        self.column_key = column_key

    @property
    def control(self) -> TableView:
        return self.table
