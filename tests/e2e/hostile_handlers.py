"""Handlers that attack the supervisor from inside a worker, as a careless or hostile handler
author could: they write to the manager's socket themselves, stop their own process in the
middle of a message, and fork children. Module level, so worker processes can import them.

Payload keys: ``out`` (a file the handler appends its pid or a child's pid to), ``marker`` (a
path the crafted pickle would create if the manager ever unpickled it).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from typing import Any


def _manager_fd() -> int:
    # The worker's command line names the socket it shares with the manager.
    return int(sys.argv[sys.argv.index("--fd") + 1])


def _note(payload: Any, text: str) -> None:
    with open(payload["out"], "a") as out:
        out.write(f"{text}\n")


class _Exploit:
    """Unpickling this runs a shell command: what a pickle from a worker could do to its reader."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def send_pickle(payload: Any, client: Any) -> None:
    """Send the manager a well-framed pickle that would run ``touch <marker>`` when loaded."""
    import pickle

    body = pickle.dumps(("stats", _Exploit(payload["marker"])))
    os.write(_manager_fd(), struct.pack(">I", len(body)) + body)
    _note(payload, f"sent {os.getpid()}")


def stop_mid_frame(payload: Any, client: Any) -> None:
    """Write the first half of a large frame to the manager's socket, then SIGSTOP ourselves."""
    _note(payload, f"stopping {os.getpid()}")
    body = b'{"type":"logs","logs":[],"logs_dropped":0,"pad":"' + b"x" * 200_000
    os.write(_manager_fd(), struct.pack(">I", len(body) + 2) + body[: len(body) // 2])
    os.kill(os.getpid(), signal.SIGSTOP)


def partial_frame(payload: Any, client: Any) -> None:
    """Write a frame header and only part of its body, then carry on as if nothing happened."""
    os.write(_manager_fd(), struct.pack(">I", 5000) + b'{"type":"heart')
    _note(payload, f"partial {os.getpid()}")


def fork_sleeper(payload: Any, client: Any) -> None:
    """Start a child that would sleep for an hour; note its pid."""
    child = subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL)
    _note(payload, str(child.pid))


def record(payload: Any, client: Any) -> None:
    _note(payload, str(os.getpid()))


def last_words(payload: Any, client: Any) -> None:
    """Log, print and write to descriptor 2, then leave at once, as a handler on its way down would."""
    import logging

    tag = payload["tag"]
    logging.getLogger("app").error("logged %s", tag)
    print(f"printed {tag}")
    os.write(2, f"wrote {tag} to fd 2\n".encode())
    os.write(1, f"wrote {tag} to fd 1\n".encode())
    os._exit(1)


def segfault(payload: Any, client: Any) -> None:
    """Crash the interpreter the hard way (a C-level fault), after a last log line."""
    import ctypes
    import logging

    logging.getLogger("app").warning("about to crash %s", payload["tag"])
    ctypes.string_at(0)


def output_flood(payload: Any, client: Any) -> None:
    """Write ``lines`` lines straight to descriptor 2, as a chatty C library would."""
    block = b"".join(f"flood line {i}\n".encode() for i in range(payload["lines"]))
    view = memoryview(block)
    while view:
        view = view[os.write(2, view):]
