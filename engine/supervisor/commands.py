"""CommandQueue: how other threads hand work to the supervisor thread.

Public methods of the manager never touch processes: they queue a function for the supervisor
thread, wake it through a pipe (so that its ``select`` returns), and wait for the result.
"""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class CommandQueue:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any], bool]] = queue.SimpleQueue()
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)

    def submit(self, func: Callable[[], T], read_only: bool = False) -> Future[T]:
        """Queue ``func``; ``read_only`` when it changes nothing (a view): no new snapshot after it."""
        future: Future[T] = Future()
        self._queue.put((func, future, read_only))
        self.wake()
        return future

    def call_later(self, func: Callable[[], object]) -> None:
        """Queue ``func`` without waiting for it."""
        self.submit(func)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self.wake_fd, 4096)

    def run_pending(self, on_each: Callable[[], None] | None = None) -> None:
        """Run what is queued, on the calling (supervisor) thread; errors go back to the caller."""
        while True:
            try:
                func, future, read_only = self._queue.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = func()
            except BaseException as exc:  # handed back to the caller
                future.set_exception(exc)
            else:
                future.set_result(result)
            if on_each is not None and not read_only:
                on_each()
