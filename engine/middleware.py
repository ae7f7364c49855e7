"""The Middleware base class: code that runs around every handler of a route or group."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

Context = dict[str, Any]
NextHandler = Callable[[Context], Awaitable[Any]]


class Middleware(ABC):
    """Base class for middleware.

    ``handle`` receives the message context (``topic``, ``payload``, ``params``, ``client``,
    ``route``) and the next step of the chain. It may change the context before passing it on,
    inspect or replace the result, or return without calling ``next_handler`` to stop the
    message there. Group middleware runs before route middleware, in the order listed.
    """

    logger = logging.getLogger("routemq.middleware")

    @abstractmethod
    async def handle(self, context: Context, next_handler: NextHandler) -> Any:
        """Process ``context``; usually ``return await next_handler(context)``."""
