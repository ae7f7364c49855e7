"""ForkedProcess: a worker forked by a zygote (``WORKER_START_METHOD=zygote``, the default).

Its pid arrives with the zygote's answer, usually within a millisecond or two; until then it is
None, and a signal asked for waits for it. Its exit code comes from the zygote, which reaps it
only once we say we are done with it (``_released``), so its pid, and the process group it
leads, are never someone else's while we might still signal them. If the zygote dies first, the
worker dies too (SIGTERM: it finishes what it holds first) and its exit status goes to init:
the pidfd the zygote handed over says when, and the code is :data:`EXIT_UNKNOWN`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from typing import TYPE_CHECKING

from ..in_hand import InHand, InHandTable
from ..protocol import EXIT_UNKNOWN, WorkerMessage
from .child_process import ChildProcess, readable

if TYPE_CHECKING:
    from .zygote import Zygote


class ForkedProcess(ChildProcess):
    def __init__(self, zygote: Zygote, sock: socket.socket, output_fd: int, table: InHandTable | None) -> None:
        super().__init__(None, sock, output_fd, table, None)
        self.zygote = zygote
        self.code: int | None = None
        self.failure: str | None = None  # why it was never forked
        self._signals: list[int] = []  # asked for before the pid was known

    def forked(self, pid: int, pidfd: int | None) -> None:
        self.started(pid)
        self.exit_fd = pidfd
        self.flush_spec()
        for signum in self._signals:
            self._signal_group(signum)
        self._signals.clear()

    def never_forked(self, why: str) -> None:
        self.failure = why
        self.code = EXIT_UNKNOWN

    def exited(self, code: int) -> None:
        self.code = code

    @property
    def pending(self) -> bool:
        return self.pid is None and self.code is None

    def poll(self) -> int | None:
        if self.code is not None:
            return self.code
        # Its zygote gone, it is init's: gone too once its pidfd says so (without one, it is going:
        # the parent-death signal is SIGTERM).
        if self.zygote.dead and (self.pid is None or self.exit_fd is None or self.exit_seen()):
            self.code = EXIT_UNKNOWN
        return self.code

    def awaiting_code(self) -> bool:
        """It has exited and its zygote, alive, has yet to say how."""
        return not self.zygote.dead and self.exit_seen()

    def exit_seen(self) -> bool:
        if self.exit_fd is None:
            return False
        return readable(self.exit_fd, 0)

    def terminate(self) -> None:
        if self.pid is None:
            self._signals.append(signal.SIGTERM)
        else:
            super().terminate()

    def kill(self) -> None:
        if self.pid is None:
            self._signals.append(signal.SIGKILL)
        else:
            super().kill()

    def _signal_group(self, signum: int) -> None:
        if self.zygote.dead:
            # init reaps it the moment it exits: its pid, and its group's id, may be anyone's.
            # Only the pidfd still names it (what a handler forked is not reached then).
            self._signal(signum)
        else:
            super()._signal_group(signum)

    def _signal(self, signum: int) -> None:
        if self.exit_fd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self.exit_fd, signum)

    def finish(self) -> tuple[list[WorkerMessage], list[str], str, list[InHand]]:
        messages, output, last_output, held = super().finish()
        return messages, output, last_output or (self.failure or ""), held  # never forked: why

    def _released(self) -> None:
        if self.pid is not None:
            self.zygote.release(self.pid)
