"""The worker's end of its private socket to the manager (the framing is engine/protocol.py).

The manager's first frame is the pickled :class:`~engine.protocol.WorkerSpec`; after that the
manager sends commands (JSON) and the worker sends its messages (JSON). Commands are read on a
thread of their own, so a handler that blocks the event loop cannot keep a retire from being
seen. Sends come from the loop's thread (heartbeats) and from others (the last lines at exit),
so they are serialised by a lock; they block, which is fine here: a heartbeat is small and the
manager reads its sockets all the time.

Log records wait for the next heartbeat in a buffer bounded in bytes, not only in count: one
heartbeat carries at most MAX_LOG_BYTES of log text, however fast or verbosely a handler logs,
and what does not fit is counted (``logs_dropped``), never kept.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import threading
from collections import deque
from collections.abc import Callable

from ..protocol import (
    MAX_FRAME,
    MAX_LOG_BYTES,
    Command,
    FrameReader,
    LogLine,
    Logs,
    ProtocolViolation,
    WorkerMessage,
    WorkerSpec,
    cut_line,
    encode,
)
from ..protocol_decode import decode_command

SPEC_LIMIT = 256 * 1024 * 1024  # the spec comes from the manager itself; a pickled Router may be big
READ_CHUNK = 65536
MAX_LOGGER_NAME = 200  # characters; the manager keeps no more
LINE_OVERHEAD = 16  # bytes of JSON around one line besides its name and text: [level,"name","text"],

log = logging.getLogger("routemq.worker")


class ManagerLink:
    """The socket to the manager: the spec, the commands, and everything the worker reports."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = FrameReader(limit=SPEC_LIMIT)
        self._frames: deque[bytes] = deque()  # complete frames not yet taken
        self._send_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._log_bytes = 0
        self._logs_dropped = 0
        self._eof = False
        self._parent = os.getppid()
        self.closed = False  # a send failed: the manager is gone, nothing more is sent

    @classmethod
    def from_fd(cls, fd: int) -> ManagerLink:
        os.set_inheritable(fd, False)  # a program a handler starts must not hold the manager's socket open
        return cls(socket.socket(fileno=fd))

    @property
    def manager_gone(self) -> bool:
        """The manager closed its end, or died (we were handed to another parent)."""
        return self._eof or os.getppid() != self._parent

    # --- manager -> worker ---------------------------------------------------------------------

    def read_spec(self) -> WorkerSpec:
        body = self._next_frame()
        if body is None:
            raise EOFError("the manager closed the socket before sending the worker's spec")
        spec = pickle.loads(body)  # the manager's own frame: trusted, unlike anything a worker sends
        if not isinstance(spec, WorkerSpec):
            raise TypeError(f"the first frame holds a {type(spec).__name__}, not a WorkerSpec")
        self._reader.limit = MAX_FRAME
        return spec

    def read_commands(self, on_command: Callable[[Command], None], on_gone: Callable[[], None]) -> None:
        """Start a thread calling ``on_command`` for each command, ``on_gone`` at end of file."""
        thread = threading.Thread(
            target=self._read_commands, args=(on_command, on_gone), name="manager-commands", daemon=True
        )
        thread.start()

    def _read_commands(self, on_command: Callable[[Command], None], on_gone: Callable[[], None]) -> None:
        try:
            while (body := self._next_frame()) is not None:
                try:
                    command = decode_command(body)
                except ProtocolViolation as exc:  # a newer manager, say: not a reason to leave
                    log.error("ignored a message from the manager: %s", exc)
                    continue
                on_command(command)
        except (OSError, ProtocolViolation) as exc:  # the stream itself is broken: as good as gone
            log.error("lost the link to the manager: %s", exc)
        self._eof = True
        on_gone()

    def _next_frame(self) -> bytes | None:
        """The next whole frame, waiting for it; None at end of file."""
        while not self._frames:
            data = self._sock.recv(READ_CHUNK)
            if not data:
                return None
            # (frames that arrive with the spec, a retire sent at once, wait here for the reader)
            self._frames.extend(self._reader.feed(data))
        return self._frames.popleft()

    # --- worker -> manager ---------------------------------------------------------------------

    def send(self, message: WorkerMessage) -> bool:
        """Send ``message`` now; False when the manager is gone (then nothing is sent any more)."""
        data = encode(message)
        with self._send_lock:
            if self.closed:
                return False
            try:
                self._sock.sendall(data)
            except OSError:
                self.closed = True
                return False
        return True

    def add_log(self, level: int, name: str, message: str) -> None:
        """Send a log line now, if the bytes allowed per heartbeat interval have room; else count
        it as dropped. Now, not with the next heartbeat: a handler that logs and then calls
        os._exit() (or segfaults) must not take its last words with it."""
        name, message = name[:MAX_LOGGER_NAME], cut_line(message)
        size = _json_size(name, message)
        if size < 0:  # lone surrogates (undecodable file names, say): unencodable as they are
            name, message = printable(name), printable(message)
            size = _json_size(name, message)
        with self._log_lock:
            if self._log_bytes + size > MAX_LOG_BYTES:
                self._logs_dropped += 1
                return
            self._log_bytes += size
        self.send(Logs((LogLine(level, name, message),)))  # with no manager any more: nobody to tell

    def take_logs(self) -> tuple[tuple[LogLine, ...], int]:
        """For a heartbeat: no lines (each went as it was logged), and how many were dropped
        since the last call; the byte allowance starts again."""
        with self._log_lock:
            dropped = self._logs_dropped
            self._log_bytes = self._logs_dropped = 0
        return (), dropped

    def flush(self) -> None:
        """Report the lines dropped since the last heartbeat (as the worker exits)."""
        _, dropped = self.take_logs()
        if dropped:
            self.send(Logs((), dropped))


def _json_size(name: str, message: str) -> int:
    """Bytes the line takes in a heartbeat (escapes included: a control character takes six);
    -1 when it cannot be encoded as UTF-8."""
    try:
        return len(json.dumps([name, message], ensure_ascii=False).encode()) + LINE_OVERHEAD
    except UnicodeEncodeError:
        return -1


def printable(text: str) -> str:
    """``text``, encodable as UTF-8 (lone surrogates written as escapes)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


class LinkLogHandler(logging.Handler):
    """Every log record of the worker goes to the manager with the next heartbeat."""

    def __init__(self, link: ManagerLink) -> None:
        super().__init__()
        self._link = link
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._link.add_log(record.levelno, record.name, self.format(record))
        except Exception:  # logging must never break the worker
            self.handleError(record)
