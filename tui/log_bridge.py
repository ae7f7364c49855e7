"""Send the engine's own log records (logger ``routemq``) to the log panel.

Records of engine events (they carry an ``event`` attribute) are skipped: the app reads those
from ``events_since()``, with their sequence numbers. What is left are the engine's other
warnings and errors ("could not take a slot out of its share group", ...).

While the dashboard owns the terminal, a record written to stderr would either scribble over
the screen or vanish; posting it to the app as a message is thread-safe (the supervisor thread
logs too) and puts it where the operator looks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from textual.app import App
from textual.message import Message

ENGINE_LOGGER = "routemq"


@dataclass
class EngineLogRecord(Message):
    """A log record of the engine, to show in the log panel."""

    created: float
    logger: str
    message: str
    level: int


class PanelLogHandler(logging.Handler):
    """Posts each record to the app as an :class:`EngineLogRecord`."""

    def __init__(self, app: App[Any], level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) is not None:
            return  # the engine logs its events too; the panel has them from events_since()
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({record.exc_info[1]!r})"
            self.app.post_message(EngineLogRecord(record.created, record.name, message, record.levelno))
        except Exception:
            self.handleError(record)


def attach(app: App[Any], logger_name: str = ENGINE_LOGGER) -> PanelLogHandler:
    handler = PanelLogHandler(app)
    logging.getLogger(logger_name).addHandler(handler)
    return handler


def detach(handler: PanelLogHandler, logger_name: str = ENGINE_LOGGER) -> None:
    logging.getLogger(logger_name).removeHandler(handler)
