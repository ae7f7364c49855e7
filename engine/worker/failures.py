"""FailureLog: the handlers that raised since the last heartbeat, grouped by route and exception.

A handler failing on every message of a flood must not cost a formatted traceback and a log
frame per message: each group keeps a count and only its latest failure, whose traceback is
formatted when the heartbeat takes the group (once a second at most). The manager turns each
report into one ``failure`` event and keeps the groups for the route screen.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

from ..protocol import MAX_FAILURES, MAX_LOG_BYTES, MAX_LOG_LINE, MAX_TOPIC, PAYLOAD_PREVIEW, HandlerFailure

# The tracebacks one heartbeat carries, in UTF-8 (JSON keeps non-ASCII as is): with the log
# lines' own budget, a heartbeat stays well under MAX_FRAME.
MAX_TRACEBACK_BYTES = MAX_LOG_BYTES


@dataclass
class _Latest:
    handler: str
    error: BaseException
    count: int
    time: float
    topic: str
    payload: bytes
    payload_size: int


def exception_name(error: BaseException) -> str:
    """``ValueError`` for a builtin, ``package.module.Error`` for the rest."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class FailureLog:
    def __init__(self) -> None:
        self._groups: dict[tuple[str, type[BaseException]], _Latest] = {}

    def failed(self, route: str, handler: str, error: BaseException, topic: str, payload: bytes | bytearray) -> None:
        """A handler of ``route`` raised ``error`` on a message (called while it is handled)."""
        key = (route, type(error))
        group = self._groups.get(key)
        count = group.count + 1 if group is not None else 1
        if group is None and len(self._groups) >= MAX_FAILURES:
            return  # counted in the worker's `failed` all the same
        self._groups[key] = _Latest(handler, error, count, time.time(), topic[:MAX_TOPIC],
                                    bytes(payload[:PAYLOAD_PREVIEW]), len(payload))

    def take(self) -> tuple[HandlerFailure, ...]:
        """The groups since the last call, each with its latest failure; then forget them. Their
        tracebacks share MAX_TRACEBACK_BYTES, so that the heartbeat stays within a frame."""
        if not self._groups:
            return ()
        groups, self._groups = self._groups, {}
        budget = MAX_TRACEBACK_BYTES
        taken = []
        for (route, _), g in groups.items():
            text = _traceback(g.error)
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > budget:
                text, size = f"(traceback not sent: {size} bytes past this second's budget of tracebacks)", 0
            budget -= size
            taken.append(HandlerFailure(
                route, g.handler, exception_name(g.error), str(g.error)[:500], g.count, g.time, g.topic, g.payload,
                g.payload_size, text,
            ))
        return tuple(taken)


def _traceback(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error)).rstrip()
    if len(text) <= MAX_LOG_LINE:
        return text
    # The end (the innermost frames and the error) says the most: keep it.
    return f"[{len(text) - MAX_LOG_LINE} characters of the start cut]…\n" + text[-MAX_LOG_LINE:]
