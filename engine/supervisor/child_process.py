"""ChildProcess: one worker process as the supervisor sees it, and every OS call made on it.

Reading its messages without ever blocking, signalling its process group, sampling its CPU and
memory, reading what it wrote to its descriptors 1 and 2, and the end: its last words, its
children killed, every descriptor closed. How it was started, and so how its exit is learnt, is
a subclass's: ``SpawnedProcess`` (a fresh interpreter, our own child) or ``ForkedProcess`` (a
zygote's child). A :class:`~engine.supervisor.slot.Slot` is given one and never makes an OS
call itself, so slot and pool behaviour can be tested with a dummy (supervisord's
``DummyOptions`` idea).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import time
from typing import Protocol

import psutil

from ..in_hand import InHand, InHandTable
from ..protocol import (
    Command,
    FrameReader,
    ProtocolViolation,
    WorkerMessage,
    WorkerSpec,
    encode,
    frame,
)
from ..protocol_decode import decode

# The workers get their settings over their socket; these never go into the environment of a
# worker or a zygote.
SECRET_VARIABLES = frozenset({"MQTT_PASSWORD", "MQTT_TLS_KEYFILE_PASSWORD", "FLEET_CONTROL_KEY"})
READ_CHUNK = 65536
READS_PER_WAKE = 16  # then other workers get their turn; the selector wakes us again
SPEC_SEND_TIMEOUT = 10.0
STDERR_KEPT = 16384  # bytes of a worker's last output kept for its exit cause
OUTPUT_LINE = 8192  # characters of one line of output; a longer one is cut


class Process(Protocol):
    """What a slot needs of its process; ChildProcess is the real one, tests use dummies."""

    pid: int | None  # None until a zygote has forked it

    @property
    def eof(self) -> bool: ...

    def read(self) -> list[WorkerMessage]: ...

    def send(self, command: Command) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def poll(self) -> int | None: ...

    def sample(self) -> tuple[float | None, int | None]: ...

    def read_output(self) -> list[str]: ...

    def finish(self) -> tuple[list[WorkerMessage], list[str], str, list[InHand]]: ...


class ChildProcess:
    """A launched worker, however it was started (spawned_process.py, forked_process.py). Its
    socket is non-blocking: a worker stopped in the middle of a message, or a handler writing
    half a frame, delays nobody; framing and decoding happen in
    :class:`~engine.protocol.FrameReader` and :func:`~engine.protocol_decode.decode`."""

    def __init__(self, pid: int | None, sock: socket.socket, output_fd: int | None, in_hand: InHandTable | None,
                 exit_fd: int | None) -> None:
        self.pid = pid
        self.sock = sock
        self.in_hand = in_hand
        self.exit_fd = exit_fd  # readable once it has exited; None: polled
        self._reader = FrameReader()
        self._eof = False
        self._ps: psutil.Process | None = None
        self._cpu_mark = (time.monotonic(), 0.0)  # a process just started has used no CPU to speak of
        self.started(pid)
        # What the worker writes to its descriptors 1 and 2: drained as it comes (a full pipe
        # would stop the worker), cut into lines, the last bytes kept for the exit cause.
        self.output_fd = output_fd
        if output_fd is not None:
            os.set_blocking(output_fd, False)
        self._partial = b""
        self._tail = b""
        self._spec_rest = b""

    def started(self, pid: int | None) -> None:
        self.pid = pid
        if pid is None:
            return
        try:
            self._ps = psutil.Process(pid)
        except psutil.Error:
            self._ps = None
        self._cpu_mark = (time.monotonic(), 0.0)

    def queue_spec(self, spec: WorkerSpec) -> None:
        """The spec as the first frame, as much as the socket takes now (a forked worker may not
        exist yet); :meth:`flush_spec` sends the rest once it does."""
        data = frame(pickle.dumps(spec))
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # it died at once; the reaper reports how
            sent = len(data)
        self._spec_rest = data[sent:]

    def flush_spec(self) -> None:
        if not self._spec_rest:
            return
        self.sock.settimeout(SPEC_SEND_TIMEOUT)
        with contextlib.suppress(OSError):  # it died at once; the reaper reports how
            self.sock.sendall(self._spec_rest)
        self._spec_rest = b""
        self.sock.setblocking(False)

    # --- messages ------------------------------------------------------------------------------

    @property
    def eof(self) -> bool:
        """The worker closed its end (it is exiting): stop watching the socket."""
        return self._eof

    def read(self) -> list[WorkerMessage]:
        """The messages complete so far, never waiting; ProtocolViolation for anything else."""
        frames: list[bytes] = []
        for _ in range(READS_PER_WAKE):
            try:
                data = self.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self._eof = True
                break
            frames.extend(self._reader.feed(data))
            if len(data) < READ_CHUNK:
                break
        return [decode(body) for body in frames]

    def read_output(self) -> list[str]:
        """The lines of output complete so far, never waiting. At end of file (the worker and
        whatever it forked have closed it) ``output_fd`` becomes None."""
        if self.output_fd is None:
            return []
        data = b""
        for _ in range(READS_PER_WAKE):
            try:
                chunk = os.read(self.output_fd, READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._close_output()
                break
            data += chunk
            if len(chunk) < READ_CHUNK:
                break
        self._tail = (self._tail + data)[-STDERR_KEPT:]
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > OUTPUT_LINE * 4:  # no newline in sight: a line of its own
            lines.append(self._partial)
            self._partial = b""
        if self.output_fd is None and self._partial:
            lines.append(self._partial)
            self._partial = b""
        return [_shown(line) for line in lines if line.strip()]

    def _close_output(self) -> None:
        if self.output_fd is not None:
            os.close(self.output_fd)
        self.output_fd = None

    def send(self, command: Command) -> None:
        # A command is a few bytes and the worker reads them on a thread of its own; if its
        # buffer is full anyway, it is stuck and the hang check deals with it.
        with contextlib.suppress(OSError):
            self.sock.send(encode(command), socket.MSG_DONTWAIT)

    # --- signals and exit ----------------------------------------------------------------------

    def terminate(self) -> None:
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        # The worker leads its own process group (start_new_session): its id is the worker's pid,
        # and Linux does not hand that number to a new process while the group has members.
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:  # a member changed its credentials: at least the worker itself
            self._signal(signum)

    def poll(self) -> int | None:
        """The exit code once the process has exited, else None."""
        raise NotImplementedError

    def _signal(self, signum: int) -> None:
        """``signum`` to the worker itself, never to a process that took over its pid."""
        raise NotImplementedError

    def _released(self) -> None:
        """The manager is done with the exited process: its pid may be reused from now on."""

    def finish(self) -> tuple[list[WorkerMessage], list[str], str, list[InHand]]:
        """After the exit: what it still had to say, the lines of output not read yet, its last
        output (for the exit cause), the messages it held; children it left behind are killed
        and every descriptor is closed."""
        messages: list[WorkerMessage] = []
        with contextlib.suppress(ProtocolViolation):  # dead already: a bad tail changes nothing
            while not self._eof:
                batch = self.read()
                messages.extend(batch)
                if not batch and not self._eof:
                    break  # a child of the dead worker may hold its end open: no more is coming
        self._signal_group(signal.SIGKILL)  # what a handler forked dies with its worker
        output = self.read_output()
        if self._partial:
            output.append(_shown(self._partial))
            self._partial = b""
        self._close_output()  # a grandchild may hold it open: what it writes later is not ours
        self.sock.close()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        self._released()
        held: list[InHand] = []
        if self.in_hand is not None:
            held = self.in_hand.read()
            self.in_hand.close()
            self.in_hand = None
        return messages, output, self._tail.decode(errors="replace").strip(), held

    # --- sampling ------------------------------------------------------------------------------

    def sample(self) -> tuple[float | None, int | None]:
        """(% of one core since the last sample, RSS in bytes); None where unknown."""
        if self._ps is None:
            return None, None
        try:
            with self._ps.oneshot():
                times = self._ps.cpu_times()
                rss = self._ps.memory_info().rss
        except psutil.Error:
            return None, None
        # Process.cpu_percent() would do, but it asks for the number of CPUs on every call: a
        # good part of a sample's cost with 64 workers.
        busy = times.user + times.system
        now = time.monotonic()  # not the loop's time: sampling 64 workers takes a while
        mark, self._cpu_mark = self._cpu_mark, (now, busy)
        if now <= mark[0]:
            return None, rss
        return max(0.0, 100.0 * (busy - mark[1]) / (now - mark[0])), rss


def readable(fd: int, timeout: float) -> bool:
    """``fd`` readable within ``timeout`` seconds (poll: no limit on descriptor numbers)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _shown(line: bytes) -> str:
    """A line of output as text: undecodable bytes replaced, control characters escaped, cut."""
    text = line.rstrip(b"\r").decode(errors="replace")
    text = "".join(ch if ch.isprintable() or ch == "\t" else f"\\x{ord(ch):02x}" for ch in text)
    if len(text) > OUTPUT_LINE:
        text = text[:OUTPUT_LINE] + f" …[{len(text) - OUTPUT_LINE} more characters cut]"
    return text
