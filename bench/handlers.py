"""Handlers shared by the worker and the bare-paho baseline, so both run exactly the same code.

They live at module level in an importable module because worker processes receive their
routes by pickle, i.e. by reference to ``bench.handlers.<name>``. The module imports nothing
heavy (no asyncio, no engine) so that the bare baseline does not pay for imports it would not
need. Every handler takes ``payload`` and ``client`` as keywords, as the router calls them.

Timing is taken inside the handler, in the measured process, because the manager's counters
only travel with heartbeats (every second) and would blur a burst of a second or two.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from typing import Any


class _Run:
    """Per-process state of the current burst; a new ``r`` in the payload starts a new one."""

    run: object = None
    count = 0
    total = 0
    first = 0.0


_state = _Run()
_files: dict[str, int] = {}  # output path -> fd, opened once per process (a syscall per message at most)


def count(payload: Any, client: Any = None) -> None:
    """The trivial handler: add the message's ``i`` to a counter.

    On the burst's last message (the ``n``-th of run ``r``) it writes ``<first start> <last end>
    <count>`` to ``out``, atomically, so the benchmark sees either nothing or the whole line.
    """
    now = time.time()
    state = _state
    if payload["r"] != state.run:
        state.run, state.count, state.total, state.first = payload["r"], 0, 0, now
    state.count += 1
    state.total += payload["i"]
    if state.count == payload["n"]:
        _write_atomically(payload["out"], f"{state.first} {time.time()} {state.count}\n")


async def count_async(payload: Any, client: Any = None) -> None:
    """``count`` as a coroutine: the worker runs it as an asyncio task."""
    count(payload, client)


class _SharedRun:
    """Per-process state of ``count_shared``'s current burst, kept in a small shared-memory file."""

    run: object = None
    count = 0
    total = 0
    first = 0.0
    slot: mmap.mmap | None = None


_shared = _SharedRun()
SHARED_SLOT = struct.Struct("<ddq")  # first start, last end (time.time()), messages handled


def count_shared(payload: Any, client: Any = None) -> None:
    """``count`` for a burst split between several processes (a shared subscription).

    No process knows how many of the ``n`` messages it will get, so each one keeps ``<first
    start> <last end> <count>`` of run ``r`` up to date in its own file ``out/<pid>``, mapped
    into memory (a memory write per message, no system call after the first). The benchmark
    sums the counts of all files until they reach ``n``; once they do, no file changes again.
    """
    now = time.time()
    state = _shared
    if payload["r"] != state.run:
        if state.slot is not None:
            state.slot.close()
        fd = os.open(os.path.join(payload["out"], str(os.getpid())), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, SHARED_SLOT.size)
            state.slot = mmap.mmap(fd, SHARED_SLOT.size)
        finally:
            os.close(fd)
        state.run, state.count, state.total, state.first = payload["r"], 0, 0, now
    state.count += 1
    state.total += payload["i"]
    assert state.slot is not None
    SHARED_SLOT.pack_into(state.slot, 0, state.first, time.time(), state.count)


def read_shared(directory: str) -> list[tuple[float, float, int]]:
    """The ``(first start, last end, count)`` of every process that ``count_shared`` wrote to in ``directory``."""
    slots = []
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as stream:
            data = stream.read(SHARED_SLOT.size)
        if len(data) == SHARED_SLOT.size:
            first, last, handled = SHARED_SLOT.unpack(data)
            slots.append((first, last, handled))
    return slots


def work(payload: Any, client: Any = None) -> None:
    """CPU-bound: ``k`` iterations of pure Python, then ``<start> <end>`` appended to ``out/<pid>``."""
    start = time.time()
    burn(payload["k"])
    _append(os.path.join(payload["out"], str(os.getpid())), f"{start} {time.time()}\n")


def latency(payload: Any, client: Any = None) -> None:
    """Append this message's end-to-end latency in ns (now minus the publisher's ``t``) to ``out``."""
    _append(payload["out"], f"{time.time_ns() - payload['t']}\n")


def io_bound(payload: Any, client: Any = None) -> None:
    """I/O-like: wait ``s`` seconds (a slow database call, say), holding no CPU.

    Then appends ``<ph> <t> <start> <end>`` (phase name, the publisher's ``time_ns`` as the
    message's id and publish time, handling start and end in ns) to ``out/<pid>``.
    """
    start = time.time_ns()
    time.sleep(payload["s"])
    line = f"{payload['ph']} {payload['t']} {start} {time.time_ns()}\n"
    _append(os.path.join(payload["out"], str(os.getpid())), line)


def burn(iterations: int) -> int:
    """Pure-Python work that holds the GIL, as a busy handler does."""
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1_000_003
    return acc


def _append(path: str, line: str) -> None:
    fd = _files.get(path)
    if fd is None:
        fd = _files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())


def _write_atomically(path: str, text: str) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)
