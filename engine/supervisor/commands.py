"""CommandQueue: how other threads hand work to the supervisor thread.

Public methods of the manager never touch processes: they queue a function for the supervisor
thread, wake it through a pipe (so that its ``select`` returns), and wait for the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

log = logging.getLogger("routemq.manager")

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

    def off_thread(self, name: str, work: Callable[[], object], then: Callable[[], object], failed: str) -> None:
        """Run ``work`` (a blocking broker call) on a thread of its own, then queue ``then`` if it
        succeeded; if it raised OSError, log ``failed`` with the error."""

        def run() -> None:
            try:
                work()
            except OSError as exc:
                log.warning("%s: %s", failed, exc)
                return
            self.call_later(then)

        threading.Thread(target=run, name=name, daemon=True).start()

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
                result, error = func(), None
            except BaseException as exc:  # handed back to the caller
                result, error = None, exc
            # The new snapshot first: a caller that reads it as soon as its call returns sees
            # what the call did.
            if on_each is not None and not read_only:
                on_each()
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
