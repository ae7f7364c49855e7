"""Zygote: one zygote process (engine/zygote_process.py) as the manager sees it.

Started with its spec in a memfd and a ``SOCK_SEQPACKET`` control socket (engine/zygote_protocol.py);
its own process group, like a worker's, and the secrets stripped from its environment (it
never sees a worker's settings: each worker's spec goes straight to the worker, over the
worker's own socket). Asking for a fork never blocks the arbiter on a zygote that is still
importing the routes (which may take as long as a router module likes): the request waits in
the socket, and the worker's pid arrives with the answer. When the zygote is ready and has no
other fork to make, the answer is waited for (at most ``FORK_WAIT``), so that a restart's
events carry the new pid.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from .. import in_hand
from ..in_hand import InHandTable
from ..protocol import RoutesSource, WorkerSpec, describe_exit
from ..text import printable
from ..zygote_protocol import PACKET, ZygoteSpec, ZygoteViolation, decode, encode
from .child_process import SECRET_VARIABLES, open_pidfd, readable
from .forked_process import ForkedProcess

FORK_WAIT = 0.25  # seconds an idle, ready zygote gets to answer a fork before we go on without the pid
STOP_WAIT = 2.0


class Zygote:
    def __init__(self, routes: RoutesSource) -> None:
        self.routes = routes
        self.ready = False
        self.preloaded = False
        self.problem: str | None = None
        self.dead = False
        self.retired = False
        self.exitcode: int | None = None
        self.started_at = time.monotonic()
        self.pending: dict[int, ForkedProcess] = {}  # fork number -> process, until answered
        self.children: dict[int, ForkedProcess] = {}  # pid -> process, until released
        self.changed: list[ForkedProcess] = []  # forked, never forked or exited, not yet taken
        self.asked_at: dict[int, float] = {}  # fork number -> when it was asked for, until answered
        self.control_closed = False  # end of file on the control socket: it is exiting
        self._numbers = 0
        self._partial = b""
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec_fd = os.memfd_create("routemq-zygote-spec")
        output_r, output_w = os.pipe()
        try:
            _write_all(spec_fd, pickle.dumps(ZygoteSpec(routes, tuple(sys.path), os.getpid())))
            env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "engine.zygote_process",
                 "--spec", str(spec_fd), "--control", str(theirs.fileno())],
                pass_fds=[spec_fd, theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=output_w,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            control.close()
            os.close(output_r)
            raise
        finally:
            theirs.close()
            os.close(spec_fd)
            os.close(output_w)
        self.pid = self.popen.pid
        self.control = control
        control.setblocking(False)
        self.output_fd: int | None = output_r
        os.set_blocking(output_r, False)
        self.exit_fd = open_pidfd(self.pid)

    def __repr__(self) -> str:
        return f"<Zygote pid={self.pid} ready={self.ready} dead={self.dead} children={len(self.children)}>"

    @property
    def idle(self) -> bool:
        """Nothing of ours left in it: a retired zygote can go."""
        return not self.pending and not self.children

    # --- forks -----------------------------------------------------------------------------------

    def fork(self, spec: WorkerSpec, in_hand_entries: int = 0) -> ForkedProcess:
        parent_sock, child_sock = socket.socketpair()
        output_r, output_w = os.pipe()
        table_fd = in_hand.create(in_hand_entries) if in_hand_entries else None
        table = InHandTable(table_fd) if table_fd is not None else None
        process = ForkedProcess(self, parent_sock, output_r, table)
        number = self._numbers = self._numbers + 1
        fds = [child_sock.fileno(), output_w] + ([table_fd] if table_fd is not None else [])
        try:
            if self.dead:
                raise OSError("the zygote has died")
            socket.send_fds(self.control, [encode({"fork": number, "table": table_fd is not None})], fds,
                            socket.MSG_DONTWAIT)
        except OSError as exc:
            process.never_forked(f"the zygote did not take the fork: {exc}")
        else:
            self.pending[number] = process
            self.asked_at[number] = time.monotonic()
        finally:
            child_sock.close()
            os.close(output_w)
            if table_fd is not None:
                os.close(table_fd)
        process.queue_spec(spec)
        if self.ready and process.pending and len(self.pending) == 1:  # a zygote with a queue: not now
            self._await(process)
        return process

    def _await(self, process: ForkedProcess) -> None:
        deadline = time.monotonic() + FORK_WAIT
        while process.pending and not self.dead:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if readable(self.control.fileno(), left):
                self.read()

    def take_changed(self) -> list[ForkedProcess]:
        changed, self.changed = self.changed, []
        return changed

    def read(self) -> None:
        """What the zygote has said; the processes it changed (forked, never forked, exited) go
        to ``changed``."""
        while not self.dead:
            try:
                packet, fds, _, _ = socket.recv_fds(self.control, PACKET, 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                packet, fds = b"", []
            if not packet:
                self.control_closed = True  # it is exiting (its pidfd, or polling, says when)
                break
            for fd in fds:
                os.set_inheritable(fd, False)  # nothing the manager runs may hold a worker's pidfd
            try:
                kind, message = decode(packet)
            except ZygoteViolation as exc:
                for fd in fds:
                    os.close(fd)
                self.problem = f"protocol violation: {exc}"
                self.kill()
                break
            self.changed.extend(self._handle(kind, message, fds))

    def _handle(self, kind: str, message: dict[str, Any], fds: list[int]) -> list[ForkedProcess]:
        if kind == "ready":
            self.ready = True
            self.preloaded = message["preloaded"]
            self.problem = message["problem"]
            return []
        if kind == "forked":
            process = self.pending.pop(message["forked"], None)
            self.asked_at.pop(message["forked"], None)
            for fd in fds[1:]:
                os.close(fd)
            if process is None:
                for fd in fds[:1]:
                    os.close(fd)
                return []
            # Without its pidfd (the manager out of descriptors: the kernel drops it), the
            # worker is still ours: its pid is known, its exit comes from the zygote.
            self.children[message["pid"]] = process
            process.forked(message["pid"], fds[0] if fds else None)
            return [process]
        for fd in fds:
            os.close(fd)
        if kind == "fork_failed":
            self.asked_at.pop(message["fork_failed"], None)
            process = self.pending.pop(message["fork_failed"], None)
            if process is None:
                return []
            process.never_forked(f"the zygote could not fork it: {message['error']}")
            return [process]
        process = self.children.get(message["exited"])
        if process is None:
            return []
        process.exited(message["code"])
        return [process]

    def oldest_fork(self) -> float | None:
        """When the oldest fork not yet answered was asked for."""
        return min(self.asked_at.values(), default=None)

    def release(self, pid: int) -> None:
        """We are done with this exited worker: the zygote may reap it."""
        if self.children.pop(pid, None) is None or self.dead:
            return
        with contextlib.suppress(OSError):
            self.control.send(encode({"release": pid}), socket.MSG_DONTWAIT)

    # --- its output and its end ------------------------------------------------------------------

    def read_output(self) -> list[str]:
        """Lines it wrote (an import error's traceback, say); ``output_fd`` None at end of file."""
        if self.output_fd is None:
            return []
        data = b""
        while True:
            try:
                chunk = os.read(self.output_fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                os.close(self.output_fd)
                self.output_fd = None
                break
            data += chunk
        *lines, self._partial = (self._partial + data).split(b"\n")
        if self.output_fd is None and self._partial:
            lines.append(self._partial)
        return [printable(line.decode(errors="replace").rstrip()) for line in lines if line.strip()]

    def poll(self) -> int | None:
        """Its exit code once it has exited; then whatever it started that is still in its process
        group (a router module that spawned a helper at import) is killed before it is reaped,
        while its group id cannot be anyone else's."""
        if self.exit_fd is not None and self.popen.returncode is None:
            try:
                exited = os.waitid(os.P_PIDFD, self.exit_fd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                exited = None
            if exited is None:
                return None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        return self.popen.poll()

    def died(self) -> list[ForkedProcess]:
        """It has exited (and is reaped): what it had not forked yet never will be. Its workers
        got SIGTERM and are finishing; their exit status goes to init."""
        self.dead = True
        self.exitcode = self.popen.poll()
        orphans = [*self.take_changed(), *self.pending.values(), *self.children.values()]
        for process in self.pending.values():
            process.never_forked(f"its zygote died first ({self.describe_exit()})")
        self.pending.clear()
        self.asked_at.clear()
        self.control.close()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        if self.output_fd is not None:  # read by the caller already; a helper it left may hold it
            os.close(self.output_fd)
            self.output_fd = None
        return orphans

    def describe_exit(self) -> str:
        return describe_exit(self.exitcode) or "still running"

    def retire(self) -> None:
        """It exits at end of file; only once ``idle``, or its workers would go with it."""
        if not self.retired and not self.dead:
            self.retired = True
            with contextlib.suppress(OSError):
                self.control.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        if self.dead:
            return  # reaped: its pid may be someone else's
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Retire it and wait for it (killing it past STOP_WAIT); every descriptor closed."""
        self.retire()
        if self.exit_fd is not None:
            readable(self.exit_fd, STOP_WAIT)
        if self.poll() is None:  # (poll: what it left in its group goes first, then it is reaped)
            self.kill()
            if self.exit_fd is not None:
                readable(self.exit_fd, STOP_WAIT)
            self.poll()
        self.popen.wait()
        if not self.dead:
            self.died()
        if self.output_fd is not None:
            os.close(self.output_fd)
            self.output_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
