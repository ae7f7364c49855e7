"""Watch: the arbiter's one selector, and what each descriptor in it stands for.

A worker's socket (messages), output pipe (descriptors 1 and 2) and exit descriptor (pidfd); a
zygote's control socket, output and pidfd; the command queue's wake-up pipe. ``wait`` sorts
what became readable by kind, so that the loop reads, drains and reaps in its own order.
"""

from __future__ import annotations

import selectors
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .child_process import ChildProcess

if TYPE_CHECKING:
    from .slot import Slot
    from .zygote import Zygote


@dataclass
class Ready:
    woken: bool = False
    sockets: list[Slot] = field(default_factory=list)
    outputs: list[Slot] = field(default_factory=list)
    exits: list[Slot] = field(default_factory=list)
    zygotes: list[tuple[Zygote, str]] = field(default_factory=list)


class Watch:
    def __init__(self, wake_fd: int) -> None:
        self._selector = selectors.DefaultSelector()
        self._selector.register(wake_fd, selectors.EVENT_READ, None)

    def wait(self, timeout: float) -> Ready:
        ready = Ready()
        kinds = {"socket": ready.sockets, "output": ready.outputs, "exit": ready.exits}
        for key, _ in self._selector.select(timeout=timeout):
            if key.data is None:
                ready.woken = True
            elif key.data[1] in kinds:
                kinds[key.data[1]].append(key.data[0])
            else:
                ready.zygotes.append(key.data)
        return ready

    def add(self, fd: int | None, data: Any) -> None:
        """Watch ``fd`` (if any, and not watched yet) for ``data`` = (slot or zygote, kind)."""
        if fd is not None and fd not in self._selector.get_map():
            self._selector.register(fd, selectors.EVENT_READ, data)

    def forget(self, fd: int | None) -> None:
        if fd is not None and fd in self._selector.get_map():  # not when forgotten at end of file already
            self._selector.unregister(fd)

    def process(self, slot: Slot, process: ChildProcess) -> None:
        self.add(process.sock.fileno(), (slot, "socket"))
        self.add(process.output_fd, (slot, "output"))
        self.add(process.exit_fd, (slot, "exit"))

    def forget_process(self, process: ChildProcess) -> None:
        for fd in (process.sock.fileno(), process.output_fd, process.exit_fd):
            self.forget(fd)
